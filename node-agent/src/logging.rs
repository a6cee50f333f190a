//! Logging: text or JSON lines on stderr, with the level from `spec.agent.logLevel` (Calico's
//! names) applied at runtime, unless `RUST_LOG` fixes the filter.

use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{EnvFilter, Registry, fmt, reload};

/// Changes the log level at runtime.
#[derive(Clone, Debug)]
pub struct LogControl {
    handle: Option<reload::Handle<EnvFilter, Registry>>,
}

impl LogControl {
    /// Does nothing (tests, or `RUST_LOG` set).
    pub fn fixed() -> Self {
        Self { handle: None }
    }

    /// Applies a FelixConfiguration log level (`Debug`, `Info`, `Warning`, `Error`, `Fatal`).
    pub fn set(&self, level: &str) {
        let Some(handle) = &self.handle else { return };
        let Some(directive) = directive(level) else {
            tracing::warn!(level, "unknown log level; use Debug, Info, Warning, Error or Fatal");
            return;
        };
        match handle.reload(EnvFilter::new(directive)) {
            Ok(()) => tracing::info!(level, "log level set"),
            Err(error) => tracing::warn!(%error, "cannot change the log level"),
        }
    }
}

/// The tracing directive for a Calico log level.
pub fn directive(level: &str) -> Option<&'static str> {
    match level.to_ascii_lowercase().as_str() {
        "debug" => Some("debug"),
        "info" => Some("info"),
        "warning" | "warn" => Some("warn"),
        "error" | "fatal" | "panic" => Some("error"),
        "none" => Some("off"),
        _ => None,
    }
}

/// Installs the global subscriber; JSON lines when `json`.
pub fn init(json: bool) -> LogControl {
    let from_env = EnvFilter::try_from_default_env().ok();
    let fixed = from_env.is_some();
    let (filter, handle) = reload::Layer::new(from_env.unwrap_or_else(|| EnvFilter::new("info")));
    let text = (!json).then(|| fmt::layer().with_ansi(false));
    let json = json.then(|| fmt::layer().json());
    tracing_subscriber::registry().with(filter).with(text).with(json).init();
    LogControl { handle: (!fixed).then_some(handle) }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn calico_levels_map_to_directives() {
        let cases = [("Debug", Some("debug")), ("Warning", Some("warn")), ("Fatal", Some("error")), ("loud", None)];
        for (level, expected) in cases {
            assert_eq!(directive(level), expected, "{level}");
        }
    }
}
