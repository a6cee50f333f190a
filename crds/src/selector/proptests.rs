//! Property tests: printed expressions parse back equal, and no input makes the parser panic.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::BTreeSet;

use proptest::prelude::*;

use super::{Expr, Selector};

fn key() -> impl Strategy<Value = String> {
    prop_oneof![
        "[a-zA-Z0-9]([a-zA-Z0-9_.-]{0,8}[a-zA-Z0-9])?",
        "[a-z0-9]{1,6}(\\.[a-z0-9]([a-z0-9-]{0,3}[a-z0-9])?){0,2}/[a-zA-Z0-9]([a-zA-Z0-9_.-]{0,6}[a-zA-Z0-9])?",
        prop::sample::select(vec!["has", "all", "global", "in", "not", "starts", "ends", "with", "contains",])
            .prop_map(str::to_owned),
    ]
}

fn value() -> impl Strategy<Value = String> {
    prop_oneof!["[a-z0-9 ._-]{0,8}", "[^']{0,8}", "[^\"]{0,8}"]
}

fn values() -> impl Strategy<Value = BTreeSet<String>> {
    prop::collection::btree_set(value(), 0..4)
}

fn expr() -> impl Strategy<Value = Expr> {
    let leaf = prop_oneof![
        Just(Expr::All),
        Just(Expr::Global),
        key().prop_map(Expr::Has),
        (key(), value()).prop_map(|(k, v)| Expr::Eq(k, v)),
        (key(), value()).prop_map(|(k, v)| Expr::NotEq(k, v)),
        (key(), values()).prop_map(|(k, v)| Expr::In(k, v)),
        (key(), values()).prop_map(|(k, v)| Expr::NotIn(k, v)),
        (key(), value()).prop_map(|(k, v)| Expr::StartsWith(k, v)),
        (key(), value()).prop_map(|(k, v)| Expr::EndsWith(k, v)),
        (key(), value()).prop_map(|(k, v)| Expr::Contains(k, v)),
    ];
    leaf.prop_recursive(5, 32, 2, |inner| {
        prop_oneof![
            inner.clone().prop_map(|e| Expr::Not(Box::new(e))),
            (inner.clone(), inner.clone()).prop_map(|(l, r)| Expr::And(Box::new(l), Box::new(r))),
            (inner.clone(), inner).prop_map(|(l, r)| Expr::Or(Box::new(l), Box::new(r))),
        ]
    })
}

/// Arbitrary text, selector syntax soup, and printed selectors with one piece inserted at a random
/// place (half of which still parse), so that both failing and accepted paths get exercised.
fn selector_like_text() -> impl Strategy<Value = String> {
    let piece = || {
        prop::sample::select(vec![
            "has(",
            "all()",
            "global()",
            ")",
            "(",
            "!",
            "&&",
            "||",
            "&",
            "|",
            "=",
            "==",
            "!=",
            " in ",
            " not ",
            "{",
            "}",
            ",",
            "'v'",
            "\"w\"",
            "'",
            "\"",
            " starts with ",
            "ends",
            " contains ",
            "k",
            "a.b/c",
            "-",
            "/",
            " ",
            "\n",
            "é",
            "\u{0}",
        ])
    };
    let edited = (expr(), any::<prop::sample::Index>(), piece()).prop_map(|(expr, at, piece)| {
        let mut text = expr.to_string();
        let boundaries: Vec<usize> = text.char_indices().map(|(i, _)| i).chain([text.len()]).collect();
        text.insert_str(boundaries[at.index(boundaries.len())], piece);
        text
    });
    prop_oneof![any::<String>(), prop::collection::vec(piece(), 0..24).prop_map(|pieces| pieces.concat()), edited,]
}

proptest! {
    #[test]
    fn printed_expressions_parse_back_equal(expr in expr()) {
        let text = expr.to_string();
        let parsed = Selector::parse(&text).map_err(|e| TestCaseError::fail(format!("{text:?}: {e}")))?;
        prop_assert_eq!(parsed.expr(), &expr, "text {:?}", text);
        prop_assert!(Selector::try_from(expr).is_ok());
    }

    #[test]
    fn parse_never_panics_and_accepted_text_round_trips(text in selector_like_text()) {
        if let Ok(selector) = Selector::parse(&text) {
            let printed = selector.to_string();
            prop_assert_eq!(Selector::parse(&printed).ok(), Some(selector), "printed {:?}", printed);
        }
    }
}
