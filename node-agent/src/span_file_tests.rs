//! The span file: what it holds, and how the agent follows it.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::time::Duration;

use gingham_crds::api::nodenetwork::TierPolicies;

use super::*;

const YAML: &str = "endpoints:
- name: prod/web
  ingress: [global/web]
policies:
- name: global/web
  ingress: []
ipSets:
- name: s_web
  kind: Addresses
  members: [10.244.0.5]
bgpPeers:
- name: mesh_10_0_0_2
  address: 10.0.0.2
  asNumber: 64512
";

#[test]
fn a_span_file_holds_one_node_span_document_in_yaml_or_json() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("span.yaml");
    std::fs::write(&path, YAML).unwrap();
    let span = read(&path).unwrap();
    assert_eq!(
        span.endpoints[0].ingress,
        [TierPolicies::default_tier(["global/web"])],
        "a bare name is a default-tier policy"
    );
    assert_eq!(span.ip_sets[0].members, ["10.244.0.5"]);
    assert_eq!(span.bgp_peers[0].address, "10.0.0.2");
    std::fs::write(&path, serde_json::to_string(&span).unwrap()).unwrap();
    assert_eq!(read(&path).unwrap(), span, "JSON reads the same");

    let cases = [
        ("a typo", YAML.replace("bgpPeers", "bgpPeer"), "unknown field(s) bgpPeer"),
        ("two documents", format!("{YAML}---\n{YAML}"), "2 documents, not one"),
        ("not a span", "endpoints: 3\n".to_string(), "invalid type"),
    ];
    for (case, text, message) in cases {
        std::fs::write(&path, text).unwrap();
        let error = read(&path).unwrap_err();
        assert_eq!(error.label(), "malformed", "{case}");
        assert!(error.to_string().contains(message), "{case}: {error}");
    }
    assert_eq!(read(&dir.path().join("missing.yaml")).unwrap_err().label(), "io");
}

async fn settled(inputs: &mut watch::Receiver<Snapshot>, check: impl Fn(&Snapshot) -> bool) -> Snapshot {
    tokio::time::timeout(Duration::from_secs(10), inputs.wait_for(check)).await.unwrap().unwrap().clone()
}

fn members(snapshot: &Snapshot) -> Vec<&str> {
    snapshot.span.iter().flat_map(|span| &span.ip_sets).flat_map(|set| &set.members).map(|m| m.as_str()).collect()
}

/// The span is unknown until the file is read; a change is read again; a file that becomes
/// malformed or goes away leaves the last span in force.
#[tokio::test]
async fn the_span_file_is_followed_and_a_bad_one_never_empties_the_span() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("span.yaml");
    let (datastore, inputs) = watch::channel(Snapshot::default());
    let mut merged = follow(inputs, &path);
    assert_eq!(merged.borrow().span, None, "no file yet");

    std::fs::write(&path, YAML).unwrap();
    assert_eq!(members(&settled(&mut merged, |s| s.span.is_some()).await), ["10.244.0.5"]);

    std::fs::write(&path, YAML.replace("[10.244.0.5]", "[10.244.0.5, 10.244.0.6]")).unwrap();
    settled(&mut merged, |s| members(s).len() == 2).await;

    // The datastore's side changes: the span stays.
    datastore.send_replace(Snapshot { blocks: vec![Default::default()], ..Snapshot::default() });
    let both = settled(&mut merged, |s| s.blocks.len() == 1).await;
    assert_eq!(members(&both).len(), 2);

    std::fs::write(&path, "endpoints: [").unwrap();
    std::fs::remove_file(&path).unwrap();
    std::fs::write(dir.path().join("marker"), "").unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(members(&merged.borrow()).len(), 2, "the last span read stays in force");
}
