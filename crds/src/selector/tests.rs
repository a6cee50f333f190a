//! Table tests of parsing, printing, evaluation and errors.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::{BTreeMap, BTreeSet, HashMap};

use super::{Expr, Selector};

fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect()
}

/// Input, and its canonical form. Both must parse to the same `Expr`, and that `Expr` must print
/// as the canonical form.
const ROUND_TRIPS: &[(&str, &str)] = &[
    (
        "role == 'webserver' && environment in {'prod','staging'}",
        r#"role == "webserver" && environment in {"prod", "staging"}"#,
    ),
    ("!has(projectcalico.org/orchestrator)", "!has(projectcalico.org/orchestrator)"),
    (r#"environment != "dev""#, r#"environment != "dev""#),
    ("all()", "all()"),
    ("", "all()"),
    (" \t\n ", "all()"),
    ("global()", "global()"),
    (r#"projectcalico.org/namespace not in {"kube-system"}"#, r#"projectcalico.org/namespace not in {"kube-system"}"#),
    ("has( kubernetes.io/hostname )", "has(kubernetes.io/hostname)"),
    ("a == 'x' || b == 'y' && c == 'z'", r#"a == "x" || (b == "y" && c == "z")"#),
    ("(a == 'x' || b == 'y') && c == 'z'", r#"(a == "x" || b == "y") && c == "z""#),
    ("has(a) && has(b) && has(c)", "has(a) && has(b) && has(c)"),
    ("has(a) && (has(b) && has(c))", "has(a) && (has(b) && has(c))"),
    ("has(a) || has(b) || has(c)", "has(a) || has(b) || has(c)"),
    ("!(a == 'x' || has(b))", r#"!(a == "x" || has(b))"#),
    ("!!has(a)", "!!has(a)"),
    ("!has(a) && has(b)", "!has(a) && has(b)"),
    ("((((has(a)))))", "has(a)"),
    ("k starts with 'pre'", r#"k starts with "pre""#),
    (r#"k ends  with "suf""#, r#"k ends with "suf""#),
    ("k contains 'mid'", r#"k contains "mid""#),
    (r#"k == "it's""#, r#"k == "it's""#),
    (r#"k == 'say "hi"'"#, r#"k == 'say "hi"'"#),
    ("k == ''", r#"k == """#),
    ("k in {}", "k in {}"),
    ("k not in {'b', 'a', 'a'}", r#"k not in {"a", "b"}"#),
    ("k == 'ünïcødé ✓'", r#"k == "ünïcødé ✓""#),
    ("has(a)||b=='x'&&!c!='y'", r#"has(a) || (b == "x" && !c != "y")"#),
    (
        "in in {'x'} && not not in {'y'} && has(has) && all == 'z' && global != ''",
        r#"in in {"x"} && not not in {"y"} && has(has) && all == "z" && global != """#,
    ),
    (
        "starts starts with 'a' || ends ends with 'b' || contains contains 'c'",
        r#"starts starts with "a" || ends ends with "b" || contains contains "c""#,
    ),
    ("global() && projectcalico.org/name == 'default'", r#"global() && projectcalico.org/name == "default""#),
    (
        "app.kubernetes.io/name=='x'&&!(tier in {'db','cache'}||has(Legacy_Flag))",
        r#"app.kubernetes.io/name == "x" && !(tier in {"cache", "db"} || has(Legacy_Flag))"#,
    ),
];

#[test]
fn parse_print_parse_round_trips() {
    for (input, canonical) in ROUND_TRIPS {
        let parsed = Selector::parse(input).unwrap_or_else(|e| panic!("{input:?}: {e}"));
        assert_eq!(parsed.to_string(), *canonical, "printing {input:?}");
        let reparsed = Selector::parse(canonical).unwrap_or_else(|e| panic!("{canonical:?}: {e}"));
        assert_eq!(reparsed, parsed, "reparsing {canonical:?}");
    }
}

#[test]
fn parses_to_the_expected_tree() {
    let has = |k: &str| Box::new(Expr::Has(k.to_owned()));
    let set = |vs: &[&str]| vs.iter().map(|v| (*v).to_owned()).collect::<BTreeSet<_>>();
    let cases = [
        ("", Expr::All),
        ("has(a) && has(b) || has(c)", Expr::Or(Box::new(Expr::And(has("a"), has("b"))), has("c"))),
        ("has(a) || has(b) && has(c)", Expr::Or(has("a"), Box::new(Expr::And(has("b"), has("c"))))),
        ("has(a) && has(b) && has(c)", Expr::And(Box::new(Expr::And(has("a"), has("b"))), has("c"))),
        ("!has(a) && has(b)", Expr::And(Box::new(Expr::Not(has("a"))), has("b"))),
        ("k in {'a', \"b\"}", Expr::In("k".to_owned(), set(&["a", "b"]))),
        ("k not in {}", Expr::NotIn("k".to_owned(), set(&[]))),
    ];
    for (input, expected) in cases {
        assert_eq!(Selector::parse(input).unwrap().expr(), &expected, "{input:?}");
    }
}

/// A selector, the labels it is evaluated against, and whether it matches.
type EvalCase = (&'static str, &'static [(&'static str, &'static str)], bool);

#[test]
fn evaluates_against_labels() {
    let cases: &[EvalCase] = &[
        ("all()", &[], true),
        ("", &[("a", "b")], true),
        ("global()", &[], true),
        ("k == 'v'", &[("k", "v")], true),
        ("k == 'v'", &[("k", "w")], false),
        ("k == 'v'", &[], false),
        ("k == ''", &[("k", "")], true),
        ("k == ''", &[], false),
        ("k != 'v'", &[("k", "v")], false),
        ("k != 'v'", &[("k", "w")], true),
        ("k != 'v'", &[], true),
        ("has(k)", &[("k", "")], true),
        ("has(k)", &[("K", "x")], false),
        ("!has(k)", &[], true),
        ("k in {'a', 'b'}", &[("k", "b")], true),
        ("k in {'a', 'b'}", &[("k", "c")], false),
        ("k in {'a', 'b'}", &[], false),
        ("k in {}", &[("k", "a")], false),
        ("k not in {'a', 'b'}", &[("k", "a")], false),
        ("k not in {'a', 'b'}", &[("k", "c")], true),
        ("k not in {'a', 'b'}", &[], true),
        ("k starts with 'pre'", &[("k", "prefix")], true),
        ("k starts with 'pre'", &[("k", "xpre")], false),
        ("k starts with ''", &[], false),
        ("k ends with 'fix'", &[("k", "suffix")], true),
        ("k ends with 'fix'", &[("k", "fixed")], false),
        ("k ends with 'fix'", &[], false),
        ("k contains 'ff'", &[("k", "suffix")], true),
        ("k contains 'zz'", &[("k", "suffix")], false),
        ("k contains ''", &[], false),
        ("has(a) && has(b)", &[("a", "1")], false),
        ("has(a) && has(b)", &[("a", "1"), ("b", "2")], true),
        ("has(a) || has(b)", &[("b", "2")], true),
        ("has(a) || has(b)", &[], false),
        ("has(a) || has(b) && has(c)", &[("a", "1")], true),
        ("(has(a) || has(b)) && has(c)", &[("a", "1")], false),
        ("!(has(a) || has(b))", &[], true),
        ("!!has(a)", &[("a", "1")], true),
        (
            "role == 'webserver' && environment in {'prod', 'staging'}",
            &[("role", "webserver"), ("environment", "staging")],
            true,
        ),
        (
            "role == 'webserver' && environment in {'prod', 'staging'}",
            &[("role", "webserver"), ("environment", "dev")],
            false,
        ),
        ("projectcalico.org/namespace not in {'kube-system'}", &[("projectcalico.org/namespace", "default")], true),
    ];
    for (input, pairs, expected) in cases {
        let selector = Selector::parse(input).unwrap();
        let btree = labels(pairs);
        let hash: HashMap<String, String> = btree.clone().into_iter().collect();
        assert_eq!(selector.matches(&btree), *expected, "{input:?} on {pairs:?}");
        assert_eq!(selector.matches(&hash), *expected, "{input:?} on {pairs:?} (HashMap)");
    }
}

#[test]
fn rejects_invalid_selectors_saying_where_and_why() {
    // (input, position in characters, part of `expected`, part of `found`)
    let deep_parens = format!("{}has(a)", "(".repeat(150));
    let long_chain = format!("{}has(a)", "has(a) && ".repeat(1001));
    let cases: &[(&str, usize, &str, &str)] = &[
        ("thing=hello &", 5, "an operator", "`=`"),
        ("thing == 'hello' &", 17, "`&&`, `||` or end of input", "`&`"),
        ("thing == 'hello' |", 17, "`&&`, `||` or end of input", "`|`"),
        ("thing == hello", 9, "a label value in quotes", "`hello`"),
        ("thing == ", 9, "a label value in quotes", "end of input"),
        ("k === 'v'", 4, "a label value in quotes", "`=`"),
        ("k == 'abc", 5, "a label value in quotes", "an unterminated string `'abc`"),
        ("k", 1, "an operator", "end of input"),
        ("k > 'v'", 2, "an operator", "`>`"),
        ("k not 'a'", 6, "`in` after `not`", "`'a'`"),
        ("k starts 'a'", 9, "`with` after `starts`", "`'a'`"),
        ("k ends", 6, "`with` after `ends`", "end of input"),
        ("k in 'a'", 5, "`{`", "`'a'`"),
        ("k in {'a',}", 10, "a label value in quotes", "`}`"),
        ("k in {'a' 'b'}", 10, "`,` or `}`", "`'b'`"),
        ("k in {'a'", 9, "`,` or `}`", "end of input"),
        ("(has(a)", 7, "`)` to close the `(` at character 0", "end of input"),
        ("has(a))", 6, "`&&`, `||` or end of input", "`)`"),
        ("has(a) has(b)", 7, "`&&`, `||` or end of input", "`has`"),
        ("has()", 4, "a label key", "`)`"),
        ("has(a", 5, "`)`", "end of input"),
        ("all(x)", 4, "`)`", "`x`"),
        ("()", 1, "a selector term", "`)`"),
        ("&& has(a)", 0, "a selector term", "`&&`"),
        ("has(a) &&", 9, "a selector term", "end of input"),
        ("!", 1, "a selector term", "end of input"),
        ("'v' == k", 0, "a selector term", "`'v'`"),
        ("-bad == 'x'", 0, "start and end with a letter or digit", "`-bad`"),
        ("bad. == 'x'", 0, "start and end with a letter or digit", "`bad.`"),
        ("a/b/c == 'x'", 0, "at most one `/`", "`a/b/c`"),
        ("example.com/ == 'x'", 0, "must not be empty", "`example.com/`"),
        ("Example.com/x == 'x'", 0, "lowercase DNS name", "`Example.com/x`"),
        ("/x == 'x'", 0, "lowercase DNS name", "`/x`"),
        ("has(a..b/c)", 4, "lowercase DNS name", "`a..b/c`"),
        ("é == 'x'", 0, "a selector term", "`é`"),
        ("k == 'é' && ü", 12, "a selector term", "`ü`"),
        (&deep_parens, 100, "at most 100 nested", "deeper nesting"),
        (&long_chain, 9997, "at most 1000 nested operators", "a deeper expression"),
    ];
    for (input, position, expected, found) in cases {
        let err = Selector::parse(input).expect_err(input);
        assert_eq!(err.position, *position, "position for {input:?}: {err}");
        assert!(err.expected.contains(expected), "expected for {input:?}: {err}");
        assert!(err.found.contains(found), "found for {input:?}: {err}");
    }
}

#[test]
fn error_message_says_where_what_was_expected_and_what_was_found() {
    let err = Selector::parse("environment == ").unwrap_err();
    assert_eq!(
        err.to_string(),
        "invalid selector at character 15: expected a label value in quotes, found end of input"
    );
}

#[test]
fn label_keys_lists_every_key_once() {
    let cases: &[(&str, &[&str])] = &[
        ("all()", &[]),
        ("has(a) && !(b == 'x' || a in {'y'})", &["a", "b"]),
        ("k starts with 'p' || j ends with 's' || i contains 'x' || h not in {}", &["h", "i", "j", "k"]),
    ];
    for (input, keys) in cases {
        let selector = Selector::parse(input).unwrap();
        assert_eq!(selector.label_keys().into_iter().collect::<Vec<_>>(), *keys, "{input:?}");
    }
}

#[test]
fn serde_uses_the_canonical_string_and_reports_parse_errors() {
    let selector = Selector::parse("has(a)&&b=='c'").unwrap();
    let json = serde_json::to_string(&selector).unwrap();
    assert_eq!(json, r#""has(a) && b == \"c\"""#);
    assert_eq!(serde_json::from_str::<Selector>(&json).unwrap(), selector);
    assert_eq!(serde_json::from_str::<Selector>(r#""""#).unwrap(), Selector::all());

    let err = serde_json::from_str::<Selector>(r#""thing == 'hello' &""#).unwrap_err();
    assert!(
        err.to_string().contains("invalid selector at character 17: expected `&&`, `||` or end of input, found `&`"),
        "{err}"
    );
    assert!(serde_json::from_str::<Selector>("42").is_err());
}

#[test]
fn schema_is_an_inline_string() {
    let schema = schemars::SchemaGenerator::default().into_root_schema_for::<Selector>();
    assert_eq!(schema.get("type"), Some(&serde_json::json!("string")));
}

#[test]
fn try_from_expr_accepts_only_printable_expressions() {
    let ok = Expr::Eq("projectcalico.org/namespace".to_owned(), "default".to_owned());
    assert_eq!(Selector::try_from(ok.clone()).unwrap().expr(), &ok);
    let cases = [
        Expr::Has("not a key".to_owned()),
        Expr::Has("-x".to_owned()),
        Expr::Eq("k".to_owned(), r#"it's "quoted""#.to_owned()),
        Expr::Eq("k".to_owned(), r#"' || has(x) || k == '""#.to_owned()),
    ];
    for expr in cases {
        assert!(Selector::try_from(expr.clone()).is_err(), "{expr:?}");
    }
}
