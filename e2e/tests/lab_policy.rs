//! Kubernetes NetworkPolicy semantics on the lab, as a table of cases: each applies policies to a
//! running lab, checks who reaches prod/web (TCP 80 and the unnamed port 8080) and removes them
//! again, so policies are added and removed while the lab runs. Runs as root.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::{POLICY_SCENARIO as SCENARIO, up};
use gingham_e2e::probe::{self, Probe, Reach};

const SOURCES: [&str; 3] = ["prod/client", "prod/other", "dev/client"];

fn knp(name: &str, namespace: &str, spec: &str) -> String {
    format!(
        "---\napiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata: {{name: {name}, namespace: {namespace}}}\nspec:\n{spec}"
    )
}

const DENY_PROD: &str = "  podSelector: {}\n  policyTypes: [Ingress]\n";

struct Case {
    name: &'static str,
    policies: String,
    /// Expected reachability of prod/web on (port 80, port 8080) from each of SOURCES.
    expect: [(bool, bool); 3],
}

fn cases(prod_client_ip: &str, web_ip: &str) -> Vec<Case> {
    let allow = |from: &str| {
        knp("allow", "prod", &format!("  podSelector: {{matchLabels: {{app: web}}}}\n  ingress:\n  - from:\n{from}"))
    };
    vec![
        Case { name: "no policy: all allowed", policies: String::new(), expect: [(true, true); 3] },
        Case { name: "default deny ingress", policies: knp("deny", "prod", DENY_PROD), expect: [(false, false); 3] },
        Case {
            name: "allow by pod selector (same namespace only)",
            policies: knp("deny", "prod", DENY_PROD) + &allow("    - podSelector: {matchLabels: {app: client}}\n"),
            expect: [(true, true), (false, false), (false, false)],
        },
        Case {
            name: "allow by namespace selector",
            policies: knp("deny", "prod", DENY_PROD) + &allow("    - namespaceSelector: {matchLabels: {env: dev}}\n"),
            expect: [(false, false), (false, false), (true, true)],
        },
        Case {
            name: "allow by namespace and pod selector together",
            policies: knp("deny", "prod", DENY_PROD)
                + &allow(
                    "    - namespaceSelector: {matchLabels: {env: dev}}\n      podSelector: {matchLabels: {app: other}}\n",
                ),
            expect: [(false, false); 3],
        },
        Case {
            name: "ipBlock with except",
            policies: knp("deny", "prod", DENY_PROD)
                + &allow(&format!("    - ipBlock: {{cidr: 10.232.0.0/16, except: [{prod_client_ip}/32]}}\n")),
            expect: [(false, false), (true, true), (true, true)],
        },
        Case {
            name: "named port",
            policies: knp("deny", "prod", DENY_PROD)
                + &knp(
                    "allow",
                    "prod",
                    "  podSelector: {matchLabels: {app: web}}\n  ingress:\n  - ports: [{port: http}]\n",
                ),
            expect: [(true, false); 3],
        },
        Case {
            name: "port range with endPort",
            policies: knp("deny", "prod", DENY_PROD)
                + &knp(
                    "allow",
                    "prod",
                    "  podSelector: {matchLabels: {app: web}}\n  ingress:\n  - ports: [{port: 79, endPort: 81}]\n",
                ),
            expect: [(true, false); 3],
        },
        Case {
            name: "default deny egress on dev, then egress to a CIDR",
            policies: knp("deny-egress", "dev", "  podSelector: {}\n  policyTypes: [Egress]\n")
                + &knp(
                    "to-web",
                    "dev",
                    &format!(
                        "  podSelector: {{}}\n  policyTypes: [Egress]\n  egress:\n  - to: [{{ipBlock: {{cidr: {web_ip}/32}}}}]\n    ports: [{{port: 80}}]\n"
                    ),
                ),
            expect: [(true, true), (true, true), (true, false)],
        },
    ]
}

#[test]
fn kubernetes_network_policy_matrix() {
    let lab = up(SCENARIO, "ghpolicy");
    let (_, web) = lab.pod("prod/web");
    let (_, prod_client) = lab.pod("prod/client");
    let mut failures = Vec::new();
    for case in cases(&prod_client, &web) {
        if !case.policies.is_empty() {
            lab.apply(&case.policies).unwrap();
        }
        for (source, (on_80, on_8080)) in SOURCES.iter().zip(case.expect) {
            let (netns, _) = lab.pod(source);
            for (port, expected) in [(80, on_80), (8080, on_8080)] {
                let seen = probe::reach(&lab.state, &netns, &web, Probe::Tcp(port));
                if (seen == Reach::Ok) != expected {
                    failures
                        .push(format!("{}: {source} -> prod/web:{port} expected {expected}, saw {seen:?}", case.name));
                }
            }
        }
        if !case.policies.is_empty() {
            lab.delete(&case.policies).unwrap();
        }
    }
    assert!(failures.is_empty(), "policy cases failed:\n{}", failures.join("\n"));
}

fn gnp(name: &str, order: u32, rules: &str) -> String {
    format!(
        "---\napiVersion: gingham.dev/v1\nkind: GlobalNetworkPolicy\nmetadata: {{name: {name}}}\nspec:\n  order: {order}\n  selector: app == 'web'\n  types: [Ingress]\n  ingress:\n{rules}"
    )
}

/// GlobalNetworkPolicies are evaluated by order before the (translated) Kubernetes policies: the
/// first Allow or Deny decides, Pass skips the remaining policies.
#[test]
fn global_network_policy_order_deny_and_pass() {
    let lab = up(SCENARIO, "ghgnp");
    let (_, web) = lab.pod("prod/web");
    let deny_or_pass = gnp(
        "deny-other-pass-clients",
        10,
        "  - {action: Deny, source: {selector: app == 'other'}}\n  - {action: Pass, source: {selector: app == 'client'}}\n",
    );
    let allow_other = |order| gnp("allow-other", order, "  - {action: Allow, source: {selector: app == 'other'}}\n");
    let cases: Vec<(&str, String, [bool; 3])> = vec![
        ("Kubernetes default deny alone", knp("deny", "prod", DENY_PROD), [false; 3]),
        (
            "Deny at order 10 beats the rest, Pass skips the Kubernetes deny",
            knp("deny", "prod", DENY_PROD) + &deny_or_pass,
            [true, false, true],
        ),
        (
            "an Allow at order 5 comes first",
            knp("deny", "prod", DENY_PROD) + &deny_or_pass + &allow_other(5),
            [true; 3],
        ),
        (
            "the same Allow at order 50 comes after the Deny",
            knp("deny", "prod", DENY_PROD) + &deny_or_pass + &allow_other(50),
            [true, false, true],
        ),
    ];
    let mut failures = Vec::new();
    for (name, policies, expect) in cases {
        lab.apply(&policies).unwrap();
        for (source, expected) in SOURCES.iter().zip(expect) {
            let (netns, _) = lab.pod(source);
            let seen = probe::reach(&lab.state, &netns, &web, Probe::Tcp(80));
            if (seen == Reach::Ok) != expected {
                failures.push(format!("{name}: {source} -> prod/web:80 expected {expected}, saw {seen:?}"));
            }
        }
        lab.delete(&policies).unwrap();
    }
    assert!(failures.is_empty(), "GlobalNetworkPolicy cases failed:\n{}", failures.join("\n"));
}
