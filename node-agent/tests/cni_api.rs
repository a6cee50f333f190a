#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
//! The agent's socket: root-only, a stale socket is replaced, one JSON line each way, clear errors;
//! `ready` answers at once only for the pod's own policy, with the host route in place.

mod cni_support;

use std::collections::BTreeSet;
use std::io::{BufRead, BufReader, Write};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::UnixStream;
use std::sync::Arc;
use std::time::{Duration, Instant};

use cni_support::{Netns, require_root};
use gingham_crds::naming::endpoint_interface_name;
use gingham_node_agent::api::{self, AgentClient, ApiContext, Request, Response, handle};
use gingham_node_agent::ipam::{BlockSet, IpamStore};
use gingham_node_agent::shared::{Programmed, Shared};
use serde_json::Value;

fn raw(socket: &std::path::Path, line: &str) -> Value {
    let mut stream = UnixStream::connect(socket).unwrap();
    stream.write_all(line.as_bytes()).unwrap();
    let mut answer = String::new();
    BufReader::new(stream).read_line(&mut answer).unwrap();
    serde_json::from_str(&answer).unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn the_socket_speaks_one_json_line_each_way() {
    let dir = tempfile::tempdir().unwrap();
    let socket = dir.path().join("run/cni.sock");
    std::fs::create_dir_all(socket.parent().unwrap()).unwrap();
    std::fs::write(&socket, "stale").unwrap();
    let listener = api::bind(&socket).unwrap();
    assert_eq!(std::fs::metadata(&socket).unwrap().permissions().mode() & 0o777, 0o600);
    let context = ApiContext { ipam: IpamStore::open(dir.path()).unwrap(), shared: Arc::new(Shared::default()) };
    tokio::spawn(api::serve(listener, Arc::new(context)));

    let socket_path = socket.clone();
    let (garbage, unknown, status, add) = tokio::task::spawn_blocking(move || {
        let garbage = raw(&socket_path, "not json\n");
        let unknown = raw(&socket_path, "{\"op\":\"explode\"}\n");
        let client = AgentClient::new(&socket_path, Duration::from_secs(5));
        let status = client.call(&Request::Status).unwrap();
        let add = client
            .call(&Request::Add {
                container_id: "c".into(),
                netns: "/run/netns/x".into(),
                ifname: "eth0".into(),
                namespace: "default".into(),
                pod: "web".into(),
                uid: None,
                assign: Default::default(),
            })
            .unwrap();
        (garbage, unknown, status, add)
    })
    .await
    .unwrap();
    for answer in [garbage, unknown] {
        assert_eq!(answer["result"], "error", "{answer}");
        assert_eq!(answer["code"], 6, "{answer}");
        assert!(answer["msg"].as_str().unwrap().contains("same version"), "{answer}");
    }
    assert_eq!(status, Response::Status { ready: false, message: "no valid NodeNetwork for this node yet".into() });
    let Response::Error { code, msg, .. } = add else { panic!("{add:?}") };
    assert_eq!(code, 11, "no blocks yet: try again later");
    assert!(msg.contains("kubectl get nodenetworks"), "{msg}");
}

#[test]
fn a_missing_agent_is_unreachable_with_a_hint() {
    let dir = tempfile::tempdir().unwrap();
    let client = AgentClient::new(&dir.path().join("none.sock"), Duration::from_secs(1));
    let error = client.call(&Request::Status).unwrap_err();
    assert!(matches!(error, api::ClientError::Unreachable { .. }), "{error}");
    assert!(error.to_string().contains("gingham-node-agent pod running"), "{error}");
}

/// An API context with one block and no dataplane loop behind it.
fn context_with_a_block(dir: &std::path::Path) -> ApiContext {
    let shared = Arc::new(Shared::default());
    shared.set_blocks(BlockSet {
        blocks: vec!["10.66.0.0/28".parse().unwrap()],
        releasing: BTreeSet::new(),
        tunnel_blocks: Vec::new(),
    });
    ApiContext { ipam: IpamStore::open(dir).unwrap(), shared }
}

fn ready(container: &str) -> Request {
    Request::Ready { container_id: container.into(), ifname: "eth0".into(), timeout_seconds: 1 }
}

/// ADD for container `c`, pod `default/<pod>` with the Pod UID `uid`.
async fn add_pod(context: &ApiContext, pod: &str, uid: Option<&str>) {
    let add = Request::Add {
        container_id: "c".into(),
        netns: "/run/netns/x".into(),
        ifname: "eth0".into(),
        namespace: "default".into(),
        pod: pod.into(),
        uid: uid.map(str::to_string),
        assign: Default::default(),
    };
    assert!(matches!(handle(context, add).await, Response::Allocated { .. }));
}

#[tokio::test]
async fn ready_times_out_with_try_again_when_the_pod_is_never_programmed() {
    let dir = tempfile::tempdir().unwrap();
    let context = context_with_a_block(dir.path());

    let unknown = handle(&context, ready("never-added")).await;
    assert!(matches!(unknown, Response::Error { code: 3, .. }), "READY before ADD: {unknown:?}");

    add_pod(&context, "web", None).await;
    let started = Instant::now();
    let answer = handle(&context, ready("c")).await;
    let Response::Error { code, msg, .. } = answer else { panic!("nothing programmed the pod: {answer:?}") };
    assert_eq!(code, 11, "try again later");
    assert!(msg.contains("default/web") && msg.contains("status.lastError"), "says what to check: {msg}");
    assert!(started.elapsed() >= Duration::from_secs(1), "waited the full timeout: {:?}", started.elapsed());
}

/// Runs `work` on a thread inside the network namespace at `path`, on a runtime of its own (the
/// API server's route check then works on that namespace, as the agent's does on the node's).
fn in_netns<T: Send>(path: &str, work: impl FnOnce() -> T + Send) -> T {
    std::thread::scope(|scope| {
        scope
            .spawn(|| {
                let file = std::fs::File::open(path).unwrap();
                nix::sched::setns(&file, nix::sched::CloneFlags::CLONE_NEWNET).unwrap();
                work()
            })
            .join()
            .unwrap()
    })
}

/// The fast path of `ready`: when the pod's policy, compiled for the same Pod UID, is already in
/// force, `ready` answers at once, after adding the host's route to the pod when the plugin did
/// not (an older plugin). Policy compiled for another UID (a predecessor of the same name) is not
/// the pod's: `ready` waits for a sync.
#[test]
fn ready_answers_at_once_with_the_route_when_the_pods_policy_is_in_force() {
    require_root();
    let cases: [(&str, Option<&str>, Option<&str>, bool); 4] = [
        ("no uid on either side: the name decides", None, None, true),
        ("the same uid", Some("u1"), Some("u1"), true),
        ("the runtime passed no uid", Some("u1"), None, true),
        ("policy of a predecessor with another uid", Some("u1"), Some("u2"), false),
    ];
    for (case, compiled, pod_uid, fast) in cases {
        let node = Netns::new("ready-node");
        let host = endpoint_interface_name("default", "web");
        node.run(&["ip", "link", "add", &host, "type", "veth", "peer", "name", "ready-peer"]);
        node.run(&["ip", "link", "set", &host, "up"]);
        let dir = tempfile::tempdir().unwrap();
        let (answer, seq_before_ready, seq_after_add) = in_netns(&node.path(), || {
            let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
            runtime.block_on(async {
                let context = context_with_a_block(dir.path());
                context.shared.publish(Programmed {
                    policy_endpoints: [("default/web".to_string(), compiled.map(str::to_string))].into(),
                    synced: true,
                    ..Programmed::default()
                });
                let before = context.shared.current_seq();
                add_pod(&context, "web", pod_uid).await;
                let seq_after_add = context.shared.current_seq() - before;
                let seq_before_ready = context.shared.current_seq();
                let answer = handle(&context, ready("c")).await;
                if fast {
                    let again = gingham_node_agent::cni::ensure_host_routes(&host, &["10.66.0.0".parse().unwrap()]);
                    assert!(matches!(again, Ok(false)), "{case}: the route is found in place: {again:?}");
                }
                let listed = context.ipam.list().unwrap();
                assert!(listed.iter().any(|a| a.container_id == "c" && a.ready), "{case}: marked ready: {listed:?}");
                (answer, context.shared.current_seq() - seq_before_ready, seq_after_add)
            })
        });
        assert_eq!(matches!(answer, Response::Allocated { .. }), fast, "{case}: {answer:?}");
        assert_eq!(seq_before_ready, 1, "{case}: ready requests a sync");
        assert_eq!(seq_after_add, u64::from(!fast), "{case}: ADD syncs at once only to drop a predecessor's policy");
        let routes = node.run(&["ip", "-4", "route", "show", "proto", "249"]);
        assert_eq!(routes.contains(&format!("10.66.0.0 dev {host} scope link")), fast, "{case}: {routes}");
    }
}

/// ADD takes the families the CNI configuration asks for and the pools the pod's span entry
/// names (its annotations, resolved by the operator); a pool the node has no block of, or a
/// value the operator could not resolve, fails the ADD naming the annotation and the pool.
#[tokio::test]
async fn add_allocates_from_the_families_and_pools_the_pod_asks_for() {
    use gingham_crds::api::nodenetwork::EndpointPolicy;
    use gingham_crds::api::span::NodeSpan;
    use gingham_node_agent::ipam::Assign;

    let dir = tempfile::tempdir().unwrap();
    let shared = Arc::new(Shared::default());
    let blocks = ["10.66.0.0/30", "10.77.0.0/30", "fd00:66::/126", "fd00:77::/126"];
    shared.set_blocks(BlockSet {
        blocks: blocks.iter().map(|b| b.parse().unwrap()).collect(),
        releasing: BTreeSet::new(),
        tunnel_blocks: Vec::new(),
    });
    let entry = |pod: &str, v4: &[&str], v6: &[&str]| EndpointPolicy {
        name: format!("default/{pod}"),
        ipv4_pools: v4.iter().map(|p| (*p).into()).collect(),
        ipv6_pools: v6.iter().map(|p| (*p).into()).collect(),
        ..EndpointPolicy::default()
    };
    shared.set_span_pools(&NodeSpan {
        endpoints: vec![
            entry("blue", &["10.77.0.0/16"], &["fd00:77::/48"]),
            entry("elsewhere", &[], &["fd00:99::/48"]),
            entry("unknown", &["green"], &[]),
        ],
        ..NodeSpan::default()
    });
    let context = ApiContext { ipam: IpamStore::open(dir.path()).unwrap(), shared };
    let add = |pod: &str, assign: Assign| Request::Add {
        container_id: format!("c-{pod}"),
        netns: "/run/netns/x".into(),
        ifname: "eth0".into(),
        namespace: "default".into(),
        pod: pod.into(),
        uid: None,
        assign,
    };
    let allocated = |answer: Response| match answer {
        Response::Allocated { allocation } => {
            allocation.addresses().iter().map(ToString::to_string).collect::<Vec<_>>()
        }
        other => panic!("{other:?}"),
    };
    let v6_only = Assign { ipv4: Some(false), ipv6: Some(true) };
    let v4_only = Assign { ipv4: Some(true), ipv6: None };
    assert_eq!(allocated(handle(&context, add("plain", Assign::default())).await), ["10.66.0.0", "fd00:66::"]);
    assert_eq!(allocated(handle(&context, add("blue", Assign::default())).await), ["10.77.0.0", "fd00:77::"]);
    assert_eq!(allocated(handle(&context, add("v6", v6_only)).await), ["fd00:66::1"]);
    assert_eq!(allocated(handle(&context, add("v4", v4_only)).await), ["10.66.0.1"]);
    assert_eq!(allocated(handle(&context, add("elsewhere", v4_only)).await), ["10.66.0.2"], "IPv6 not asked for");
    for (pod, words) in [
        ("elsewhere", ["cni.projectcalico.org/ipv6pools", "fd00:99::/48"]),
        ("unknown", ["cni.projectcalico.org/ipv4pools", "\"green\""]),
    ] {
        let answer = handle(&context, add(pod, Assign::default())).await;
        let Response::Error { code, msg, .. } = answer else { panic!("{pod}: {answer:?}") };
        assert_eq!(code, 11, "{pod}: {msg}");
        assert!(words.iter().all(|w| msg.contains(w)), "{pod}: {msg}");
    }
}
