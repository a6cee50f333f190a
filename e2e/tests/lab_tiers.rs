//! Policy tiers on the lab, as truth tables over the whole pod-to-pod ping matrix: tier order,
//! Pass to the next tier, and each default action (Deny and Pass). Each case applies Tiers and
//! policies to a running lab, probes every pair in every family of the lab and removes them again.
//! Runs as root.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::{Stack, policy_scenario, up};
use gingham_e2e::probe::{self, Probe, Reach};

/// Which (source, destination) pairs, by `namespace/pod`, a case lets through.
type Expect = fn(&str, &str) -> bool;

fn tier(name: &str, order: u32, default_action: &str) -> String {
    format!(
        "---\napiVersion: gingham.dev/v1\nkind: Tier\nmetadata: {{name: {name}}}\nspec: {{order: {order}, defaultAction: {default_action}}}\n"
    )
}

fn gnp(name: &str, spec: &str) -> String {
    format!("---\napiVersion: gingham.dev/v1\nkind: GlobalNetworkPolicy\nmetadata: {{name: {name}}}\nspec:\n{spec}")
}

fn app(pod: &str) -> &str {
    pod.rsplit('/').next().unwrap_or_default()
}

fn cases() -> Vec<(&'static str, String, Expect)> {
    let security = tier("security", 100, "Deny");
    let platform = tier("platform", 200, "Pass");
    vec![
        (
            "tier order: a security-tier deny of dev beats a default-tier allow of everything",
            security.clone()
                + &gnp(
                    "security.deny-dev",
                    "  tier: security\n  selector: all()\n  ingress:\n  - {action: Deny, source: {namespaceSelector: env == 'dev'}}\n  - {action: Pass}\n",
                )
                + &gnp("allow-all", "  selector: all()\n  ingress:\n  - {action: Allow}\n"),
            |source, _| !source.starts_with("dev/"),
        ),
        (
            "Pass ends the tier: the next tier (default, a Kubernetes default deny in prod) decides",
            security.clone()
                + &gnp(
                    "security.pass-clients",
                    "  tier: security\n  order: 1\n  selector: all()\n  ingress:\n  - {action: Pass, source: {selector: app == 'client'}}\n",
                )
                + &gnp(
                    "security.deny-rest",
                    "  tier: security\n  order: 2\n  selector: all()\n  ingress:\n  - {action: Deny}\n",
                )
                + "---\napiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata: {name: deny, namespace: prod}\nspec:\n  podSelector: {}\n  policyTypes: [Ingress]\n",
            |source, destination| app(source) == "client" && !destination.starts_with("prod/"),
        ),
        (
            "default action Deny: a tier that selects web but does not decide drops the rest",
            security
                + &gnp(
                    "security.web-from-clients",
                    "  tier: security\n  selector: app == 'web'\n  ingress:\n  - {action: Allow, source: {selector: app == 'client'}}\n",
                ),
            |source, destination| destination != "prod/web" || app(source) == "client",
        ),
        (
            "default action Pass: undecided traffic goes on to the next tier (none here: allowed)",
            platform
                + &gnp(
                    "platform.deny-other",
                    "  tier: platform\n  selector: all()\n  ingress:\n  - {action: Deny, source: {selector: app == 'other'}}\n",
                ),
            |source, _| app(source) != "other",
        ),
    ]
}

fn tiers_in(stack: Stack, prefix: &str) {
    let lab = up(&policy_scenario(stack), prefix);
    let mut failures = Vec::new();
    for (name, manifests, expect) in cases() {
        lab.apply(&manifests).unwrap();
        for family in stack.families() {
            let matrix = probe::matrix_in(&lab.state, Probe::Icmp, family);
            assert_eq!(matrix.len(), 12, "every ordered pair of the four pods is probed");
            for ((source, destination), seen) in &matrix {
                let expected = expect(source, destination);
                if (*seen == Reach::Ok) != expected {
                    failures.push(format!(
                        "{name} ({family}): {source} -> {destination} expected {expected}, saw {seen:?}"
                    ));
                }
            }
        }
        lab.delete(&manifests).unwrap();
    }
    let after = probe::matrix(&lab.state, Probe::Icmp);
    assert!(after.values().all(|r| *r == Reach::Ok), "with the tiers gone, everything is open again: {after:?}");
    assert!(failures.is_empty(), "tier cases failed:\n{}", failures.join("\n"));
}

/// Tier order, Pass and both default actions, IPv4.
#[test]
fn tiers_order_pass_and_default_actions() {
    tiers_in(Stack::V4, "ghtier");
}

/// The same on a dual-stack lab, in both families.
#[test]
fn tiers_order_pass_and_default_actions_in_both_families_on_dual_stack() {
    tiers_in(Stack::Dual, "ghtierd");
}
