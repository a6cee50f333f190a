//! Finding the sessions BIRD refuses. A config BIRD rejects because of one session must not keep
//! the node's other sessions (or, on a node whose BIRD is not running yet, BIRD itself) from
//! running: the session is left out and reported, and the rest is applied.
//!
//! `bird -p` names the line of its first error; the session whose protocol holds that line is
//! left out and the check repeated. When the line is outside every session (an error found only
//! in combination), each session is checked alone with the node's base config. Each round leaves
//! out at least one session, so this ends.

use super::config::{BirdConfig, LeftOut};
use super::render::render_config;
use super::{BirdError, BirdPaths};

/// Checks `config` with `bird -p`, leaving out every session BIRD rejects. Returns the text BIRD
/// accepts and the sessions left out; an error when BIRD rejects the config without sessions.
pub async fn screen(paths: &BirdPaths, config: &mut BirdConfig) -> Result<(String, Vec<LeftOut>), BirdError> {
    let mut left_out = Vec::new();
    loop {
        let rendered = render_config(config);
        let output = match paths.check_text(&rendered.text).await {
            Ok(()) => return Ok((rendered.text, left_out)),
            Err(BirdError::Rejected { output }) => output,
            Err(other) => return Err(other),
        };
        let blamed = error_line(&output, paths).and_then(|line| rendered.session_at(line));
        let culprits: Vec<(usize, String)> = match blamed {
            Some(index) => vec![(index, output.clone())],
            None => each_alone(paths, config).await?,
        };
        if culprits.is_empty() {
            return Err(BirdError::Rejected { output });
        }
        // From the last, so that the indices stay valid.
        for (index, output) in culprits.into_iter().rev() {
            let session = config.sessions.remove(index);
            tracing::warn!(session = %session.name, bird = %output, "BIRD rejects this BGP session; leaving it out");
            left_out.push(LeftOut { peer: session.name.to_string(), reason: format!("BIRD rejected it: {output}") });
        }
    }
}

/// The indices of the sessions BIRD rejects when each is the only one, with BIRD's message; an
/// error when it rejects the config without sessions.
async fn each_alone(paths: &BirdPaths, config: &BirdConfig) -> Result<Vec<(usize, String)>, BirdError> {
    // When the config without sessions fails, no session is to blame.
    paths.check_text(&render_config(&BirdConfig { sessions: Vec::new(), ..config.clone() }).text).await?;
    let mut rejected = Vec::new();
    for (index, session) in config.sessions.iter().enumerate() {
        let alone = BirdConfig { sessions: vec![session.clone()], ..config.clone() };
        match paths.check_text(&render_config(&alone).text).await {
            Ok(()) => {}
            Err(BirdError::Rejected { output }) => rejected.push((index, output)),
            Err(other) => return Err(other),
        }
    }
    Ok(rejected)
}

/// The line of the error in `bird -p`'s output: `bird: <candidate>:<line>:<column> <message>`.
fn error_line(output: &str, paths: &BirdPaths) -> Option<usize> {
    let file = format!("{}:", paths.candidate().display());
    let rest = &output[output.find(&file)? + file.len()..];
    rest.split(':').next()?.parse().ok()
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;

    #[test]
    fn the_error_line_is_read_from_birds_message() {
        let paths = BirdPaths::debian(Path::new("/run/gingham/bird"));
        let cases = [
            ("bird: /run/gingham/bird/bird.conf.candidate:57:17 Keepalive time must be in range 1-65535", Some(57)),
            ("bird: /run/gingham/bird/bird.conf.candidate:9:1 Local AS number must be set", Some(9)),
            ("bird: /elsewhere.conf:9:1 syntax error", None),
            ("bird: cannot open", None),
        ];
        for (output, expected) in cases {
            assert_eq!(error_line(output, &paths), expected, "{output}");
        }
    }
}
