//! The error a selector that does not parse produces.

/// Why a selector did not parse: where, what the parser expected there, and what it found.
///
/// Displays as e.g. `invalid selector at character 12: expected a label value in quotes, found
/// end of input`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid selector at character {position}: expected {expected}, found {found}")]
pub struct SelectorError {
    /// 0-based offset into the input, counted in characters (not bytes).
    pub position: usize,
    /// What would have been valid at `position`, e.g. "a label value in quotes".
    pub expected: String,
    /// What was there instead, e.g. "`&`" or "end of input".
    pub found: String,
}
