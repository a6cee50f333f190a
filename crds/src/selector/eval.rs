//! Evaluating an expression against a set of labels.

use std::collections::{BTreeMap, HashMap};
use std::hash::BuildHasher;

use super::ast::Expr;

/// Something that has labels: a map from label key to value.
pub trait Labels {
    /// The value of label `key`, if the label is present.
    fn get(&self, key: &str) -> Option<&str>;
}

impl Labels for BTreeMap<String, String> {
    fn get(&self, key: &str) -> Option<&str> {
        BTreeMap::get(self, key).map(String::as_str)
    }
}

impl<S: BuildHasher> Labels for HashMap<String, String, S> {
    fn get(&self, key: &str) -> Option<&str> {
        HashMap::get(self, key).map(String::as_str)
    }
}

impl Expr {
    /// Whether `labels` satisfy the expression, with Calico's semantics: `!=` and `not in` match
    /// when the label is absent; `==`, `in`, `contains`, `starts with` and `ends with` do not.
    ///
    /// `global()` selects resources that are not namespaced. A label map does not say whether its
    /// owner is namespaced, so here `global()` is always true, like `all()`; callers that know
    /// (e.g. when matching a namespace selector) must handle [`Expr::Global`] themselves.
    pub fn matches<L: Labels + ?Sized>(&self, labels: &L) -> bool {
        match self {
            Expr::All | Expr::Global => true,
            Expr::Has(k) => labels.get(k).is_some(),
            Expr::Eq(k, v) => labels.get(k) == Some(v),
            Expr::NotEq(k, v) => labels.get(k) != Some(v),
            Expr::In(k, set) => labels.get(k).is_some_and(|v| set.contains(v)),
            Expr::NotIn(k, set) => !labels.get(k).is_some_and(|v| set.contains(v)),
            Expr::StartsWith(k, p) => labels.get(k).is_some_and(|v| v.starts_with(p.as_str())),
            Expr::EndsWith(k, s) => labels.get(k).is_some_and(|v| v.ends_with(s.as_str())),
            Expr::Contains(k, s) => labels.get(k).is_some_and(|v| v.contains(s.as_str())),
            Expr::Not(e) => !e.matches(labels),
            Expr::And(l, r) => l.matches(labels) && r.matches(labels),
            Expr::Or(l, r) => l.matches(labels) || r.matches(labels),
        }
    }
}
