//! Calico's label selector language.
//!
//! A selector such as `role == 'webserver' && environment in {'prod', 'staging'}` picks resources
//! by their labels. The terms are:
//!
//! | Syntax                       | Matches when                                   |
//! |------------------------------|------------------------------------------------|
//! | `all()` or an empty selector | always                                         |
//! | `global()`                   | the resource is not namespaced (see [`Expr::matches`]) |
//! | `has(k)`                     | label `k` is present                           |
//! | `k == 'v'` / `k != 'v'`      | `k` is present and is / is absent or is not `v` |
//! | `k in {'a', 'b'}`            | `k` is present and one of the values           |
//! | `k not in {'a', 'b'}`        | `k` is absent or none of the values            |
//! | `k starts with 'p'`, `k ends with 's'`, `k contains 'x'` | `k` is present and so |
//! | `!e`, `a && b`, `a \|\| b`, `( e )` | logic; `&&` binds tighter than `\|\|`   |
//!
//! Values are in single or double quotes, with no escapes. Keys are Kubernetes label keys, such
//! as `projectcalico.org/namespace`. Whitespace is insignificant. Parsing is pure: [`Selector`]
//! holds a typed [`Expr`] and prints back in a canonical form that parses to the same `Expr`.
//!
//! ```
//! use std::collections::BTreeMap;
//! use gingham_crds::selector::Selector;
//!
//! let selector: Selector = "role == 'web' && !has(canary)".parse()?;
//! let labels = BTreeMap::from([("role".to_owned(), "web".to_owned())]);
//! assert!(selector.matches(&labels));
//! assert_eq!(selector.to_string(), r#"role == "web" && !has(canary)"#);
//!
//! let err = Selector::parse("role == web").unwrap_err();
//! assert_eq!(
//!     err.to_string(),
//!     "invalid selector at character 8: expected a label value in quotes, found `web`",
//! );
//! # Ok::<(), gingham_crds::selector::SelectorError>(())
//! ```

mod ast;
mod error;
mod eval;
mod lexer;
mod parser;
#[cfg(test)]
mod proptests;
#[cfg(test)]
mod tests;

use std::borrow::Cow;
use std::collections::BTreeSet;
use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

pub use ast::Expr;
pub use error::SelectorError;
pub use eval::Labels;

/// A parsed label selector. Its text form is [`Display`](fmt::Display); in serde it is a string.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Selector {
    pub(crate) expr: Expr,
}

impl Selector {
    /// Parses selector text. Empty or whitespace-only text is [`Selector::all`].
    pub fn parse(input: &str) -> Result<Self, SelectorError> {
        parser::parse(input).map(|expr| Selector { expr })
    }

    /// The selector that matches everything, `all()`.
    pub fn all() -> Self {
        Selector { expr: Expr::All }
    }

    /// The parsed expression.
    pub fn expr(&self) -> &Expr {
        &self.expr
    }

    /// Whether `labels` satisfy the selector; see [`Expr::matches`].
    pub fn matches<L: Labels + ?Sized>(&self, labels: &L) -> bool {
        self.expr.matches(labels)
    }

    /// The label keys the selector looks at.
    pub fn label_keys(&self) -> BTreeSet<&str> {
        self.expr.label_keys()
    }
}

impl Default for Selector {
    /// `all()`, as Calico treats a missing selector.
    fn default() -> Self {
        Selector::all()
    }
}

impl fmt::Display for Selector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.expr.fmt(f)
    }
}

impl FromStr for Selector {
    type Err = SelectorError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Selector::parse(s)
    }
}

/// Builds a selector from code. Fails when the expression cannot be written as selector text
/// (a key that is not a label key, or a value with both `'` and `"`), so that every `Selector`
/// prints back to itself.
impl TryFrom<Expr> for Selector {
    type Error = SelectorError;

    fn try_from(expr: Expr) -> Result<Self, Self::Error> {
        let text = expr.to_string();
        let parsed = Selector::parse(&text)?;
        if parsed.expr != expr {
            return Err(SelectorError {
                position: 0,
                expected: "label keys, and values without both `'` and `\"`".to_owned(),
                found: format!("`{text}`, which reads back differently"),
            });
        }
        Ok(parsed)
    }
}

impl Serialize for Selector {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Selector {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        Selector::parse(&text).map_err(serde::de::Error::custom)
    }
}

/// In a CRD schema a selector is a plain string; the API server does not parse it.
impl schemars::JsonSchema for Selector {
    fn schema_name() -> Cow<'static, str> {
        "Selector".into()
    }

    fn inline_schema() -> bool {
        true
    }

    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        schemars::json_schema!({ "type": "string" })
    }
}
