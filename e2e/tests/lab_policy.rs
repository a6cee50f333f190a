//! Kubernetes NetworkPolicy semantics on the lab, as a table of cases: each applies policies to a
//! running lab, checks who reaches prod/web (TCP 80 and the unnamed port 8080) and removes them
//! again, so policies are added and removed while the lab runs. Runs as root.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::{Stack, host_len, pod_ip, policy_scenario, pool_cidr, up};
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

/// The cases; `except_client` is an ingress peer list allowing the pools but prod/client, and
/// `to_web` an egress `to` list of prod/web's addresses (each in every family of the lab, so that
/// the expectations hold in each).
fn cases(except_client: &str, to_web: &str) -> Vec<Case> {
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
            policies: knp("deny", "prod", DENY_PROD) + &allow(except_client),
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
                        "  podSelector: {{}}\n  policyTypes: [Egress]\n  egress:\n  - to: [{to_web}]\n    ports: [{{port: 80}}]\n"
                    ),
                ),
            expect: [(true, true), (true, true), (true, false)],
        },
    ]
}

/// The Kubernetes NetworkPolicy cases in every family of `stack`: a pod selected by a policy is
/// isolated in each family at once, and every case decides the same in each.
fn kubernetes_network_policy_matrix_in(stack: Stack, prefix: &str) {
    let lab = up(&policy_scenario(stack), prefix);
    let families = stack.families();
    let except_client: String = families
        .iter()
        .map(|f| {
            let client = pod_ip(&lab, "prod/client", *f);
            format!("    - ipBlock: {{cidr: {}, except: [\"{client}/{}\"]}}\n", pool_cidr(*f), host_len(*f))
        })
        .collect();
    let to_web: Vec<String> = families
        .iter()
        .map(|f| format!("{{ipBlock: {{cidr: \"{}/{}\"}}}}", pod_ip(&lab, "prod/web", *f), host_len(*f)))
        .collect();
    let mut failures = Vec::new();
    for case in cases(&except_client, &to_web.join(", ")) {
        if !case.policies.is_empty() {
            lab.apply(&case.policies).unwrap();
        }
        for family in &families {
            let web = pod_ip(&lab, "prod/web", *family);
            for (source, (on_80, on_8080)) in SOURCES.iter().zip(case.expect) {
                let (netns, _) = lab.pod(source);
                for (port, expected) in [(80, on_80), (8080, on_8080)] {
                    let seen = probe::reach(&lab.state, &netns, &web, Probe::Tcp(port));
                    if (seen == Reach::Ok) != expected {
                        failures.push(format!(
                            "{} ({family}): {source} -> prod/web:{port} expected {expected}, saw {seen:?}",
                            case.name
                        ));
                    }
                }
            }
        }
        if !case.policies.is_empty() {
            lab.delete(&case.policies).unwrap();
        }
    }
    assert!(failures.is_empty(), "policy cases failed:\n{}", failures.join("\n"));
}

#[test]
fn kubernetes_network_policy_matrix() {
    kubernetes_network_policy_matrix_in(Stack::V4, "ghpolicy");
}

#[test]
fn kubernetes_network_policy_matrix_on_ipv6_only() {
    kubernetes_network_policy_matrix_in(Stack::V6, "ghpol6");
}

#[test]
fn kubernetes_network_policy_matrix_in_both_families_on_dual_stack() {
    kubernetes_network_policy_matrix_in(Stack::Dual, "ghpold");
}

fn gnp(name: &str, order: u32, rules: &str) -> String {
    format!(
        "---\napiVersion: gingham.dev/v1\nkind: GlobalNetworkPolicy\nmetadata: {{name: {name}}}\nspec:\n  order: {order}\n  selector: app == 'web'\n  types: [Ingress]\n  ingress:\n{rules}"
    )
}

/// The GlobalNetworkPolicy cases, probed in every family of `stack`.
fn global_network_policy_order_deny_and_pass_in(stack: Stack, prefix: &str) {
    let lab = up(&policy_scenario(stack), prefix);
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
        for family in stack.families() {
            let web = pod_ip(&lab, "prod/web", family);
            for (source, expected) in SOURCES.iter().zip(expect) {
                let (netns, _) = lab.pod(source);
                let seen = probe::reach(&lab.state, &netns, &web, Probe::Tcp(80));
                if (seen == Reach::Ok) != expected {
                    failures
                        .push(format!("{name} ({family}): {source} -> prod/web:80 expected {expected}, saw {seen:?}"));
                }
            }
        }
        lab.delete(&policies).unwrap();
    }
    assert!(failures.is_empty(), "GlobalNetworkPolicy cases failed:\n{}", failures.join("\n"));
}

/// GlobalNetworkPolicies are evaluated by order before the (translated) Kubernetes policies: the
/// first Allow or Deny decides, Pass skips the remaining policies.
#[test]
fn global_network_policy_order_deny_and_pass() {
    global_network_policy_order_deny_and_pass_in(Stack::V4, "ghgnp");
}

/// The same, on a dual-stack lab: a selector's sets hold each pod's address of each family.
#[test]
fn global_network_policy_order_deny_and_pass_in_both_families_on_dual_stack() {
    global_network_policy_order_deny_and_pass_in(Stack::Dual, "ghgnpd");
}
