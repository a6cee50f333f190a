//! `serviceAccounts` matches and `serviceAccountSelector` as label selectors, the way Calico
//! compiles them: an endpoint carries its service account as pseudo-labels
//! (`projectcalico.org/serviceaccount: <name>` and each of the account's labels under `pcsa.`,
//! see [`crate::core::facts::PodFacts::with_service_account`]), so `names` becomes
//! `projectcalico.org/serviceaccount in {...}` and a `selector` over the account's labels becomes
//! the same selector with every key prefixed by `pcsa.`; both are ANDed with the side's (or the
//! policy's) own selector. Scoping is the selector's: a NetworkPolicy's match stays in its
//! namespace unless the rule has a `namespaceSelector`.

use gingham_crds::api::policy::ServiceAccountMatch;
use gingham_crds::selector::{Expr, Selector};

use crate::core::facts::{SERVICE_ACCOUNT_LABEL, SERVICE_ACCOUNT_LABEL_PREFIX};

/// The selector a `serviceAccounts` match stands for (`None`: it sets no condition, as an empty
/// match does in Calico).
pub fn account_match(field: &str, accounts: &ServiceAccountMatch) -> Result<Option<Selector>, String> {
    let names =
        accounts.names.iter().flatten().filter(|n| !n.is_empty()).cloned().collect::<std::collections::BTreeSet<_>>();
    let by_name = (!names.is_empty()).then(|| Expr::In(SERVICE_ACCOUNT_LABEL.into(), names));
    let by_label =
        accounts.selector.as_deref().map(|text| account_labels(&format!("{field}.selector"), text)).transpose()?;
    let joined = and(by_label.map(|s| s.expr().clone()), by_name);
    joined.map(|expr| Selector::try_from(expr).map_err(|e| format!("{field}: {e}"))).transpose()
}

/// A selector over service-account labels, as a selector over endpoints' pseudo-labels.
pub fn account_labels(field: &str, text: &str) -> Result<Selector, String> {
    let selector = Selector::parse(text).map_err(|e| format!("{field}: {e}"))?;
    Selector::try_from(prefixed(selector.expr())).map_err(|e| format!("{field}: {e}"))
}

/// `a && b`, where a missing side (or `all()`) sets no condition.
pub fn and(a: Option<Expr>, b: Option<Expr>) -> Option<Expr> {
    let a = a.filter(|e| !matches!(e, Expr::All));
    let b = b.filter(|e| !matches!(e, Expr::All));
    match (a, b) {
        (Some(a), Some(b)) => Some(Expr::And(Box::new(a), Box::new(b))),
        (a, b) => a.or(b),
    }
}

/// The expression with every label key under `pcsa.`.
fn prefixed(expr: &Expr) -> Expr {
    let key = |k: &str| format!("{SERVICE_ACCOUNT_LABEL_PREFIX}{k}");
    match expr {
        Expr::All => Expr::All,
        Expr::Global => Expr::Global,
        Expr::Has(k) => Expr::Has(key(k)),
        Expr::Eq(k, v) => Expr::Eq(key(k), v.clone()),
        Expr::NotEq(k, v) => Expr::NotEq(key(k), v.clone()),
        Expr::In(k, v) => Expr::In(key(k), v.clone()),
        Expr::NotIn(k, v) => Expr::NotIn(key(k), v.clone()),
        Expr::StartsWith(k, v) => Expr::StartsWith(key(k), v.clone()),
        Expr::EndsWith(k, v) => Expr::EndsWith(key(k), v.clone()),
        Expr::Contains(k, v) => Expr::Contains(key(k), v.clone()),
        Expr::Not(e) => Expr::Not(Box::new(prefixed(e))),
        Expr::And(l, r) => Expr::And(Box::new(prefixed(l)), Box::new(prefixed(r))),
        Expr::Or(l, r) => Expr::Or(Box::new(prefixed(l)), Box::new(prefixed(r))),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;

    #[test]
    fn names_and_selector_become_pseudo_label_selectors() {
        let m = |names: Option<&[&str]>, selector: Option<&str>| ServiceAccountMatch {
            names: names.map(|n| n.iter().map(|s| (*s).to_string()).collect()),
            selector: selector.map(Into::into),
        };
        let cases = [
            (m(Some(&["api", "db"]), None), Some(r#"projectcalico.org/serviceaccount in {"api", "db"}"#)),
            (m(None, Some("team == 'x' || !has(tier)")), Some(r#"pcsa.team == "x" || !has(pcsa.tier)"#)),
            (
                m(Some(&["api"]), Some("team == 'x'")),
                Some(r#"pcsa.team == "x" && projectcalico.org/serviceaccount in {"api"}"#),
            ),
            (m(Some(&[]), Some("all()")), None),
            (m(None, None), None),
        ];
        for (accounts, expected) in cases {
            let got = account_match("source.serviceAccounts", &accounts).unwrap();
            assert_eq!(got.map(|s| s.to_string()).as_deref(), expected, "{accounts:?}");
        }
        assert!(account_match("x", &m(None, Some("team =="))).unwrap_err().starts_with("x.selector: "));
    }
}
