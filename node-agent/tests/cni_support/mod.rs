//! Support for the CNI tests: throwaway network namespaces, an in-test agent API server whose fake
//! dataplane programs every ready endpoint, and a runner for the real `gingham-cni` binary.
// Each test crate uses a part of this module.
#![allow(dead_code)]

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use gingham_node_agent::api::{self, ApiContext};
use gingham_node_agent::ipam::{BlockSet, IpamStore};
use gingham_node_agent::shared::{Programmed, Shared};
use serde_json::Value;

/// A network namespace removed on drop (even when the test fails).
pub struct Netns {
    pub name: String,
}

impl Netns {
    pub fn new(label: &str) -> Self {
        let name = format!("gc-{label}-{}", std::process::id());
        let _ = Command::new("ip").args(["netns", "del", &name]).stderr(Stdio::null()).status();
        let status = Command::new("ip").args(["netns", "add", &name]).status().unwrap();
        assert!(status.success(), "ip netns add {name}");
        Self { name }
    }

    pub fn path(&self) -> String {
        format!("/run/netns/{}", self.name)
    }

    /// Runs a command inside the namespace and returns its stdout.
    pub fn run(&self, args: &[&str]) -> String {
        let output = Command::new("ip").args(["netns", "exec", &self.name]).args(args).output().unwrap();
        assert!(output.status.success(), "{args:?}: {}", String::from_utf8_lossy(&output.stderr));
        String::from_utf8_lossy(&output.stdout).into_owned()
    }

    pub fn json(&self, args: &[&str]) -> Value {
        serde_json::from_str(&self.run(args)).unwrap()
    }

    pub fn has_link(&self, name: &str) -> bool {
        Command::new("ip")
            .args(["netns", "exec", &self.name, "ip", "link", "show", "dev", name])
            .output()
            .unwrap()
            .status
            .success()
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = Command::new("ip").args(["netns", "del", &self.name]).status();
    }
}

/// An agent API server on a socket in a temporary directory; every ready endpoint is programmed.
pub struct TestAgent {
    _dir: tempfile::TempDir,
    pub socket: PathBuf,
    pub ipam: IpamStore,
    shared: Arc<Shared>,
    held: Arc<AtomicBool>,
    runtime: Option<tokio::runtime::Runtime>,
}

impl TestAgent {
    pub fn start(blocks: &[&str]) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let socket = dir.path().join("cni.sock");
        let ipam = IpamStore::open(dir.path()).unwrap();
        let shared = Arc::new(Shared::default());
        shared.set_blocks(BlockSet {
            blocks: blocks.iter().map(|b| b.parse().unwrap()).collect(),
            releasing: BTreeSet::new(),
            tunnel_blocks: Vec::new(),
        });
        let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap();
        let context = Arc::new(ApiContext { ipam: ipam.clone(), shared: Arc::clone(&shared) });
        let listener = runtime.block_on(async { api::bind(&socket) }).unwrap();
        runtime.spawn(api::serve(listener, context));
        let held = Arc::new(AtomicBool::new(false));
        runtime.spawn(fake_dataplane(ipam.clone(), Arc::clone(&shared), Arc::clone(&held)));
        Self { _dir: dir, socket, ipam, shared, held, runtime: Some(runtime) }
    }

    /// While held, the fake dataplane programs nothing (a `ready` waits for its timeout).
    pub fn hold(&self, held: bool) {
        self.held.store(held, Ordering::SeqCst);
        self.shared.endpoints_changed();
    }

    /// Stops the server and removes its socket (the agent is down).
    pub fn stop(&mut self) {
        if let Some(runtime) = self.runtime.take() {
            runtime.shutdown_background();
        }
        let _ = std::fs::remove_file(&self.socket);
    }
}

impl Drop for TestAgent {
    fn drop(&mut self) {
        self.stop();
    }
}

async fn fake_dataplane(ipam: IpamStore, shared: Arc<Shared>, held: Arc<AtomicBool>) {
    loop {
        let seq = shared.current_seq();
        let ready = ipam.list().unwrap().into_iter().filter(|a| a.ready && !held.load(Ordering::SeqCst));
        let endpoints = ready.map(|a| a.endpoint().key()).collect();
        shared.publish(Programmed { seq, endpoints, synced: true, ..Programmed::default() });
        shared.wait_for_change().await;
    }
}

/// One invocation of the real plugin, run inside `node` (the plugin's "host" namespace).
pub struct Invoke<'a> {
    pub node: &'a Netns,
    pub command: &'a str,
    pub container: &'a str,
    pub netns: String,
    pub pod: &'a str,
    pub config: Value,
}

impl Invoke<'_> {
    /// Runs as a kubelet's runtime would: CNI_ARGS names the pod in namespace `default`.
    pub fn run(&self) -> (Output, Value) {
        self.run_with_args(&self.kubernetes_args())
    }

    /// Runs with these CNI_ARGS (a runtime outside Kubernetes sets none, or only K8S_POD_NAME).
    pub fn run_with_args(&self, cni_args: &str) -> (Output, Value) {
        let output = self.spawn_with_args(cni_args).wait_with_output().unwrap();
        let json = serde_json::from_slice(&output.stdout).unwrap_or(Value::Null);
        (output, json)
    }

    /// Starts the plugin as [`Invoke::run`] does; the caller waits for (or kills) it.
    pub fn spawn(&self) -> Child {
        self.spawn_with_args(&self.kubernetes_args())
    }

    fn kubernetes_args(&self) -> String {
        format!("IgnoreUnknown=1;K8S_POD_NAMESPACE=default;K8S_POD_NAME={}", self.pod)
    }

    /// Starts the plugin with these CNI_ARGS and its configuration on stdin.
    fn spawn_with_args(&self, cni_args: &str) -> Child {
        use std::io::Write;
        let mut child = Command::new("ip")
            .args(["netns", "exec", &self.node.name, env!("CARGO_BIN_EXE_gingham-cni")])
            .env("CNI_COMMAND", self.command)
            .env("CNI_CONTAINERID", self.container)
            .env("CNI_NETNS", &self.netns)
            .env("CNI_IFNAME", "eth0")
            .env("CNI_PATH", "/opt/cni/bin")
            .env("CNI_ARGS", cni_args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        child.stdin.take().unwrap().write_all(self.config.to_string().as_bytes()).unwrap();
        child
    }
}

/// The plugin's network configuration for a socket.
pub fn config(socket: &Path) -> Value {
    serde_json::json!({
        "cniVersion": "1.1.0",
        "name": "gingham",
        "type": "gingham",
        "socketPath": socket,
        "mtu": 1400,
        "timeoutSeconds": 5,
    })
}

/// Fails (never skips) when the test cannot create namespaces.
pub fn require_root() {
    let root = Command::new("id").arg("-u").output().map(|o| o.stdout == b"0\n").unwrap_or(false);
    assert!(root, "the CNI tests need root to create network namespaces; run them as root");
}
