//! `up` and `down`: build the lab from a scenario and remove exactly what it created.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use crate::datastore::{self, DatastoreError};
use crate::pods::{self, PodError};
use crate::process::{self, SpawnError};
use crate::scenario::Scenario;
use crate::state::{LabState, NodeRecord, StateError};
use crate::stream;
use crate::topology::{self, TopologyError};

/// The lab could not be brought up or down.
#[derive(Debug, thiserror::Error)]
pub enum LabError {
    /// A gingham binary is missing.
    #[error("missing binaries in {dir}: {missing}; build them with `cargo build --workspace` (or pass --bin-dir)")]
    MissingBinaries {
        /// Where they were looked for.
        dir: String,
        /// Which ones are missing.
        missing: String,
    },
    /// Building the network failed.
    #[error(transparent)]
    Topology(#[from] TopologyError),
    /// The stream's tokens could not be written.
    #[error(transparent)]
    Stream(#[from] crate::stream::StreamSetupError),
    /// The state file failed.
    #[error(transparent)]
    State(#[from] StateError),
    /// The datastore failed.
    #[error(transparent)]
    Datastore(#[from] DatastoreError),
    /// A process could not be started.
    #[error(transparent)]
    Spawn(#[from] SpawnError),
    /// A pod could not be created.
    #[error(transparent)]
    Pod(#[from] PodError),
    /// Something did not become ready in time.
    #[error("timed out after {seconds}s waiting for {what}:\n{detail}")]
    Timeout {
        /// What was awaited.
        what: String,
        /// How long.
        seconds: u64,
        /// What is still missing.
        detail: String,
    },
    /// There is no lab with this prefix.
    #[error("no lab state in {0}; is the lab up (`gingham-lab up`)? pass --prefix or --state-dir")]
    NoLab(String),
}

/// The gingham binaries the lab runs.
pub const OPERATOR: &str = "gingham-operator";
/// The node agent binary.
pub const AGENT: &str = "gingham-node-agent";
/// The CNI plugin binary.
pub const CNI: &str = "gingham-cni";
/// Debian's reference CNI plugins (package containernetworking-plugins): the lab chains their
/// `portmap` after gingham, and the CNI benchmark's baseline is their `ptp` and `host-local`.
pub const REFERENCE_DIR: &str = "/usr/lib/cni";
/// The lab binary (pods run `gingham-lab serve`).
pub const LAB: &str = "gingham-lab";

/// How to bring a lab up.
#[derive(Debug, Clone)]
pub struct UpOptions {
    /// The state directory; default `/run/gingham-lab/<prefix>`.
    pub state_dir: Option<PathBuf>,
    /// Where the gingham binaries are.
    pub bin_dir: PathBuf,
    /// Only build namespaces and links: no operator, agents or pods.
    pub topology_only: bool,
    /// How long to wait for every NodeNetwork to be Ready.
    pub ready_timeout: Duration,
}

/// Checks that the binaries a lab needs exist in `bin_dir`.
pub fn check_binaries(bin_dir: &Path, topology_only: bool) -> Result<(), LabError> {
    let needed: &[&str] = if topology_only { &[] } else { &[OPERATOR, AGENT, CNI, LAB] };
    let missing: Vec<&str> = needed.iter().copied().filter(|b| !bin_dir.join(b).is_file()).collect();
    if !missing.is_empty() {
        return Err(LabError::MissingBinaries { dir: bin_dir.display().to_string(), missing: missing.join(", ") });
    }
    if !topology_only && !crate::pods::portmap_installed() {
        eprintln!(
            "gingham-lab: no {}/{} (Debian's containernetworking-plugins): pods are plumbed without the chained portmap, so hostPort mappings are off",
            REFERENCE_DIR,
            crate::pods::PORTMAP
        );
    }
    Ok(())
}

/// Brings a lab up from a validated scenario. A lab with the same prefix is torn down first.
pub fn up(scenario: &Scenario, options: &UpOptions) -> Result<LabState, LabError> {
    check_binaries(&options.bin_dir, options.topology_only)?;
    let state_dir = options.state_dir.clone().unwrap_or_else(|| LabState::default_dir(&scenario.prefix));
    down(&scenario.prefix, &state_dir)?;
    let mut state = LabState::new(&scenario.prefix, &state_dir, &options.bin_dir);
    state.operator = scenario.operator;
    state.save()?;
    topology::build_underlay(&mut state, &scenario.subnets)?;
    let store = state.datastore();
    for ns in &scenario.namespaces {
        datastore::put(&store, &datastore::namespace_object(ns))?;
    }
    for object in &scenario.objects {
        datastore::put(&store, object)?;
    }
    for node in &scenario.nodes {
        let record = topology::add_node(&mut state, &node.name, &node.subnet)?;
        datastore::put(&store, &datastore::node_object(&record, &node.labels))?;
    }
    if options.topology_only {
        return Ok(state);
    }
    stream::setup(&mut state)?;
    for replica in 0..state.operator.replicas {
        start_operator(&mut state, replica)?;
    }
    for node in state.nodes.clone() {
        start_agent(&mut state, &node)?;
    }
    for node in &state.nodes {
        wait_for_socket(&state, node, Duration::from_secs(60))?;
    }
    for pod in &scenario.pods {
        pods::add(&mut state, pod)?;
    }
    wait_ready(&state, options.ready_timeout)?;
    Ok(state)
}

/// Starts operator replica `replica` (0-based) on the lab's datastore, inside the underlay
/// namespace (or the control host's, for a stream over TCP: either way a prefix scan finds it after
/// a crash), serving the agents' stream where [`stream::endpoint`] says. Every replica computes and
/// serves; the one holding the datastore's leader lock writes.
pub fn start_operator(state: &mut LabState, replica: usize) -> Result<(), LabError> {
    let bin = state.bin_dir.join(OPERATOR);
    let dir = state.datastore().display().to_string();
    stream::prepare(state)?;
    let (listen, _) = stream::endpoint(state, replica);
    let tokens = stream::tokens_file(state).display().to_string();
    let offset = u16::try_from(replica).unwrap_or(0);
    let (health, metrics) = (format!("127.0.0.1:{}", 8080 + offset), format!("127.0.0.1:{}", 9090 + offset));
    let mut command = Command::new("ip");
    command.args(["netns", "exec", &stream::operator_netns(state)]).arg(bin);
    command.args(["run", "--datastore", "file", "--dir", &dir, "--health-addr", &health, "--metrics-addr", &metrics]);
    command.args(["--stream-addr", &listen, "--stream-tokens", &tokens, "--stream-heartbeat", "1"]);
    if state.operator.stream == stream::Transport::Tcp {
        // The lab's own underlay, inside its namespaces: no certificate to hand out.
        command.arg("--stream-plaintext");
    }
    let record = process::spawn(&stream::replica_name(replica), &mut command, &stream::replica_log(state, replica))?;
    state.processes.push(record);
    state.save()?;
    Ok(())
}

/// The CNI socket of a node's agent.
pub fn cni_socket(node: &NodeRecord) -> PathBuf {
    node.dir.join("cni.sock")
}

/// Where an agent takes its node's span from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SpanSource {
    /// The operator's stream, with a token of its own (how the lab runs).
    Stream,
    /// A span document (`gingham-operator render --node N --span`), for an agent on its own.
    File(PathBuf),
}

/// Starts a node's agent inside the node's namespace, following its span from the operator's
/// replicas with a token of its own.
pub fn start_agent(state: &mut LabState, node: &NodeRecord) -> Result<(), LabError> {
    start_agent_from(state, node, &SpanSource::Stream)
}

/// Starts a node's agent inside the node's namespace, with its span from `source`.
pub fn start_agent_from(state: &mut LabState, node: &NodeRecord, source: &SpanSource) -> Result<(), LabError> {
    let bin = state.bin_dir.join(AGENT);
    let path = |p: PathBuf| p.display().to_string();
    let mut command = Command::new("ip");
    command.args(["netns", "exec", &node.netns]).arg(bin).args([
        "--node",
        &node.name,
        "--datastore",
        "file",
        "--dir",
        &path(state.datastore()),
        "--state-dir",
        &path(node.dir.join("state")),
        "--cni-socket",
        &path(cni_socket(node)),
        "--bird-dir",
        &path(node.dir.join("bird")),
    ]);
    match source {
        SpanSource::Stream => {
            let token = stream::issue_token(state, node)?;
            for server in stream::servers(state) {
                command.args(["--stream-server", &server]);
            }
            command.arg("--stream-token-file").arg(token);
        }
        SpanSource::File(file) => {
            command.arg("--span-file").arg(file);
        }
    }
    let name = format!("agent {}", node.name);
    let record = process::spawn(&name, &mut command, &state.logs().join(format!("agent-{}.log", node.name)))?;
    state.processes.push(record);
    state.save()?;
    Ok(())
}

/// Adds a node to a running lab: namespace, Node object, agent (the operator assigns its blocks).
pub fn add_node(state: &mut LabState, spec: &crate::scenario::NodeSpec) -> Result<NodeRecord, LabError> {
    let record = topology::add_node(state, &spec.name, &spec.subnet)?;
    datastore::put(&state.datastore(), &datastore::node_object(&record, &spec.labels))?;
    start_agent(state, &record)?;
    wait_for_socket(state, &record, Duration::from_secs(60))?;
    Ok(record)
}

/// Removes a node from a running lab: its pods, agent, Node object and namespace.
pub fn remove_node(state: &mut LabState, name: &str) -> Result<(), LabError> {
    let pods: Vec<(String, String)> =
        state.pods.iter().filter(|p| p.node == name).map(|p| (p.namespace.clone(), p.name.clone())).collect();
    for (namespace, pod) in pods {
        pods::remove(state, &namespace, &pod)?;
    }
    let agent = format!("agent {name}");
    for record in state.processes.iter().filter(|p| p.name == agent) {
        process::stop(record, Duration::from_secs(3));
    }
    state.processes.retain(|p| p.name != agent);
    let object = serde_json::json!({"apiVersion": "v1", "kind": "Node", "metadata": {"name": name}});
    datastore::remove(&state.datastore(), &object)?;
    if let Some(netns) = state.node(name).map(|n| n.netns.clone()) {
        for pid in topology::pids_in_netns(&netns) {
            process::stop(
                &crate::state::ProcessRecord { name: format!("in {netns}"), pid, start_time: 0 },
                Duration::from_secs(2),
            );
        }
    }
    topology::remove_node(state, name)?;
    Ok(())
}

/// Kills a node's agent with SIGKILL (the agent alone: its BIRD and the kernel state stay) and
/// starts it again, as a crash and a DaemonSet restart would.
pub fn kill_and_restart_agent(state: &mut LabState, name: &str) -> Result<(), LabError> {
    let agent = format!("agent {name}");
    if let Some(record) = state.processes.iter().find(|p| p.name == agent).cloned() {
        if process::is_running(&record) {
            let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(record.pid), nix::sys::signal::Signal::SIGKILL);
        }
        for _ in 0..100 {
            if !process::is_running(&record) {
                break;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
    state.processes.retain(|p| p.name != agent);
    let node = state.node(name).cloned().ok_or_else(|| LabError::NoLab(format!("node {name}")))?;
    start_agent(state, &node)?;
    wait_for_socket(state, &node, Duration::from_secs(60))
}

/// The last lines of a log file, for error messages.
pub fn log_tail(path: &Path, lines: usize) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

fn wait_for_socket(state: &LabState, node: &NodeRecord, timeout: Duration) -> Result<(), LabError> {
    let deadline = Instant::now() + timeout;
    let socket = cni_socket(node);
    while Instant::now() < deadline {
        if socket.exists() {
            return Ok(());
        }
        let name = format!("agent {}", node.name);
        let dead = state.processes.iter().any(|p| p.name == name && !process::is_running(p));
        if dead {
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let log = state.logs().join(format!("agent-{}.log", node.name));
    Err(LabError::Timeout {
        what: format!("the agent of {} to open its CNI socket {}", node.name, socket.display()),
        seconds: timeout.as_secs(),
        detail: format!("agent log {} ends with:\n{}", log.display(), log_tail(&log, 15)),
    })
}

/// Why a node is not ready, or `None` when its NodeNetwork status says Ready=True.
pub fn not_ready(state: &LabState, node: &str) -> Option<String> {
    match datastore::node_status(&state.datastore(), node) {
        Err(e) => Some(format!("{node}: status unreadable: {e}")),
        Ok(None) => Some(format!("{node}: no status/nodenetworks/{node}.yaml yet (agent or operator not running?)")),
        Ok(Some(status)) => match datastore::condition(&status, "Ready") {
            Some((s, _)) if s == "True" => None,
            Some((s, why)) => {
                let error = status.get("lastError").and_then(|v| v.as_str()).unwrap_or("");
                Some(format!("{node}: Ready={s} {why} {error}"))
            }
            None => Some(format!("{node}: status has no Ready condition")),
        },
    }
}

/// Why a node has not applied its latest spec: Ready must be True and the status's
/// observedGeneration must equal the generated NodeNetwork's generation.
pub fn not_converged(state: &LabState, node: &str) -> Option<String> {
    if let Some(why) = not_ready(state, node) {
        return Some(why);
    }
    let wanted = datastore::generated_generation(&state.datastore(), node);
    let status = datastore::node_status(&state.datastore(), node).ok().flatten();
    let seen = status.as_ref().and_then(|s| s.get("observedGeneration")).and_then(serde_json::Value::as_i64);
    (wanted.is_some() && wanted != seen).then(|| format!("{node}: spec generation {wanted:?}, applied {seen:?}"))
}

/// Waits until every node applied its latest spec and is Ready (after an `apply`).
pub fn wait_converged(state: &LabState, timeout: Duration) -> Result<(), LabError> {
    let deadline = Instant::now() + timeout;
    loop {
        let pending: Vec<String> = state.nodes.iter().filter_map(|n| not_converged(state, &n.name)).collect();
        if pending.is_empty() {
            return Ok(());
        }
        if Instant::now() >= deadline {
            return Err(LabError::Timeout {
                what: "every node to apply its latest NodeNetwork".into(),
                seconds: timeout.as_secs(),
                detail: pending.join("\n"),
            });
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Waits until every node's NodeNetwork status says Ready=True.
pub fn wait_ready(state: &LabState, timeout: Duration) -> Result<(), LabError> {
    let deadline = Instant::now() + timeout;
    loop {
        let pending: Vec<String> = state.nodes.iter().filter_map(|n| not_ready(state, &n.name)).collect();
        if pending.is_empty() {
            return Ok(());
        }
        if Instant::now() >= deadline {
            let logs = state.logs().display().to_string();
            return Err(LabError::Timeout {
                what: "every NodeNetwork to report Ready=True".into(),
                seconds: timeout.as_secs(),
                detail: format!("{}\n(logs in {logs})", pending.join("\n")),
            });
        }
        std::thread::sleep(Duration::from_millis(250));
    }
}

/// What `down` removed.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct DownReport {
    /// Processes stopped.
    pub processes: usize,
    /// Namespaces deleted.
    pub namespaces: Vec<String>,
}

/// Removes a lab: its processes (by recorded PID, then any process inside its namespaces), its
/// namespaces (recorded, and found by prefix after a crash) and its state files. Nothing else.
pub fn down(prefix: &str, state_dir: &Path) -> Result<DownReport, LabError> {
    let mut report = DownReport::default();
    let state = LabState::load(state_dir)?;
    if let Some(state) = &state {
        for record in state.processes.iter().rev() {
            if process::is_running(record) {
                process::stop(record, Duration::from_secs(3));
                report.processes += 1;
            }
        }
    }
    let mut namespaces = topology::netns_with_prefix(prefix).map_err(TopologyError::from)?;
    if let Some(state) = &state {
        let existing = topology::list_netns().map_err(TopologyError::from)?;
        let recorded: Vec<String> =
            state.namespaces.iter().filter(|n| existing.contains(n) && !namespaces.contains(n)).cloned().collect();
        namespaces.extend(recorded);
    }
    for ns in namespaces.iter().rev() {
        for pid in topology::pids_in_netns(ns) {
            let record = crate::state::ProcessRecord { name: format!("in {ns}"), pid, start_time: 0 };
            process::stop(&record, Duration::from_secs(2));
            report.processes += 1;
        }
        topology::delete_netns(ns).map_err(TopologyError::from)?;
    }
    report.namespaces = namespaces;
    remove_state_files(state_dir);
    Ok(report)
}

fn remove_state_files(state_dir: &Path) {
    for dir in ["datastore", "logs", "nodes"] {
        let _ = std::fs::remove_dir_all(state_dir.join(dir));
    }
    let _ = std::fs::remove_file(LabState::file(state_dir));
    let _ = std::fs::remove_dir(state_dir);
}
