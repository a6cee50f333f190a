use super::*;

const NS: &str = "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: a\n";

#[test]
fn every_document_layout_is_read_with_its_line() {
    let cases: Vec<(&str, String, Vec<usize>)> = vec![
        ("one document", NS.into(), vec![1]),
        ("leading ---", format!("---\n{NS}"), vec![2]),
        (
            "--- with a flow mapping on its line",
            "--- {apiVersion: v1, kind: Namespace, metadata: {name: a}}\n".into(),
            vec![1],
        ),
        (
            "--- {…} after a block document",
            format!("{NS}--- {{apiVersion: gingham.dev/v1, kind: IPPool, metadata: {{name: p}}}}\n"),
            vec![1, 5],
        ),
        ("--- with a comment", format!("--- # the namespace\n{NS}"), vec![2]),
        ("comments before the content", format!("# header\n---\n# about a\n\n{NS}"), vec![5]),
        ("--- with a block scalar (its content starts below)", "--- |\n  some text\n".into(), vec![2]),
        ("... end markers", format!("{NS}...\n---\n{NS}...\n"), vec![1, 7]),
        ("CRLF", format!("---\r\n{}---\r\n{}", NS.replace('\n', "\r\n"), NS.replace('\n', "\r\n")), vec![2, 7]),
        ("empty and comment-only documents are skipped", format!("---\n---\n# nothing\n---\n{NS}---\n"), vec![5]),
        ("nothing at all", "# only a comment\n".into(), vec![]),
    ];
    for (case, text, lines) in cases {
        let documents = read_documents(&text).unwrap_or_else(|e| panic!("{case}: {e}"));
        assert_eq!(documents.iter().map(|d| d.line).collect::<Vec<_>>(), lines, "{case}");
    }
}

#[test]
fn a_document_on_its_marker_line_is_decoded() {
    let text = "--- {apiVersion: gingham.dev/v1, kind: IPPool, metadata: {name: p}, spec: {cidr: 10.0.0.0/16}}\n";
    let documents = read_documents(text).unwrap();
    let Ok(Manifest::IPPool(pool)) = Manifest::from_document(&documents[0]) else { panic!("an IPPool") };
    assert_eq!((pool.metadata.name.as_deref(), pool.spec.cidr.as_str()), (Some("p"), "10.0.0.0/16"));
}

#[test]
fn errors_name_their_line() {
    let cases: Vec<(&str, String, &str, usize)> = vec![
        ("unclosed flow mapping in the second document", format!("{NS}---\nkind: [a\n"), "yaml", 6),
        ("bad indentation after a --- line", format!("---\n{NS}---\nkind: a\n  b: c\n"), "yaml", 8),
        ("a bare y is a boolean", "kind: Namespace\nmetadata:\n  name: y\n".into(), "not_a_string", 3),
        (
            "a bare no, in the second document",
            format!("{NS}---\nkind: Pod\nmetadata:\n  name: a\n  namespace: no\n"),
            "not_a_string",
            9,
        ),
        ("a number", "--- {kind: Namespace, metadata: {name: 1}}\n".into(), "not_a_string", 1),
        ("an empty name", "kind: Namespace\nmetadata:\n  name:\n".into(), "not_a_string", 3),
    ];
    for (case, text, label, line) in cases {
        let error = read_documents(&text).expect_err(case);
        assert_eq!((error.label(), error.line()), (label, line), "{case}: {error}");
        assert!(error.to_string().starts_with(&format!("line {line}: ")), "{case}: {error}");
    }
}

#[test]
fn a_name_that_is_not_a_string_says_how_to_fix_it() {
    let error = read_documents("kind: Namespace\nmetadata:\n  name: y\n").unwrap_err();
    assert_eq!(
        error.to_string(),
        "line 3: metadata.name is the boolean true (YAML 1.1, as kubectl reads it, turns a bare y, yes, on, n, no or off into one), not a string: quote it, as in name: \"y\""
    );
    let error = read_documents("kind: Pod\nmetadata: {name: a, namespace: 0}\n").unwrap_err();
    assert_eq!(
        error.to_string(),
        "line 2: metadata.namespace is the number 0, not a string: quote it, as in namespace: \"y\""
    );
    assert!(read_documents("kind: Namespace\nmetadata:\n  name: \"y\"\n  namespace: 'no'\n").is_ok());
}

#[test]
fn names_written_by_gingham_read_back_as_strings() {
    for name in ["y", "no", "on", "1", "0x1f", "null", "~"] {
        let object = serde_json::json!({"kind": "Namespace", "metadata": {"name": name}});
        let text = serde_saphyr::to_string(&object).unwrap();
        let documents = read_documents(&text).unwrap_or_else(|e| panic!("{name}: {e}\n{text}"));
        assert_eq!(documents[0].value, object, "{text}");
    }
}

#[test]
fn files_are_read_up_to_the_limit() {
    let dir = std::env::temp_dir().join(format!("gingham-manifest-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let at_limit = dir.join("at.yaml");
    let over = dir.join("over.yaml");
    std::fs::write(&at_limit, "a".repeat(64)).unwrap();
    std::fs::write(&over, "a".repeat(65)).unwrap();
    let read = (read_limited(&at_limit, 64), read_limited(&over, 64));
    std::fs::remove_dir_all(&dir).unwrap();
    assert_eq!(read.0.unwrap().len(), 64);
    let error = read.1.unwrap_err();
    assert_eq!(error.label(), "too_large");
    assert_eq!(
        error.to_string(),
        format!(
            "{} is larger than 64 bytes, the limit for a manifest file: split it, or check that it is the right file",
            over.display()
        )
    );
    let missing = read_manifest_file(Path::new("/nonexistent/gingham.yaml")).unwrap_err();
    assert!(missing.is_not_found(), "{missing}");
}

#[test]
fn an_endless_file_stops_at_the_limit() {
    let started = std::time::Instant::now();
    let error = read_manifest_file(Path::new("/dev/zero")).unwrap_err();
    assert_eq!(error.label(), "too_large");
    assert!(error.to_string().contains(&format!("/dev/zero is larger than {MAX_MANIFEST_BYTES} bytes")), "{error}");
    assert!(started.elapsed() < std::time::Duration::from_secs(10), "{:?}", started.elapsed());
}

#[test]
fn an_applied_block_may_leave_its_node_address_to_the_operator_but_not_write_a_bad_one() {
    let block = |address: &str| {
        let text = format!(
            "apiVersion: gingham.dev/v1\nkind: IPAMBlock\nmetadata: {{name: 10-244-0-64-26}}\nspec: {{cidr: 10.244.0.64/26, node: n1, pool: default, nodeAddress: \"{address}\"}}\n"
        );
        let documents = read_documents(&text).unwrap();
        Manifest::from_document(&documents[0]).unwrap()
    };
    assert_eq!(block("").validate(), Ok(()), "empty: the operator fills it in from the Node");
    let errors = block("10.0.0.x").validate().unwrap_err();
    assert_eq!(errors.iter().map(|e| e.path.as_str()).collect::<Vec<_>>(), ["spec.nodeAddress"]);
}
