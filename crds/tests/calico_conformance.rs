//! Calico conformance: every manifest in `shared/conformance/calico/valid/` is accepted with no field
//! dropped, and every one in `invalid/` is rejected, after changing only its apiVersion. gingham's
//! own additions (`crds/tests/conformance/calico/`, IPv6 and dual-stack) are checked alike.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::{Path, PathBuf};

use gingham_crds::manifest::{Manifest, read_documents};
use gingham_crds::offline::validate_document;
use serde_json::Value;

/// The manifests of `part` (`valid` or `invalid`): the shared corpus's, then gingham's additions.
fn corpus(part: &str) -> Vec<PathBuf> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut all = Vec::new();
    for base in ["../../shared/conformance/calico", "tests/conformance/calico"] {
        let dir = root.join(base).join(part);
        let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
            .unwrap_or_else(|e| panic!("the conformance corpus must be at {}: {e}", dir.display()))
            .map(|entry| entry.unwrap().path())
            .filter(|path| path.extension().is_some_and(|ext| ext == "yaml"))
            .collect();
        files.sort();
        assert!(!files.is_empty(), "no manifests in {}", dir.display());
        all.extend(files);
    }
    all
}

fn as_gingham(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap().replace("projectcalico.org/v3", "gingham.dev/v1")
}

/// Whether every leaf of `original` is present, equal, in `kept`.
fn missing_fields(original: &Value, kept: &Value, path: &str, missing: &mut Vec<String>) {
    match (original, kept) {
        (Value::Object(fields), Value::Object(kept_fields)) => {
            for (name, value) in fields {
                match kept_fields.get(name) {
                    Some(kept_value) => missing_fields(value, kept_value, &format!("{path}.{name}"), missing),
                    None => missing.push(format!("{path}.{name}")),
                }
            }
        }
        (Value::Array(items), Value::Array(kept_items)) if items.len() == kept_items.len() => {
            for (index, (item, kept_item)) in items.iter().zip(kept_items).enumerate() {
                missing_fields(item, kept_item, &format!("{path}[{index}]"), missing);
            }
        }
        (Value::Number(a), Value::Number(b)) if a.as_f64() == b.as_f64() => {}
        (a, b) if a == b => {}
        (a, b) => missing.push(format!("{path}: {a} became {b}")),
    }
}

fn manifest_json(manifest: &Manifest) -> Value {
    manifest.to_value().unwrap()
}

#[test]
fn every_valid_calico_manifest_is_accepted_with_no_field_dropped() {
    let mut failures = Vec::new();
    for path in corpus("valid") {
        let name = path.file_name().unwrap().to_string_lossy().to_string();
        for document in read_documents(&as_gingham(&path)).unwrap() {
            match validate_document(&document) {
                Ok(manifest) => {
                    let mut missing = Vec::new();
                    missing_fields(&document.value, &manifest_json(&manifest), "", &mut missing);
                    if !missing.is_empty() {
                        failures.push(format!("{name}: fields dropped or changed: {missing:?}"));
                    }
                }
                Err(problems) => failures.push(format!("{name}: rejected: {problems:?}")),
            }
        }
    }
    assert!(failures.is_empty(), "valid Calico manifests gingham does not accept:\n{}", failures.join("\n"));
}

#[test]
fn every_invalid_calico_manifest_is_rejected() {
    let mut accepted = Vec::new();
    let mut count = 0;
    for path in corpus("invalid") {
        count += 1;
        let name = path.file_name().unwrap().to_string_lossy().to_string();
        let documents = read_documents(&as_gingham(&path)).unwrap();
        if documents.iter().all(|document| validate_document(document).is_ok()) {
            accepted.push(name);
        }
    }
    assert!(count >= 30, "expected the whole invalid corpus, found {count} files");
    assert!(accepted.is_empty(), "invalid Calico manifests gingham accepts: {accepted:?}");
}

/// The rule each invalid manifest breaks, as a word its rejection must name.
const EXPECTED_REASONS: &[(&str, &str)] = &[
    ("bgpconfig-01", "nodeMeshPassword"),
    ("bgpconfig-02", "communities"),
    ("bgpconfig-03", "CIDR"),
    ("bgpconfig-04", "16-bit"),
    ("bgppeer-01", "node and nodeSelector"),
    ("bgppeer-02", "peerIP and peerSelector"),
    ("bgppeer-03", "asNumber must be empty"),
    ("bgppeer-04", "keepOriginalNextHop"),
    ("bgppeer-05", "AS number"),
    ("bgppeer-06", "AS number"),
    ("bgppeer-07", "AS number"),
    ("bgppeer-08", "peerIP"),
    ("bgppeer-09", "selector"),
    ("felix-01", "pattern"),
    ("felix-02", "greater than or equal to 1"),
    ("felix-03", "nodeSelector"),
    ("felix-04", "IPv4"),
    ("ippool-01", "both"),
    ("ippool-02", "IPv6"),
    ("ippool-03", "blockSize"),
    ("ippool-04", "blockSize"),
    ("ippool-05", "blockSize"),
    ("ippool-06", "masked"),
    ("ippool-07", "link-local"),
    ("ippool-08", "unsupported value"),
    ("ippool-09", "smaller than one block"),
    ("ippool-10", "LoadBalancer"),
    ("policy-01", "unsupported value"),
    ("policy-02", "protocol"),
    ("policy-03", "protocol"),
    ("policy-04", "selector"),
    ("policy-05", "ICMP code"),
    ("policy-06", "ipVersion"),
    ("policy-07", "preDNAT and doNotTrack"),
    ("policy-08", "applyOnForward"),
    ("policy-09", "services"),
    ("svc-services-with-namespaceSelector", "namespaceSelector cannot be combined with services"),
    ("svc-services-with-nets", "nets cannot be combined with services"),
    ("svc-services-with-notSelector", "notSelector cannot be combined with services"),
    ("svc-services-with-selector", "selector cannot be combined with services"),
    ("svc-services-with-serviceAccounts", "serviceAccounts cannot be combined with services"),
    ("ipv6-ippool-01", "IPIP is not supported on IPv6 pools: set ipipMode to Never"),
    ("ipv6-ippool-02", "spec.cidr: cidr must be strictly masked"),
    ("ipv6-ippool-03", "spec.blockSize: must be less than or equal to 128"),
    ("ipv6-ippool-04", "blockSize must be between 20 and 32 for IPv4 pools and between 116 and 128 for IPv6"),
    ("ipv6-policy-01", "source.nets[0]: 10.0.0.0/8 is not an IPv6 network"),
    ("tier-01", "must be named security.<name>"),
    ("tier-02", "unsupported value"),
    ("tier-03", "fixed order"),
    ("tier-04", "not a DNS label"),
    ("netset-01", "spec.nets[1]: \"203.0.113.300/24\" is not an IP address or CIDR"),
    ("netset-02", "spec.nets[0]: \"2001:db8::/129\" is not an IP address or CIDR"),
    ("netset-03", "allowedEgressDomains is a Calico Enterprise feature gingham does not implement"),
    ("hep-01", "at least one of interfaceName and expectedIPs must be set"),
    ("hep-02", "* stands alone for all interfaces"),
    ("hep-03", "spec.expectedIPs[0]"),
    ("hep-04", "TCP, UDP or SCTP"),
];

#[test]
fn every_invalid_calico_manifest_is_rejected_for_its_rule() {
    let mut wrong = Vec::new();
    for path in corpus("invalid") {
        let name = path.file_name().unwrap().to_string_lossy().to_string();
        let (_, reason) = EXPECTED_REASONS
            .iter()
            .find(|(prefix, _)| name.starts_with(prefix))
            .unwrap_or_else(|| panic!("{name} is new: add the rule it breaks to EXPECTED_REASONS"));
        let messages: Vec<String> = read_documents(&as_gingham(&path))
            .unwrap()
            .iter()
            .filter_map(|document| validate_document(document).err())
            .flatten()
            .map(|problem| format!("{}: {}", problem.path, problem.message))
            .collect();
        if !messages.iter().any(|m| m.contains(reason)) {
            wrong.push(format!("{name}: expected a rejection naming {reason:?}, got {messages:?}"));
        }
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}
