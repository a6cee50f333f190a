//! `gingham-operator run --stream-addr`: the real binary on a file datastore serves each agent its
//! span over gRPC, with TLS from `--stream-tls-cert` and `--stream-tls-key`. A pod that joins a set
//! cluster-wide reaches the node whose policy uses the set as one small patch, and nothing reaches a node whose span does not hold the set; an agent may
//! read its own span only. Two replicas on one directory both serve the stream, only the one
//! holding the leader lock writes, the other writes the moment it dies, and an agent that held the
//! first one's revision resyncs from the second by content, without a snapshot.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::net::TcpListener;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use gingham_crds::api::span::{SpanItem, SpanPatch};
use gingham_crds::api::{IpSetMember, Wire};
use gingham_stream::wire::proto::{self, SyncMessage, item_update::Change, span_client::SpanClient};
use gingham_stream::wire::{decode, held_to_wire};
use gingham_stream::{Delivery, Replica};
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use prost::Message;
use tonic::transport::{Certificate, ClientTlsConfig, Endpoint};
use tonic::{Code, Request, Streaming};

const CLUSTER: &str = r#"
apiVersion: gingham.dev/v1
kind: IPPool
metadata: {name: default}
spec: {cidr: 10.244.0.0/16}
---
apiVersion: v1
kind: Node
metadata: {name: n1, annotations: {gingham.dev/ipv4-address: 192.168.10.1/24}}
---
apiVersion: v1
kind: Node
metadata: {name: n2, annotations: {gingham.dev/ipv4-address: 192.168.10.2/24}}
---
apiVersion: v1
kind: Namespace
metadata: {name: prod}
---
apiVersion: v1
kind: Pod
metadata: {name: web, namespace: prod, labels: {app: web}}
spec: {nodeName: n1, containers: [{name: main, image: x}]}
---
apiVersion: v1
kind: Pod
metadata: {name: db, namespace: prod, labels: {app: db}}
spec: {nodeName: n2, containers: [{name: main, image: x}]}
---
apiVersion: gingham.dev/v1
kind: GlobalNetworkPolicy
metadata: {name: db-from-web}
spec:
  selector: app == 'db'
  ingress: [{action: Allow, source: {selector: app == 'web'}}]
"#;

/// n1's agent reports its pods with their addresses.
fn n1_status(endpoints: &[(&str, &str)]) -> String {
    let endpoints: Vec<String> = endpoints
        .iter()
        .map(|(name, address)| {
            format!("{{name: {name}, address: {address}, interface: gh{}}}", address.replace('.', ""))
        })
        .collect();
    format!(
        "apiVersion: gingham.dev/v1\nkind: NodeNetwork\nmetadata: {{name: n1}}\nstatus: {{endpoints: [{}]}}\n",
        endpoints.join(", ")
    )
}

fn write_atomic(path: &Path, text: &str) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    let temporary = path.with_file_name(format!(".{}.tmp", path.file_name().unwrap().to_string_lossy()));
    std::fs::write(&temporary, text).unwrap();
    std::fs::rename(temporary, path).unwrap();
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// Kills the operator when the test ends, however it ends.
struct Operator(Child);

impl Drop for Operator {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// The server name in the stream's certificate.
const NAME: &str = "gingham-stream.gingham-system.svc";

/// Writes a certificate for [`NAME`] and its key; returns the CA's certificate.
fn write_certificate(dir: &Path) -> String {
    let material = gingham_operator::certs::generate("gingham-stream", vec![NAME.into()]).unwrap();
    std::fs::write(dir.join("tls.crt"), &material.cert).unwrap();
    std::fs::write(dir.join("tls.key"), &material.key).unwrap();
    material.ca_cert
}

fn start(dir: &Path, stream: u16) -> Operator {
    let tokens = dir.join("tokens.yaml");
    std::fs::write(&tokens, "t1: n1\nt2: n2\n").unwrap();
    let child = Command::new(env!("CARGO_BIN_EXE_gingham-operator"))
        .args(["run", "--datastore", "file", "--dir"])
        .arg(dir.join("store"))
        .args(["--metrics-addr", &format!("127.0.0.1:{}", free_port())])
        .args(["--health-addr", &format!("127.0.0.1:{}", free_port())])
        .args(["--stream-addr", &format!("127.0.0.1:{stream}"), "--stream-tokens"])
        .arg(&tokens)
        .arg("--stream-tls-cert")
        .arg(dir.join("tls.crt"))
        .arg("--stream-tls-key")
        .arg(dir.join("tls.key"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    Operator(child)
}

async fn subscribe(port: u16, ca: &str, node: &str, token: &str) -> Result<Streaming<SyncMessage>, tonic::Status> {
    let request = proto::SubscribeRequest { node: node.into(), revision: None, origin: None, held: None };
    subscribe_with(port, ca, token, request).await
}

async fn subscribe_with(
    port: u16,
    ca: &str,
    token: &str,
    request: proto::SubscribeRequest,
) -> Result<Streaming<SyncMessage>, tonic::Status> {
    let tls = ClientTlsConfig::new().ca_certificate(Certificate::from_pem(ca)).domain_name(NAME);
    let endpoint = Endpoint::from_shared(format!("https://127.0.0.1:{port}")).unwrap().tls_config(tls).unwrap();
    let mut client = loop {
        match endpoint.connect().await {
            Ok(channel) => break SpanClient::new(channel),
            Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
        }
    };
    let mut request = Request::new(request);
    request.metadata_mut().insert("authorization", format!("Bearer {token}").parse().unwrap());
    client.subscribe(request).await.map(tonic::Response::into_inner)
}

async fn next(stream: &mut Streaming<SyncMessage>, within: Duration) -> Option<SyncMessage> {
    tokio::time::timeout(within, stream.message()).await.ok().map(|message| message.unwrap().unwrap())
}

fn names(message: &SyncMessage) -> Vec<String> {
    message.updates.iter().filter_map(|u| u.key.as_ref()).map(|k| k.name.clone()).collect()
}

#[tokio::test]
async fn the_operator_streams_each_node_its_span_and_a_set_change_as_one_patch() {
    let dir = tempfile::tempdir().unwrap();
    write_atomic(&dir.path().join("store/cluster.yaml"), CLUSTER);
    write_atomic(&dir.path().join("store/status/nodenetworks/n1.yaml"), &n1_status(&[("prod/web", "10.244.0.5")]));
    let port = free_port();
    let ca = write_certificate(dir.path());
    let _operator = start(dir.path(), port);

    let mut n2 = subscribe(port, &ca, "n2", "t2").await.unwrap();
    let snapshot = next(&mut n2, Duration::from_secs(20)).await.expect("n2's snapshot");
    assert!(snapshot.snapshot);
    let held = names(&snapshot);
    assert!(held.contains(&"global/db-from-web".to_string()), "db's policy is in n2's span: {held:?}");
    let set_with_web = snapshot.updates.iter().any(
        |u| matches!(&u.change, Some(Change::Set(bytes)) if String::from_utf8_lossy(bytes).contains("10.244.0.5")),
    );
    assert!(set_with_web, "the set of web pods holds web's address: {held:?}");
    let mut n1 = subscribe(port, &ca, "n1", "t1").await.unwrap();
    let n1_snapshot = next(&mut n1, Duration::from_secs(5)).await.unwrap();
    assert!(
        !names(&n1_snapshot).iter().any(|name| name.starts_with("global/")),
        "n1 selects nothing: {:?}",
        names(&n1_snapshot)
    );

    // A second web pod on n1: the set gains one member.
    let mut store = std::fs::read_to_string(dir.path().join("store/cluster.yaml")).unwrap();
    store.push_str("---\napiVersion: v1\nkind: Pod\nmetadata: {name: web2, namespace: prod, labels: {app: web}}\nspec: {nodeName: n1, containers: [{name: main, image: x}]}\n");
    write_atomic(&dir.path().join("store/cluster.yaml"), &store);
    write_atomic(
        &dir.path().join("store/status/nodenetworks/n1.yaml"),
        &n1_status(&[("prod/web", "10.244.0.5"), ("prod/web2", "10.244.0.6")]),
    );
    let delta = loop {
        let message = next(&mut n2, Duration::from_secs(20)).await.expect("n2 hears of web2");
        if message.updates.iter().any(|u| matches!(u.change, Some(Change::Patch(_)))) {
            break message;
        }
    };
    assert!(!delta.snapshot);
    let patch = delta.updates.iter().find(|u| matches!(u.change, Some(Change::Patch(_)))).unwrap();
    let Some(Change::Patch(bytes)) = &patch.change else { unreachable!() };
    assert!(String::from_utf8_lossy(bytes).contains("10.244.0.6"), "the patch adds web2's address");
    assert!(patch.encoded_len() <= 256, "one member is {} bytes, not the whole set", patch.encoded_len());
    // n1 hears of its own endpoints only (web2 joined them), never of the set.
    while let Some(message) = next(&mut n1, Duration::from_millis(500)).await {
        assert!(names(&message).iter().all(|name| name == "n1"), "n1 got {:?}", names(&message));
    }

    let refused = subscribe(port, &ca, "n2", "t1").await.unwrap_err();
    assert_eq!(refused.code(), Code::PermissionDenied, "{}", refused.message());
}

/// A GlobalNetworkSet of `count` /24s from 172.16.0.0, one of them replaced by `changed`.
fn partners(count: u32, changed: Option<&str>) -> String {
    let mut nets: Vec<String> = (0..count).map(|i| format!("172.{}.{}.0/24", 16 + i / 256, i % 256)).collect();
    if let Some(changed) = changed {
        nets[0] = changed.to_string();
    }
    format!(
        "apiVersion: gingham.dev/v1\nkind: GlobalNetworkSet\nmetadata: {{name: partners, labels: {{feed: partners}}}}\nspec:\n  nets: [{}]\n---\napiVersion: gingham.dev/v1\nkind: GlobalNetworkPolicy\nmetadata: {{name: db-from-partners}}\nspec:\n  selector: app == 'db'\n  ingress: [{{action: Allow, source: {{selector: feed == 'partners'}}}}]\n",
        nets.join(", ")
    )
}

#[tokio::test]
async fn one_cidr_of_a_network_set_changed_travels_as_one_element_delta() {
    let dir = tempfile::tempdir().unwrap();
    write_atomic(&dir.path().join("store/cluster.yaml"), CLUSTER);
    write_atomic(&dir.path().join("store/partners.yaml"), &partners(1000, None));
    write_atomic(&dir.path().join("store/status/nodenetworks/n1.yaml"), &n1_status(&[("prod/web", "10.244.0.5")]));
    let port = free_port();
    let ca = write_certificate(dir.path());
    let _operator = start(dir.path(), port);

    let mut n2 = subscribe(port, &ca, "n2", "t2").await.unwrap();
    let snapshot = next(&mut n2, Duration::from_secs(20)).await.expect("n2's snapshot");
    let whole = snapshot
        .updates
        .iter()
        .find(|u| matches!(&u.change, Some(Change::Set(b)) if String::from_utf8_lossy(b).contains("172.16.0.0/24")))
        .expect("the GNP's source set holds the GlobalNetworkSet's nets");
    let Some(Change::Set(bytes)) = &whole.change else { unreachable!() };
    let SpanItem::IpSet(set) = serde_json::from_slice::<SpanItem>(bytes).unwrap() else { panic!("not a set") };
    assert_eq!(set.members.len(), 1000, "every net of the set, and no pod (none is labelled feed)");

    write_atomic(&dir.path().join("store/partners.yaml"), &partners(1000, Some("198.51.100.0/28")));
    let delta = loop {
        let message = next(&mut n2, Duration::from_secs(20)).await.expect("n2 hears of the changed net");
        if !message.updates.is_empty() {
            break message;
        }
    };
    assert!(!delta.snapshot);
    assert_eq!(delta.updates.len(), 1, "only the set changed: {:?}", names(&delta));
    let Some(Change::Patch(bytes)) = &delta.updates[0].change else { panic!("the set travels as a patch") };
    let patch: SpanPatch = serde_json::from_slice(bytes).unwrap();
    let SpanPatch::IpSetMembers(members) = patch;
    let text = |list: &[Wire<IpSetMember>]| list.iter().map(ToString::to_string).collect::<Vec<_>>();
    assert_eq!(
        (text(&members.added), text(&members.removed)),
        (vec!["198.51.100.0/28".to_string()], vec!["172.16.0.0/24".to_string()])
    );
    assert!(
        delta.updates[0].encoded_len() * 100 < whole.encoded_len(),
        "the delta is {} bytes, the whole set {}",
        delta.updates[0].encoded_len(),
        whole.encoded_len()
    );
}

fn signal(operator: &Operator, signal: Signal) {
    kill(Pid::from_raw(i32::try_from(operator.0.id()).unwrap()), signal).unwrap();
}

async fn wait_for_file(path: &Path, within: Duration) -> bool {
    let deadline = tokio::time::Instant::now() + within;
    while !path.exists() {
        if tokio::time::Instant::now() > deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    true
}

/// Each item's name and its bytes as sent whole.
fn contents(message: &SyncMessage) -> Vec<(String, Option<Change>)> {
    message.updates.iter().map(|u| (u.key.as_ref().unwrap().name.clone(), u.change.clone())).collect()
}

#[tokio::test]
async fn two_replicas_serve_the_stream_and_only_the_lock_holder_writes_until_it_dies() {
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("store");
    write_atomic(&store.join("cluster.yaml"), CLUSTER);
    write_atomic(&store.join("status/nodenetworks/n1.yaml"), &n1_status(&[("prod/web", "10.244.0.5")]));
    let (port_a, port_b) = (free_port(), free_port());
    let ca = write_certificate(dir.path());
    let leader = start(dir.path(), port_a);
    let generated = |node: &str| store.join(format!("generated/nodenetworks/{node}.yaml"));
    assert!(wait_for_file(&generated("n1"), Duration::from_secs(20)).await, "the first replica leads and writes");
    let follower = start(dir.path(), port_b);

    // Both serve n2's span, with the same content under their own revisions.
    let mut from_leader = subscribe(port_a, &ca, "n2", "t2").await.unwrap();
    let mut from_follower = subscribe(port_b, &ca, "n2", "t2").await.unwrap();
    let first = next(&mut from_leader, Duration::from_secs(20)).await.unwrap();
    let second = next(&mut from_follower, Duration::from_secs(20)).await.unwrap();
    assert!(first.snapshot && second.snapshot);
    assert_ne!(first.origin, second.origin, "each replica counts its own revisions");
    assert_eq!(contents(&first), contents(&second), "every replica computes the same span");

    // With the leader frozen, nobody writes: the follower computes but does not write.
    signal(&leader, Signal::SIGSTOP);
    let node = "---\napiVersion: v1\nkind: Node\nmetadata: {name: n3, annotations: {gingham.dev/ipv4-address: 192.168.10.3/24}}\n";
    write_atomic(&store.join("n3.yaml"), node);
    assert!(!wait_for_file(&generated("n3"), Duration::from_secs(3)).await, "a follower writes nothing");
    // The leader dies: the follower takes the lock at once and writes.
    signal(&leader, Signal::SIGKILL);
    assert!(wait_for_file(&generated("n3"), Duration::from_secs(10)).await, "the follower took over the writing");

    // n2 held the dead leader's revision: the follower sends only what differs (n3 joined the mesh,
    // so n2's BGP peers), not a snapshot.
    let mut copy: Replica<SpanItem> = Replica::default();
    let held_at = first.revision;
    copy.apply(decode::<SpanItem>(first.clone()).unwrap()).unwrap();
    let request = proto::SubscribeRequest {
        node: "n2".into(),
        revision: Some(held_at),
        origin: Some(first.origin),
        held: Some(held_to_wire(copy.items()).unwrap()),
    };
    let mut resynced = subscribe_with(port_b, &ca, "t2", request).await.unwrap();
    let delta = next(&mut resynced, Duration::from_secs(10)).await.unwrap();
    assert!(!delta.snapshot, "a delta by content, not a snapshot");
    assert_eq!(delta.from_revision, held_at);
    let kinds: Vec<i32> = delta.updates.iter().map(|u| u.key.as_ref().unwrap().kind).collect();
    assert_eq!(kinds, [i32::from(proto::ItemKind::BgpPeers)], "only n2's peers changed: {:?}", names(&delta));
    let delivery: Delivery<SpanItem> = decode(delta).unwrap();
    copy.apply(delivery).unwrap();
    let fresh = next(&mut subscribe(port_b, &ca, "n2", "t2").await.unwrap(), Duration::from_secs(10)).await.unwrap();
    let mut expected: Replica<SpanItem> = Replica::default();
    expected.apply(decode::<SpanItem>(fresh).unwrap()).unwrap();
    assert_eq!(copy.items(), expected.items(), "resynced equals the follower's snapshot");
    drop(follower);
}
