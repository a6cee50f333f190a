//! Shared plumbing for the kernel tests: throwaway network namespaces removed on drop, code run
//! inside a namespace on a dedicated thread, and small fixtures for nodes and pods.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, dead_code)]

use std::future::Future;
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::process::Command;
use std::time::Duration;

use gingham_crds::api::IPAMBlockSpec;
use gingham_crds::api::nodenetwork::{EndpointPolicy, NodeNetworkSpec};
use gingham_crds::api::span::NodeSpan;
use gingham_node_agent::dataplane::kernel::SyncStats;
use gingham_node_agent::dataplane::plan::NodePlan;
use gingham_node_agent::dataplane::{Dataplane, KernelDataplane, NodeView, SyncReport};
use gingham_node_agent::endpoint::LocalEndpoint;
use nix::sched::{CloneFlags, setns};

pub mod vm;

/// Fails (never skips) when this process cannot create network namespaces: the kernel tests run
/// as root (README), and one that returned early would look like a pass.
pub fn require_root() {
    assert!(
        nix::unistd::Uid::effective().is_root(),
        "kernel tests need root (CAP_NET_ADMIN) to create network namespaces; run them as root"
    );
}

/// A network namespace named `gk-<test>-<pid>-<role>`, deleted on drop.
pub struct Netns {
    /// The namespace name.
    pub name: String,
}

impl Netns {
    /// Creates the namespace with `lo` up.
    pub fn new(test: &str, role: &str) -> Self {
        let name = format!("gk-{test}-{}-{role}", std::process::id());
        let _ = Command::new("ip").args(["netns", "del", &name]).output();
        run("ip", &["netns", "add", &name]);
        let ns = Self { name };
        ns.ip("link set lo up");
        ns
    }

    /// Runs `ip <args>` inside the namespace and panics on failure.
    pub fn ip(&self, args: &str) -> String {
        let mut full = vec!["-n", &self.name];
        full.extend(args.split_whitespace());
        run("ip", &full)
    }

    /// Runs a shell command inside the namespace; returns (success, stdout + stderr).
    pub fn sh(&self, command: &str) -> (bool, String) {
        let output = Command::new("ip").args(["netns", "exec", &self.name, "sh", "-c", command]).output().unwrap();
        let text = format!("{}{}", String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr));
        (output.status.success(), text)
    }

    /// Runs `f`'s future on a thread that has entered this namespace.
    pub fn run<F, Fut, T>(&self, f: F) -> T
    where
        F: FnOnce() -> Fut + Send + 'static,
        Fut: Future<Output = T>,
        T: Send + 'static,
    {
        let path = format!("/run/netns/{}", self.name);
        std::thread::spawn(move || {
            let file = std::fs::File::open(&path).unwrap();
            setns(file, CloneFlags::CLONE_NEWNET).unwrap();
            let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
            runtime.block_on(f())
        })
        .join()
        .unwrap()
    }

    /// One sync by a fresh [`KernelDataplane`] (as after an agent restart).
    pub fn sync(&self, node: &Node) -> (SyncReport, SyncStats) {
        let node = node.clone();
        self.run(move || async move {
            let mut dataplane = KernelDataplane::connect().unwrap();
            let report = dataplane.sync(&node.view(&node.plan())).await;
            (report, dataplane.last_sync().clone())
        })
    }

    /// A TCP listener on `port` inside the namespace, accepting forever and answering each client
    /// with its peer address.
    pub fn serve_peer_address(&self, port: u16) {
        let path = format!("/run/netns/{}", self.name);
        let (ready, wait) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let file = std::fs::File::open(&path).unwrap();
            setns(file, CloneFlags::CLONE_NEWNET).unwrap();
            let listener = TcpListener::bind(("0.0.0.0", port)).unwrap();
            ready.send(()).unwrap();
            for stream in listener.incoming().flatten() {
                use std::io::Write;
                let mut stream = stream;
                let peer = stream.peer_addr().map(|p| p.ip().to_string()).unwrap_or_default();
                let _ = stream.write_all(peer.as_bytes());
            }
        });
        wait.recv().unwrap();
    }

    /// Connects from inside the namespace; returns what the server answered, or `None` when the
    /// connection failed or timed out.
    pub fn connect(&self, address: Ipv4Addr, port: u16) -> Option<String> {
        self.run(move || async move {
            use std::io::Read;
            let target = SocketAddr::from((address, port));
            let mut stream = TcpStream::connect_timeout(&target, Duration::from_millis(1500)).ok()?;
            stream.set_read_timeout(Some(Duration::from_millis(1500))).ok()?;
            let mut answer = String::new();
            stream.read_to_string(&mut answer).ok()?;
            Some(answer)
        })
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = Command::new("ip").args(["netns", "del", &self.name]).output();
    }
}

/// Runs a command and panics with its output on failure.
pub fn run(program: &str, args: &[&str]) -> String {
    let output = Command::new(program).args(args).output().unwrap();
    let text = format!("{}{}", String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr));
    assert!(output.status.success(), "{program} {args:?} failed: {text}");
    text
}

/// Connects two namespaces with a veth pair and addresses them (`a_address`, `b_address` with prefix).
pub fn link(a: &Netns, a_if: &str, a_address: &str, b: &Netns, b_if: &str, b_address: &str) {
    a.ip(&format!("link add {a_if} type veth peer name {b_if} netns {}", b.name));
    a.ip(&format!("addr add {a_address} dev {a_if}"));
    b.ip(&format!("addr add {b_address} dev {b_if}"));
    a.ip(&format!("link set {a_if} up"));
    b.ip(&format!("link set {b_if} up"));
}

/// What the CNI plugin would do for a pod: a veth from the node into the pod's namespace, the
/// pod's /32 and its default route via 169.254.1.1. The host side stays down (the dataplane
/// brings it up).
pub fn plumb_pod(node: &Netns, pod_ns: &Netns, endpoint: &LocalEndpoint) {
    node.ip(&format!("link add {} type veth peer name eth0 netns {}", endpoint.interface, pod_ns.name));
    node.ip(&format!("link set {} address ee:ee:ee:ee:ee:ee", endpoint.interface));
    pod_ns.ip(&format!("addr add {}/32 dev eth0", endpoint.address.expect("an IPv4 endpoint")));
    pod_ns.ip("link set eth0 up");
    pod_ns.ip("route add 169.254.1.1 dev eth0 scope link");
    pod_ns.ip("route add default via 169.254.1.1 dev eth0");
}

/// A local endpoint in namespace `default`.
pub fn endpoint(pod: &str, address: [u8; 4]) -> LocalEndpoint {
    LocalEndpoint {
        namespace: "default".into(),
        pod: pod.into(),
        uid: None,
        container_id: format!("c-{pod}"),
        interface: gingham_crds::naming::endpoint_interface_name("default", pod),
        address: Some(address.into()),
        address6: None,
    }
}

/// A node's view, owned so it can move into a namespace thread.
#[derive(Clone, Debug)]
pub struct Node {
    /// The node name.
    pub name: String,
    /// Its NodeNetwork spec.
    pub spec: NodeNetworkSpec,
    /// Its span; `None` while it is not known (nftables is then left as it is).
    pub span: Option<NodeSpan>,
    /// Every block in the cluster.
    pub blocks: Vec<IPAMBlockSpec>,
    /// Its pods.
    pub endpoints: Vec<LocalEndpoint>,
}

impl Node {
    /// The node's spec, span and blocks, decoded.
    pub fn plan(&self) -> NodePlan {
        NodePlan::build(&self.name, &self.spec, self.span.as_ref(), &self.blocks)
    }

    /// The borrowed view the dataplane takes over the node's [`Node::plan`]; the tunnel addresses
    /// are those its own IPAMBlocks publish (what its IPAM allocated), one per family.
    pub fn view<'a>(&'a self, plan: &'a NodePlan) -> NodeView<'a> {
        let tunnels =
            || self.blocks.iter().filter(|b| b.node == self.name).filter_map(|b| b.tunnel_address.as_ref()?.value());
        let tunnel_address = tunnels().find_map(|address| match address {
            std::net::IpAddr::V4(address) => Some(*address),
            std::net::IpAddr::V6(_) => None,
        });
        let tunnel_address6 = tunnels().find_map(|address| match address {
            std::net::IpAddr::V6(address) => Some(*address),
            std::net::IpAddr::V4(_) => None,
        });
        NodeView { plan, endpoints: &self.endpoints, tunnel_address, tunnel_address6 }
    }

    /// Gives every endpoint an empty (allow-all) policy entry in the node's span.
    pub fn allow_all(mut self) -> Self {
        self.span.get_or_insert_default().endpoints =
            self.endpoints.iter().map(|e| EndpointPolicy { name: e.key(), ..Default::default() }).collect();
        self
    }

    /// The node's span, which the test gave it.
    pub fn span_mut(&mut self) -> &mut NodeSpan {
        self.span.as_mut().expect("a node with a span")
    }
}

/// Asserts a sync succeeded completely.
pub fn assert_clean(report: &SyncReport) {
    assert!(report.errors.is_empty(), "sync errors: {:?}", report.errors);
    assert!(report.routes_programmed && report.policy_programmed, "{report:?}");
}
