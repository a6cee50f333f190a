//! ClusterNetworkPolicy (v1alpha2) and AdminNetworkPolicy / BaselineAdminNetworkPolicy (v1alpha1)
//! against a Kubernetes NetworkPolicy on the lab, as truth tables over the full pod-to-pod matrix
//! (TCP to the probe port, every ordered pair of pods). The cases follow the upstream conformance
//! suite's (network-policy-api `conformance/tests`): an Admin Deny overrides a NetworkPolicy
//! allow, an Admin Accept overrides its isolation, an Admin Pass hands the decision to the
//! NetworkPolicy and skips the rest of the Admin tier, priorities order each tier, and the
//! Baseline decides only for pods no NetworkPolicy selects. Runs as root.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::{Stack, host_len, pod_ip, policy_scenario, up};
use gingham_e2e::pods::PROBE_PORT;
use gingham_e2e::probe::{self, Probe, Reach};

/// The pods of the policy scenario: (namespace, app).
type Pod<'a> = (&'a str, &'a str);

/// Which ordered pairs a case lets through.
type Expect = fn(Pod<'_>, Pod<'_>) -> bool;

/// The NetworkPolicy every case runs against: prod's pods take traffic from dev only.
const PROD_FROM_DEV: &str = "---
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: from-dev, namespace: prod}
spec:
  podSelector: {}
  ingress: [{from: [{namespaceSelector: {matchLabels: {env: dev}}}]}]
";

/// What the NetworkPolicy alone allows.
fn network_policy(src: Pod<'_>, dst: Pod<'_>) -> bool {
    dst.0 != "prod" || src.0 == "dev"
}

/// The two API versions: (ClusterNetworkPolicy in a tier, or the v1alpha1 kind of that tier).
#[derive(Clone, Copy, Debug)]
enum Api {
    V1alpha2,
    V1alpha1,
}

impl Api {
    /// An Admin-tier policy with ingress rules (`ALLOW` in them is the version's allow action).
    fn admin(self, name: &str, priority: u32, subject: &str, ingress: &str) -> String {
        let (head, allow) = match self {
            Api::V1alpha2 => (
                format!(
                    "apiVersion: policy.networking.k8s.io/v1alpha2\nkind: ClusterNetworkPolicy\nmetadata: {{name: {name}}}\nspec:\n  tier: Admin\n"
                ),
                "Accept",
            ),
            Api::V1alpha1 => (
                format!(
                    "apiVersion: policy.networking.k8s.io/v1alpha1\nkind: AdminNetworkPolicy\nmetadata: {{name: {name}}}\nspec:\n"
                ),
                "Allow",
            ),
        };
        format!(
            "---\n{head}  priority: {priority}\n  subject: {subject}\n  ingress:\n{}",
            ingress.replace("ALLOW", allow)
        )
    }

    /// A Baseline policy with ingress rules. v1alpha1 has one, named `default`, without priority.
    fn baseline(self, name: &str, priority: u32, subject: &str, ingress: &str) -> String {
        let (head, allow) = match self {
            Api::V1alpha2 => (
                format!("apiVersion: policy.networking.k8s.io/v1alpha2\nkind: ClusterNetworkPolicy\nmetadata: {{name: {name}}}\nspec:\n  tier: Baseline\n  priority: {priority}\n"),
                "Accept",
            ),
            Api::V1alpha1 => (
                "apiVersion: policy.networking.k8s.io/v1alpha1\nkind: BaselineAdminNetworkPolicy\nmetadata: {name: default}\nspec:\n".to_string(),
                "Allow",
            ),
        };
        format!("---\n{head}  subject: {subject}\n  ingress:\n{}", ingress.replace("ALLOW", allow))
    }
}

/// The cases of one API version: (name, objects besides the NetworkPolicy, expectation).
fn cases(api: Api, web: &str) -> Vec<(&'static str, String, Expect)> {
    let prod = "{namespaces: {matchLabels: {env: prod}}}";
    let dev = "{namespaces: {matchLabels: {env: dev}}}";
    let everyone = "{namespaces: {}}";
    let mut cases: Vec<(&'static str, String, Expect)> = vec![
        ("the NetworkPolicy alone", String::new(), network_policy),
        (
            "an Admin Deny overrides the NetworkPolicy's allow",
            api.admin("deny-dev", 10, prod, &format!("  - {{action: Deny, from: [{dev}]}}\n")),
            |_, dst| dst.0 != "prod",
        ),
        (
            "an Admin allow overrides the NetworkPolicy's isolation",
            api.admin(
                "allow-other",
                10,
                prod,
                "  - {action: ALLOW, from: [{pods: {namespaceSelector: {}, podSelector: {matchLabels: {app: other}}}}]}\n",
            ),
            |src, dst| network_policy(src, dst) || src == ("prod", "other"),
        ),
        (
            "an Admin Pass at priority 5 skips the Admin Deny at 20: the NetworkPolicy decides",
            api.admin("pass-dev", 5, prod, &format!("  - {{action: Pass, from: [{dev}]}}\n"))
                + &api.admin("deny-dev", 20, prod, &format!("  - {{action: Deny, from: [{dev}]}}\n")),
            network_policy,
        ),
        (
            "an Admin Deny at priority 5 comes before the Pass at 20",
            api.admin("deny-dev", 5, prod, &format!("  - {{action: Deny, from: [{dev}]}}\n"))
                + &api.admin("pass-dev", 20, prod, &format!("  - {{action: Pass, from: [{dev}]}}\n")),
            |_, dst| dst.0 != "prod",
        ),
        (
            "the Baseline denies only where no NetworkPolicy selects the pod",
            api.baseline("deny-all", 10, everyone, &format!("  - {{action: Deny, from: [{everyone}]}}\n")),
            |src, dst| dst.0 == "prod" && src.0 == "dev",
        ),
        (
            "an Admin Pass reaches the Baseline for pods no NetworkPolicy selects",
            api.admin("pass-all", 10, dev, &format!("  - {{action: Pass, from: [{everyone}]}}\n"))
                + &api.baseline("deny-all", 10, dev, &format!("  - {{action: Deny, from: [{everyone}]}}\n")),
            |src, dst| dst.0 == "prod" && src.0 == "dev",
        ),
        (
            "in the Baseline, the first allow (by priority or rule order) beats a later Deny",
            api.baseline(
                "web-only",
                10,
                dev,
                &format!(
                    "  - {{action: ALLOW, from: [{{pods: {{namespaceSelector: {{}}, podSelector: {{matchLabels: {{app: web}}}}}}}}]}}\n  - {{action: Deny, from: [{everyone}]}}\n"
                ),
            ),
            |src, dst| if dst.0 == "dev" { src == ("prod", "web") } else { network_policy(src, dst) },
        ),
    ];
    let egress = match api {
        Api::V1alpha2 => format!(
            "---\napiVersion: policy.networking.k8s.io/v1alpha2\nkind: ClusterNetworkPolicy\nmetadata: {{name: not-web}}\nspec:\n  tier: Admin\n  priority: 1\n  subject: {dev}\n  egress: [{{action: Deny, to: [{{networks: [{web}]}}]}}]\n"
        ),
        Api::V1alpha1 => format!(
            "---\napiVersion: policy.networking.k8s.io/v1alpha1\nkind: AdminNetworkPolicy\nmetadata: {{name: not-web}}\nspec:\n  priority: 1\n  subject: {dev}\n  egress: [{{action: Deny, to: [{{networks: [{web}]}}]}}]\n"
        ),
    };
    cases.push(("an Admin egress Deny to a network beats the NetworkPolicy's allow", egress, |src, dst| {
        network_policy(src, dst) && !(src.0 == "dev" && dst == ("prod", "web"))
    }));
    cases
}

fn pod_of(key: &str) -> Pod<'_> {
    let (namespace, name) = key.split_once('/').unwrap();
    // The scenario's pods are named after their app label.
    (namespace, name)
}

fn truth_tables_in(api: Api, stack: Stack, prefix: &str) {
    let lab = up(&policy_scenario(stack), prefix);
    lab.apply(PROD_FROM_DEV).unwrap();
    let web: Vec<String> =
        stack.families().iter().map(|f| format!("\"{}/{}\"", pod_ip(&lab, "prod/web", *f), host_len(*f))).collect();
    let mut failures = Vec::new();
    for (name, objects, expect) in cases(api, &web.join(", ")) {
        if !objects.is_empty() {
            lab.apply(&objects).unwrap();
        }
        for family in stack.families() {
            let matrix = probe::matrix_in(&lab.state, Probe::Tcp(PROBE_PORT), family);
            for ((from, to), seen) in &matrix {
                let want = expect(pod_of(from), pod_of(to));
                if (*seen == Reach::Ok) != want {
                    failures.push(format!("{api:?} {name} ({family}): {from} -> {to} expected {want}, saw {seen:?}"));
                }
            }
            if failures.iter().any(|f| f.contains(name)) {
                failures.push(probe::render(&lab.state, &matrix));
            }
        }
        if !objects.is_empty() {
            lab.delete(&objects).unwrap();
        }
    }
    assert!(failures.is_empty(), "cluster policy truth tables failed:\n{}", failures.join("\n"));
}

#[test]
fn cluster_network_policy_admin_and_baseline_against_network_policy() {
    truth_tables_in(Api::V1alpha2, Stack::V4, "ghcnp");
}

#[test]
fn admin_and_baseline_admin_network_policy_against_network_policy() {
    truth_tables_in(Api::V1alpha1, Stack::V4, "ghanp");
}

#[test]
fn cluster_network_policy_truth_tables_in_both_families_on_dual_stack() {
    truth_tables_in(Api::V1alpha2, Stack::Dual, "ghcnpd");
}
