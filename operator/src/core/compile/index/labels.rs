//! Endpoints by label, so that a selector with a required term (`k == 'v'`, `k in {…}`,
//! `has(k)`, …) only looks at the endpoints carrying that label instead of at all of them.
//!
//! A selector without such a term (`all()`, `k != 'v'`, `!has(k)`) has no [`Plan`]: its callers
//! fall back to a scan.

use std::collections::BTreeSet;

use gingham_crds::selector::Expr;

use super::EndpointId;
use crate::core::compile::fxhash::Map;

/// A label term: a key, or a key with one value.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Term<'e> {
    Key(&'e str),
    Value(&'e str, &'e str),
}

/// Where to look for the endpoints an expression may match: every one of them carries at least
/// one of the terms.
#[derive(Debug, PartialEq, Eq)]
pub struct Plan<'e> {
    terms: Vec<Term<'e>>,
    /// How many endpoints the terms name (with repeats): what following the plan costs.
    cost: usize,
}

impl Plan<'_> {
    /// How many endpoints following the plan examines (at most).
    pub fn cost(&self) -> usize {
        self.cost
    }
}

/// For each label key, its values and the endpoints carrying each (by id).
#[derive(Debug, Default)]
pub struct LabelIndex {
    values: Map<String, Map<String, BTreeSet<EndpointId>>>,
}

impl LabelIndex {
    /// Records an endpoint under its labels.
    pub fn insert<'l>(&mut self, id: EndpointId, labels: impl IntoIterator<Item = &'l (String, String)>) {
        for (k, v) in labels {
            // Keys and values are few and shared by many endpoints: copy them only when new.
            let values = match self.values.get_mut(k) {
                Some(values) => values,
                None => self.values.entry(k.clone()).or_default(),
            };
            match values.get_mut(v) {
                Some(ids) => {
                    ids.insert(id);
                }
                None => {
                    values.insert(v.clone(), BTreeSet::from([id]));
                }
            }
        }
    }

    /// Forgets an endpoint recorded under these labels.
    pub fn remove<'l>(&mut self, id: EndpointId, labels: impl IntoIterator<Item = &'l (String, String)>) {
        for (k, v) in labels {
            let Some(values) = self.values.get_mut(k) else { continue };
            if let Some(keys) = values.get_mut(v) {
                keys.remove(&id);
                if keys.is_empty() {
                    values.remove(v);
                }
            }
            if values.is_empty() {
                self.values.remove(k);
            }
        }
    }

    /// The cheapest way to find the endpoints `expr` may match, or `None` when it requires no
    /// label (every endpoint is a candidate).
    pub fn plan<'e>(&self, expr: &'e Expr) -> Option<Plan<'e>> {
        let single = |term: Term<'e>| Some(Plan { cost: self.size(term), terms: vec![term] });
        match expr {
            Expr::Eq(k, v) => single(Term::Value(k, v)),
            Expr::Has(k) | Expr::StartsWith(k, _) | Expr::EndsWith(k, _) | Expr::Contains(k, _) => single(Term::Key(k)),
            Expr::In(k, values) => {
                let terms: Vec<Term<'e>> = values.iter().map(|v| Term::Value(k, v)).collect();
                Some(Plan { cost: terms.iter().map(|t| self.size(*t)).sum(), terms })
            }
            Expr::And(l, r) => match (self.plan(l), self.plan(r)) {
                (Some(a), Some(b)) => Some(if a.cost <= b.cost { a } else { b }),
                (a, b) => a.or(b),
            },
            Expr::Or(l, r) => {
                let (mut a, b) = (self.plan(l)?, self.plan(r)?);
                a.terms.extend(b.terms);
                a.cost += b.cost;
                Some(a)
            }
            Expr::All | Expr::Global | Expr::NotEq(..) | Expr::NotIn(..) | Expr::Not(_) => None,
        }
    }

    /// The endpoints a plan names (a superset of those its expression matches).
    pub fn endpoints(&self, plan: &Plan<'_>) -> BTreeSet<EndpointId> {
        let mut found = BTreeSet::new();
        for term in &plan.terms {
            let Some(values) = self.values.get(term.key()) else { continue };
            match term {
                Term::Key(_) => found.extend(values.values().flatten()),
                Term::Value(_, v) => found.extend(values.get(*v).into_iter().flatten()),
            }
        }
        found
    }

    fn size(&self, term: Term<'_>) -> usize {
        let values = self.values.get(term.key());
        match term {
            Term::Key(_) => values.map_or(0, |values| values.values().map(BTreeSet::len).sum()),
            Term::Value(_, v) => values.and_then(|values| values.get(v)).map_or(0, BTreeSet::len),
        }
    }
}

impl Term<'_> {
    fn key(&self) -> &str {
        match self {
            Term::Key(k) | Term::Value(k, _) => k,
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use gingham_crds::selector::Selector;

    use super::*;

    fn labels(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs.iter().map(|(k, v)| ((*k).to_string(), (*v).to_string())).collect()
    }

    /// The endpoints of the tests, by id.
    const NAMES: [&str; 13] = [
        "web-0", "web-1", "web-2", "web-3", "web-4", "web-5", "web-6", "web-7", "web-8", "web-9", "db-0", "db-1",
        "bare",
    ];

    fn key(name: &str) -> EndpointId {
        NAMES.iter().position(|n| *n == name).and_then(|at| EndpointId::try_from(at).ok()).unwrap()
    }

    /// web-0..web-9 (app=web), db-0 and db-1 (app=db, tier=data), and bare (no label).
    fn index() -> LabelIndex {
        let mut index = LabelIndex::default();
        for i in 0..10 {
            index.insert(key(&format!("web-{i}")), &labels(&[("app", "web")]));
        }
        for i in 0..2 {
            index.insert(key(&format!("db-{i}")), &labels(&[("app", "db"), ("tier", "data")]));
        }
        index.insert(key("bare"), &labels(&[]));
        index
    }

    /// The names the plan for `selector` yields, or `None` without a plan.
    fn candidates(index: &LabelIndex, selector: &str) -> Option<Vec<String>> {
        let selector: Selector = selector.parse().unwrap();
        let plan = index.plan(selector.expr())?;
        let mut names: Vec<String> =
            index.endpoints(&plan).into_iter().map(|id| NAMES[usize::try_from(id).unwrap()].to_string()).collect();
        names.sort();
        Some(names)
    }

    #[test]
    fn a_required_term_narrows_the_candidates_and_the_cheapest_one_wins() {
        let index = index();
        let db = Some(vec!["db-0".to_string(), "db-1".to_string()]);
        let cases: [(&str, Option<Vec<String>>); 10] = [
            ("app == 'db'", db.clone()),
            ("has(tier)", db.clone()),
            ("tier starts with 'd'", db.clone()),
            ("app in {'db', 'cache'}", db.clone()),
            ("app == 'web' && tier == 'data'", db.clone()),
            ("tier == 'data' && app != 'web'", db.clone()),
            ("app == 'db' || has(tier)", db),
            ("app == 'cache'", Some(vec![])),
            ("all()", None),
            ("app != 'web' || has(tier)", None),
        ];
        for (selector, expected) in cases {
            assert_eq!(candidates(&index, selector), expected, "{selector}");
        }
        let (a, b) = ("app == 'web'".parse::<Selector>().unwrap(), "!has(app)".parse::<Selector>().unwrap());
        assert_eq!(index.plan(a.expr()).map(|p| p.cost()), Some(10));
        assert_eq!(index.plan(b.expr()), None);
    }

    #[test]
    fn relabelled_and_removed_endpoints_leave_their_old_labels() {
        let mut index = index();
        index.remove(key("db-0"), &labels(&[("app", "db"), ("tier", "data")]));
        index.insert(key("db-0"), &labels(&[("app", "web")]));
        assert_eq!(candidates(&index, "has(tier)"), Some(vec!["db-1".to_string()]));
        assert_eq!(candidates(&index, "app == 'web'").map(|c| c.len()), Some(11));
        index.remove(key("db-1"), &labels(&[("app", "db"), ("tier", "data")]));
        assert_eq!(candidates(&index, "app == 'db' || has(tier)"), Some(vec![]));
        assert!(!index.values.contains_key("tier"), "an emptied key is dropped");
    }
}
