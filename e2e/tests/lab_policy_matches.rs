//! Rule matches beyond selectors, on a running lab, each checked over the full pod-to-pod matrix
//! on ports 80, 5432 and the probe port 8080: `serviceAccounts` (names, and a selector over the
//! accounts' labels), `services` as a destination (the service's endpoints on its target port
//! only) and as a source, and `Log` (the packet is logged with the rule's prefix, which `gingham
//! policy log` maps back to the policy, and the next rule decides). Runs as root.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::{bin_dir, up};
use gingham_crds::naming::LogTag;
use gingham_e2e::cmd;
use gingham_e2e::harness::LabGuard;
use gingham_e2e::probe::{self, Probe, Reach};

const SCENARIO: &str = "lab: {prefix: tt}
subnets:
  - {name: a, cidr: 10.231.1.0/24}
nodes:
  - {name: n1, subnet: a}
  - {name: n2, subnet: a}
  - {name: n3, subnet: a}
namespaces:
  - {name: prod, labels: {env: prod}}
  - {name: dev, labels: {env: dev}}
pods:
  - {name: web, namespace: prod, node: n1, labels: {app: web}, ports: [{name: http, port: 80}], serviceAccount: web-sa}
  - {name: db, namespace: prod, node: n2, labels: {app: db}, ports: [{port: 5432}], serviceAccount: db-sa}
  - {name: client, namespace: prod, node: n2, labels: {app: client}, serviceAccount: client-sa}
  - {name: other, namespace: prod, node: n3, labels: {app: other}, serviceAccount: other-sa}
  - {name: client, namespace: dev, node: n3, labels: {app: client}, serviceAccount: client-sa}
objects:
  - apiVersion: gingham.dev/v1
    kind: IPPool
    metadata: {name: pool}
    spec: {cidr: 10.232.0.0/16, blockSize: 26, vxlanMode: Never}
  - {apiVersion: v1, kind: ServiceAccount, metadata: {name: client-sa, namespace: prod, labels: {team: shop}}}
  - {apiVersion: v1, kind: ServiceAccount, metadata: {name: other-sa, namespace: prod, labels: {team: ops}}}
  - {apiVersion: v1, kind: ServiceAccount, metadata: {name: client-sa, namespace: dev, labels: {team: shop}}}
";

const PORTS: [u16; 3] = [80, 5432, 8080];

/// Which packets a case lets through: (source, destination, port), pods as `namespace/name`.
type Expect = fn(&str, &str, u16) -> bool;

/// Probes the full matrix on every port of [`PORTS`]; returns each disagreement with `expect`.
/// A packet is let through when it is answered or refused (the pod does not serve the port).
fn mismatches(lab: &LabGuard, case: &str, expect: Expect) -> Vec<String> {
    let mut failures = Vec::new();
    for port in PORTS {
        for ((from, to), seen) in probe::matrix(&lab.state, Probe::Tcp(port)) {
            let through = seen != Reach::Blocked;
            if through != expect(&from, &to, port) {
                failures.push(format!("{case}: {from} -> {to}:{port}: expected {}, saw {seen:?}", !through));
            }
        }
    }
    failures
}

fn cases() -> Vec<(&'static str, &'static str, Expect)> {
    vec![
        (
            "serviceAccounts names: prod's client-sa only (dev's client-sa is another account)",
            "apiVersion: gingham.dev/v1\nkind: NetworkPolicy\nmetadata: {name: from-client-sa, namespace: prod}\nspec:\n  selector: all()\n  ingress:\n  - {action: Allow, source: {serviceAccounts: {names: [client-sa]}}}\n",
            |from, to, _| !to.starts_with("prod/") || from == "prod/client",
        ),
        (
            "serviceAccounts selector in a global policy: accounts labelled team shop, anywhere",
            "apiVersion: gingham.dev/v1\nkind: GlobalNetworkPolicy\nmetadata: {name: web-from-shop}\nspec:\n  selector: app == 'web'\n  ingress:\n  - {action: Allow, source: {serviceAccounts: {selector: team == 'shop'}}}\n",
            |from, to, _| to != "prod/web" || from.ends_with("/client"),
        ),
        (
            "services as a destination: dev egress only to prod/pg's endpoints on its target port",
            "apiVersion: v1\nkind: Service\nmetadata: {name: pg, namespace: prod}\nspec:\n  selector: {app: db}\n  ports: [{port: 15432, targetPort: 5432}]\n---\napiVersion: gingham.dev/v1\nkind: NetworkPolicy\nmetadata: {name: to-pg, namespace: dev}\nspec:\n  selector: all()\n  types: [Egress]\n  egress:\n  - {action: Allow, destination: {services: {name: pg, namespace: prod}}}\n",
            |from, to, port| from != "dev/client" || (to == "prod/db" && port == 5432),
        ),
        (
            "services as a source: prod/db only from prod/front's endpoints, any port",
            "apiVersion: v1\nkind: Service\nmetadata: {name: front, namespace: prod}\nspec:\n  selector: {app: client}\n  ports: [{port: 80}]\n---\napiVersion: gingham.dev/v1\nkind: NetworkPolicy\nmetadata: {name: from-front, namespace: prod}\nspec:\n  selector: app == 'db'\n  ingress:\n  - {action: Allow, source: {services: {name: front}}}\n",
            |from, to, _| to != "prod/db" || from == "prod/client",
        ),
    ]
}

#[test]
fn service_account_and_service_matches_over_the_full_matrix() {
    let lab = up(SCENARIO, "ghmatch");
    let mut failures = mismatches(&lab, "no policy", |_, _, _| true);
    for (case, manifests, expect) in cases() {
        lab.apply(manifests).unwrap();
        failures.extend(mismatches(&lab, case, expect));
        lab.delete(manifests).unwrap();
    }
    failures.extend(mismatches(&lab, "all removed", |_, _, _| true));
    assert!(failures.is_empty(), "{} mismatches:\n{}", failures.len(), failures.join("\n"));
}

/// Sets `net.netfilter.nf_log_all_netns` (the nodes' rulesets log from their own network
/// namespaces, which the kernel logs only with it set) and restores the old value when dropped,
/// also when the test fails.
struct LogAllNetns(String);

const LOG_ALL_NETNS: &str = "/proc/sys/net/netfilter/nf_log_all_netns";

impl LogAllNetns {
    fn on() -> Self {
        let old = std::fs::read_to_string(LOG_ALL_NETNS).unwrap().trim().to_string();
        std::fs::write(LOG_ALL_NETNS, "1").unwrap();
        Self(old)
    }
}

impl Drop for LogAllNetns {
    fn drop(&mut self) {
        if let Err(e) = std::fs::write(LOG_ALL_NETNS, &self.0) {
            eprintln!("could not restore {LOG_ALL_NETNS} to {}: {e}", self.0);
        }
    }
}

#[test]
fn a_log_rule_logs_with_its_prefix_and_the_next_rule_decides() {
    let lab = up(SCENARIO, "ghlog");
    let _logging = LogAllNetns::on();
    let policy = "apiVersion: gingham.dev/v1\nkind: GlobalNetworkPolicy\nmetadata: {name: log-web}\nspec:\n  order: 1\n  selector: app == 'web'\n  ingress:\n  - {action: Log, protocol: TCP, destination: {ports: [80]}}\n  - {action: Deny, source: {selector: app == 'other'}}\n  - {action: Allow}\n";
    lab.apply(policy).unwrap();
    let failures =
        mismatches(&lab, "Log, then Deny other, then Allow", |from, to, _| to != "prod/web" || from != "prod/other");
    let prefix = LogTag::new("global/log-web", true, 0).prefix();
    let web = lab.pod("prod/web").1;
    let kernel = cmd::run("dmesg", &[]).unwrap();
    let logged = |from: &str| {
        let source = lab.pod(from).1;
        kernel
            .lines()
            .any(|l| l.contains(&prefix) && l.contains(&format!("SRC={source} DST={web} ")) && l.contains("DPT=80 "))
    };
    let mut problems = failures;
    for from in ["prod/client", "prod/other", "dev/client"] {
        if !logged(from) {
            problems.push(format!("no kernel log line {prefix:?} for {from} -> prod/web:80"));
        }
    }
    let on_8080 = kernel.lines().any(|l| l.contains(&prefix) && l.contains("DPT=8080 "));
    if on_8080 {
        problems.push("the Log rule matched port 8080, which it does not name".into());
    }
    let line = kernel.lines().find(|l| l.contains(&prefix)).unwrap_or_default().to_string();
    let cli = bin_dir().join("gingham");
    assert!(cli.is_file(), "{} is missing: build it with `cargo build -p gingham-cli`", cli.display());
    let datastore = format!("file:{}", lab.datastore().display());
    let out = cmd::run(cli.to_str().unwrap(), &["--datastore", &datastore, "policy", "log", &line]).unwrap();
    if !out.contains("global/log-web ingress rule 0") {
        problems.push(format!("gingham policy log did not name the rule from {line:?}: {out}"));
    }
    lab.delete(policy).unwrap();
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}
