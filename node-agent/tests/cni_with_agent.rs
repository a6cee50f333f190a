#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
//! The real `gingham-node-agent` (file datastore, kernel dataplane, no BIRD) in a node namespace,
//! and the real `gingham-cni` adding a pod: programmed, reachable, reported, deleted; SIGTERM exits.

mod cni_support;

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use cni_support::{Invoke, Netns, config, require_root};
use serde_json::Value;

/// The agent process, stopped by PID on drop.
struct AgentProcess(Child);

impl Drop for AgentProcess {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

const SPEC: &str = "apiVersion: gingham.dev/v1
kind: NodeNetwork
metadata:
  name: node-a
  generation: 1
spec:
  address: 192.168.77.2/24
  blocks: [10.77.0.0/28]
  pools:
    - name: default
      cidr: 10.77.0.0/16
  policy:
    defaultEndpointToHostAction: Accept
";

/// The node's span: the two endpoints, with no policies (all traffic allowed).
const SPAN: &str = "endpoints:
  - name: default/web
  - name: gingham-workloads/podman-0123456789ab
";

fn wait(what: &str, mut check: impl FnMut() -> bool) {
    let start = Instant::now();
    while !check() {
        assert!(start.elapsed() < Duration::from_secs(20), "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn status(dir: &Path) -> Value {
    std::fs::read_to_string(dir.join("status/nodenetworks/node-a.yaml"))
        .ok()
        .and_then(|text| serde_saphyr::from_str::<Value>(&text).ok())
        .map(|v| v["status"].clone())
        .unwrap_or(Value::Null)
}

fn ready(status: &Value) -> bool {
    status["conditions"].as_array().is_some_and(|c| c.iter().any(|c| c["type"] == "Ready" && c["status"] == "True"))
}

/// A node namespace with an underlay address and a default route, as a real node has.
fn node_with_underlay(label: &str) -> Netns {
    let node = Netns::new(label);
    node.run(&["ip", "link", "set", "lo", "up"]);
    node.run(&["ip", "link", "add", "ul0", "type", "veth", "peer", "name", "ul1"]);
    node.run(&["ip", "link", "set", "ul1", "up"]);
    node.run(&["ip", "addr", "add", "192.168.77.2/24", "dev", "ul0"]);
    node.run(&["ip", "link", "set", "ul0", "up"]);
    // Proxy ARP answers for 169.254.1.1 only when the node has a route to it, as real nodes do.
    node.run(&["ip", "route", "add", "default", "dev", "ul0"]);
    node
}

/// Starts the real agent in `node` with [`SPEC`] and [`SPAN`] under `dir`; returns it, its
/// datastore and its CNI socket once it reports Ready.
fn start_agent(node: &Netns, dir: &Path) -> (AgentProcess, std::path::PathBuf, std::path::PathBuf) {
    let datastore = dir.join("datastore");
    std::fs::create_dir_all(datastore.join("generated/nodenetworks")).unwrap();
    std::fs::write(datastore.join("generated/nodenetworks/node-a.yaml"), SPEC).unwrap();
    std::fs::write(dir.join("span.yaml"), SPAN).unwrap();
    let socket = dir.join("cni.sock");
    let log = std::fs::File::create(dir.join("agent.log")).unwrap();
    let child = Command::new("ip")
        .args(["netns", "exec", &node.name, env!("CARGO_BIN_EXE_gingham-node-agent")])
        .args(["--node", "node-a", "--datastore", "file", "--no-bird"])
        .arg("--dir")
        .arg(&datastore)
        .arg("--state-dir")
        .arg(dir.join("state"))
        .arg("--cni-socket")
        .arg(&socket)
        .arg("--span-file")
        .arg(dir.join("span.yaml"))
        .args(["--metrics-addr", "127.0.0.1:9091", "--health-addr", "127.0.0.1:9099"])
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .unwrap();
    let agent = AgentProcess(child);
    wait("the agent to report Ready", || ready(&status(&datastore)));
    (agent, datastore, socket)
}

#[test]
fn the_real_agent_serves_the_real_plugin() {
    require_root();
    let node = node_with_underlay("agent-node");
    let pod = Netns::new("agent-pod");
    let dir = tempfile::tempdir().unwrap();
    let (mut agent, datastore, socket) = start_agent(&node, dir.path());
    let agent_log = || std::fs::read_to_string(dir.path().join("agent.log")).unwrap_or_default();
    let mode = std::fs::metadata(&socket).map(|m| std::os::unix::fs::PermissionsExt::mode(&m.permissions()) & 0o777);
    assert_eq!(mode.unwrap(), 0o600, "the CNI socket is root-only");

    let add =
        Invoke { node: &node, command: "ADD", container: "c1", netns: pod.path(), pod: "web", config: config(&socket) };
    let (output, result) = add.run();
    assert!(output.status.success(), "ADD: {result}\n{}", agent_log());
    let address = result["ips"][0]["address"].as_str().unwrap().trim_end_matches("/32").to_string();
    let host = gingham_crds::naming::endpoint_interface_name("default", "web");
    let routes = node.run(&["ip", "-4", "route", "show", &address]);
    assert!(routes.contains(&format!("dev {host}")), "the agent routes the pod: {routes}");
    let ping = Command::new("ip")
        .args(["netns", "exec", &node.name, "ping", "-c", "1", "-W", "2", &address])
        .output()
        .unwrap();
    assert!(ping.status.success(), "node -> pod: {}", String::from_utf8_lossy(&ping.stdout));
    wait("the endpoint in status", || status(&datastore)["endpoints"][0]["name"] == "default/web");
    let state = dir.path().join("state");
    for (path, expected) in [(state.clone(), 0o700), (state.join("ipam"), 0o700)]
        .into_iter()
        .chain(["lock", "allocations.json"].map(|f| (state.join("ipam").join(f), 0o600)))
    {
        let mode = std::fs::metadata(&path).map(|m| std::os::unix::fs::PermissionsExt::mode(&m.permissions()) & 0o777);
        assert_eq!(mode.unwrap(), expected, "{} is root's alone", path.display());
    }

    let get = |port: u16, path: &str| {
        let request =
            format!("exec 3<>/dev/tcp/127.0.0.1/{port}; printf 'GET {path} HTTP/1.0\\r\\n\\r\\n' >&3; cat <&3");
        node.run(&["bash", "-c", &request])
    };
    for probe in ["/healthz", "/readyz"] {
        let health = get(9099, probe);
        assert!(health.starts_with("HTTP/1.0 200") || health.starts_with("HTTP/1.1 200"), "{probe}: {health}");
    }
    let metrics = get(9091, "/metrics");
    assert!(metrics.contains("gingham_agent_sync_duration_seconds"), "{metrics}");
    let gauge = |name: &str| {
        metrics.lines().find_map(|l| l.strip_prefix(&format!("{name} "))).and_then(|v| v.trim().parse::<i64>().ok())
    };
    assert!(gauge("gingham_agent_routes").is_some_and(|n| n >= 2), "a pod route and a block blackhole: {metrics}");
    assert!(gauge("gingham_agent_nft_rules").is_some_and(|n| n > 0), "{metrics}");

    let del =
        Invoke { node: &node, command: "DEL", container: "c1", netns: pod.path(), pod: "web", config: config(&socket) };
    let (output, out) = del.run();
    assert!(output.status.success(), "DEL: {out}");
    wait("the pod route to go", || node.run(&["ip", "-4", "route", "show", &address]).trim().is_empty());

    let pid = agent.0.id().to_string();
    Command::new("kill").args(["-TERM", &pid]).status().unwrap();
    let start = Instant::now();
    let exit = loop {
        if let Some(exit) = agent.0.try_wait().unwrap() {
            break exit;
        }
        assert!(start.elapsed() < Duration::from_secs(10), "the agent did not stop on SIGTERM");
        std::thread::sleep(Duration::from_millis(100));
    };
    assert!(exit.success(), "SIGTERM is a clean exit: {exit}\n{}", agent_log());
}

/// A runtime outside Kubernetes (plain podman) sets no K8S_POD_NAMESPACE: the container is a
/// workload named by its container ID in `gingham-workloads`, addressed and policed as such.
#[test]
fn a_container_without_kubernetes_args_is_a_workload_named_by_its_id() {
    require_root();
    let node = node_with_underlay("wl-node");
    let pod = Netns::new("wl-pod");
    let dir = tempfile::tempdir().unwrap();
    let (_agent, _, socket) = start_agent(&node, dir.path());
    let agent_log = || std::fs::read_to_string(dir.path().join("agent.log")).unwrap_or_default();
    let container = "podman-0123456789ab";
    let invoke =
        |command| Invoke { node: &node, command, container, netns: pod.path(), pod: "", config: config(&socket) };
    // As podman sets it: the container's name only.
    let (output, result) = invoke("ADD").run_with_args("IgnoreUnknown=1;K8S_POD_NAME=s3");
    assert!(output.status.success(), "ADD: {result}\n{}", agent_log());
    let host = gingham_crds::naming::endpoint_interface_name(gingham_crds::naming::WORKLOAD_NAMESPACE, container);
    assert_eq!(result["interfaces"][0]["name"], host.as_str(), "{result}");
    let address = result["ips"][0]["address"].as_str().unwrap().trim_end_matches("/32").to_string();
    let ping = Command::new("ip")
        .args(["netns", "exec", &node.name, "ping", "-c", "1", "-W", "2", &address])
        .output()
        .unwrap();
    assert!(ping.status.success(), "node -> workload: {}", String::from_utf8_lossy(&ping.stdout));
    let (output, out) = invoke("DEL").run_with_args("");
    assert!(output.status.success(), "DEL without any CNI_ARGS: {out}");
    assert!(!node.has_link(&host), "the workload's veth is gone");
}
