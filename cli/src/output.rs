//! Output: human text by default, `-o json` or `-o yaml` for machines, from one serializable
//! report per command.

use clap::ValueEnum;
use serde::Serialize;

/// How a report is printed.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, ValueEnum)]
pub enum Format {
    /// Tables and sentences.
    #[default]
    Human,
    /// Pretty-printed JSON.
    Json,
    /// YAML.
    Yaml,
}

/// A report a command prints.
pub trait Report: Serialize {
    /// The human text (ending with a newline).
    fn human(&self) -> String;
}

/// A report could not be serialized (a bug: reports are plain data).
#[derive(Debug, thiserror::Error)]
#[error("cannot print the report as {format:?}: {message}")]
pub struct OutputError {
    /// The format asked for.
    pub format: Format,
    /// The serializer's message.
    pub message: String,
}

/// The text of `report` in `format`.
pub fn render(report: &impl Report, format: Format) -> Result<String, OutputError> {
    let fail = |message: String| OutputError { format, message };
    match format {
        Format::Human => Ok(report.human()),
        Format::Json => serde_json::to_string_pretty(report).map(|text| text + "\n").map_err(|e| fail(e.to_string())),
        Format::Yaml => serde_saphyr::to_string(report).map_err(|e| fail(e.to_string())),
    }
}

/// Lays out rows under a header, each column as wide as its widest cell, two spaces apart.
pub fn table<const N: usize>(header: [&str; N], rows: &[[String; N]]) -> String {
    let mut widths = header.map(str::len);
    for row in rows {
        for (width, cell) in widths.iter_mut().zip(row) {
            *width = (*width).max(cell.chars().count());
        }
    }
    let line = |cells: [&str; N]| {
        let padded: Vec<String> = cells.iter().zip(widths).map(|(cell, width)| format!("{cell:<width$}")).collect();
        padded.join("  ").trim_end().to_string() + "\n"
    };
    let mut out = line(header);
    for row in rows {
        out.push_str(&line(row.each_ref().map(String::as_str)));
    }
    out
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[derive(Serialize)]
    struct Sample {
        name: &'static str,
        count: u32,
    }

    impl Report for Sample {
        fn human(&self) -> String {
            format!("{} has {}\n", self.name, self.count)
        }
    }

    #[test]
    fn each_format_prints_the_same_report() {
        let sample = Sample { name: "pool", count: 3 };
        let cases = [
            (Format::Human, "pool has 3\n"),
            (Format::Json, "{\n  \"name\": \"pool\",\n  \"count\": 3\n}\n"),
            (Format::Yaml, "name: pool\ncount: 3\n"),
        ];
        for (format, expected) in cases {
            assert_eq!(render(&sample, format).unwrap(), expected, "{format:?}");
        }
    }

    #[test]
    fn tables_align_columns_and_trim_line_ends() {
        let rows =
            [["node-1".to_string(), "True".to_string(), String::new()], ["n2".into(), "False".into(), "x".into()]];
        let text = table(["NODE", "READY", "ERROR"], &rows);
        assert_eq!(text, "NODE    READY  ERROR\nnode-1  True\nn2      False  x\n");
    }
}
