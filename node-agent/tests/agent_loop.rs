#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
//! The main loop over the file datastore and a span file with a fake dataplane: status, endpoints
//! through the CNI API, rejected specs keeping the last good one, no rewrites of an unchanged
//! status, and a span that is not known yet holding policy (and the pods' readiness) back.

use std::collections::BTreeSet;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use gingham_crds::api::IpFamily;
use gingham_crds::api::nodenetwork::TierPolicies;
use gingham_node_agent::agent::{Agent, AgentOptions, Services};
use gingham_node_agent::api::{ApiContext, Request, Response, handle};
use gingham_node_agent::dataplane::plan::NodePlan;
use gingham_node_agent::dataplane::{Dataplane, NodeView, SyncError, SyncReport};
use gingham_node_agent::datastore::file::{FileDatastore, FileStatus};
use gingham_node_agent::ipam::{AllocationRequest, BlockSet, FamilyRequest, IpamStore, LOCK_TIMEOUT};
use gingham_node_agent::logging::LogControl;
use gingham_node_agent::metrics::Metrics;
use gingham_node_agent::shared::Shared;
use gingham_node_agent::span_file;
use serde_json::Value;

/// Programs everything it is given, as the kernel dataplane does (policy, and so the endpoints,
/// only once the span is known), and remembers the last plan and endpoints.
#[derive(Clone, Default)]
struct FakeDataplane {
    last_plan: Arc<Mutex<Option<NodePlan>>>,
    last_endpoints: Arc<Mutex<Vec<String>>>,
}

impl Dataplane for FakeDataplane {
    async fn sync(&mut self, view: &NodeView<'_>) -> SyncReport {
        *self.last_plan.lock().unwrap() = Some(view.plan.clone());
        *self.last_endpoints.lock().unwrap() = view.endpoints.iter().map(|e| e.key()).collect();
        let policy = view.plan.policy.is_some();
        SyncReport {
            routes_programmed: true,
            policy_programmed: policy,
            programmed_endpoints: view.endpoints.iter().filter(|_| policy).map(|e| e.key()).collect(),
            errors: if policy { Vec::new() } else { vec![SyncError::span_unknown()] },
            ..Default::default()
        }
    }
}

fn write_spec(dir: &Path, generation: i64, spec_yaml: &str) {
    let path = dir.join("generated/nodenetworks/node-a.yaml");
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    let text = format!(
        "apiVersion: gingham.dev/v1\nkind: NodeNetwork\nmetadata:\n  name: node-a\n  generation: {generation}\nspec:\n{spec_yaml}"
    );
    let temp = path.with_file_name(".node-a.yaml.tmp");
    std::fs::write(&temp, text).unwrap();
    std::fs::rename(temp, path).unwrap();
}

const GOOD: &str = "  address: 192.168.10.2/24\n  blocks: [10.70.0.0/28]\n";

/// A CNI ADD of pod `default/<pod>` in container `container`, as the plugin asks for it.
fn add_request(container: &str, pod: &str) -> Request {
    Request::Add {
        container_id: container.into(),
        netns: format!("/run/netns/{container}"),
        ifname: "eth0".into(),
        namespace: "default".into(),
        pod: pod.into(),
        uid: None,
        assign: Default::default(),
    }
}

/// Writes the node's span file (`span.yaml` in `dir`), as `gingham-operator render` would.
fn write_span(dir: &Path, yaml: &str) {
    let temp = dir.join(".span.yaml.tmp");
    std::fs::write(&temp, yaml).unwrap();
    std::fs::rename(temp, dir.join("span.yaml")).unwrap();
}

fn status(dir: &Path) -> Option<Value> {
    let text = std::fs::read_to_string(dir.join("status/nodenetworks/node-a.yaml")).ok()?;
    let value: Value = serde_saphyr::from_str(&text).ok()?;
    Some(value["status"].clone())
}

fn condition<'a>(status: &'a Value, type_: &str) -> &'a Value {
    status["conditions"].as_array().unwrap().iter().find(|c| c["type"] == type_).unwrap()
}

async fn wait_status(dir: &Path, what: &str, check: impl Fn(&Value) -> bool) -> Value {
    let start = Instant::now();
    loop {
        if let Some(status) = status(dir).filter(|s| check(s)) {
            return status;
        }
        assert!(start.elapsed() < Duration::from_secs(10), "timed out waiting for {what}: {:?}", status(dir));
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Starts the loop on node-a over the file datastore in `dir` and the span file `dir/span.yaml`
/// (inside a `LocalSet`); sending on the returned channel stops it.
fn start(
    dir: &Path,
    dataplane: &FakeDataplane,
    shared: &Arc<Shared>,
    ipam: &IpamStore,
    reap_leaked: bool,
) -> (tokio::sync::oneshot::Sender<()>, tokio::task::JoinHandle<()>) {
    let agent = Agent::new(
        AgentOptions { node: "node-a".into(), reap_leaked, logs: LogControl::fixed() },
        dataplane.clone(),
        FileStatus::new(dir, "node-a"),
        span_file::follow(FileDatastore::new(dir, "node-a").spawn(), &dir.join("span.yaml")),
        Services {
            shared: Arc::clone(shared),
            ipam: ipam.clone(),
            metrics: Metrics::register(&mut prometheus_client::registry::Registry::default()),
        },
        None,
    );
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let running = tokio::task::spawn_local(agent.run(async {
        let _ = stopped.await;
    }));
    (stop, running)
}

/// One node's set-up: its datastore directory (NodeNetwork and span file), its IPAM state, and
/// what its loop shares with the CNI API.
struct TestNode {
    dir: tempfile::TempDir,
    state: tempfile::TempDir,
    shared: Arc<Shared>,
    ipam: IpamStore,
    dataplane: FakeDataplane,
}

impl TestNode {
    /// A node whose NodeNetwork has `spec_yaml` (generation 1) and whose span file holds `span`
    /// (`None`: no span file yet).
    fn new(spec_yaml: &str, span: Option<&str>) -> Self {
        let (dir, state) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
        write_spec(dir.path(), 1, spec_yaml);
        span.into_iter().for_each(|span| write_span(dir.path(), span));
        let ipam = IpamStore::open(state.path()).unwrap();
        Self { dir, state, shared: Arc::new(Shared::default()), ipam, dataplane: FakeDataplane::default() }
    }
}

#[tokio::test]
async fn the_loop_programs_reports_and_keeps_the_last_good_spec() {
    let TestNode { dir, state: _state, shared, ipam, dataplane } = TestNode::new(GOOD, Some("{}\n"));
    let local = tokio::task::LocalSet::new();
    local
        .run_until(async {
            let (stop, running) = start(dir.path(), &dataplane, &shared, &ipam, false);

            let ready = wait_status(dir.path(), "Ready", |s| condition(s, "Ready")["status"] == "True").await;
            assert_eq!(ready["observedGeneration"], 1);
            assert_eq!(ready["ipam"]["capacity"], 16);

            // A CNI ADD through the API: allocate, then ready waits for the sync that programs it.
            let context = ApiContext { ipam: ipam.clone(), shared: Arc::clone(&shared) };
            let add = add_request("c1", "web");
            assert!(matches!(handle(&context, add).await, Response::Allocated { .. }));
            // A sync between ADD and `ready` sees the pending allocation: the plugin has already
            // routed its pod, and that sync must keep the route.
            let seq = shared.endpoints_changed();
            tokio::time::timeout(Duration::from_secs(5), shared.wait_programmed(seq, "default/web"))
                .await
                .expect("a sync before `ready` includes the pending allocation");
            let ready_request = Request::Ready { container_id: "c1".into(), ifname: "eth0".into(), timeout_seconds: 5 };
            let Response::Allocated { allocation } = handle(&context, ready_request).await else {
                panic!("not programmed")
            };
            assert_eq!(allocation.addresses(), ["10.70.0.0".parse::<std::net::IpAddr>().unwrap()]);
            let with_pod = wait_status(dir.path(), "the endpoint", |s| s["endpointCount"] == 1).await;
            assert_eq!(with_pod["endpoints"][0]["name"], "default/web");
            assert_eq!(with_pod["endpoints"][0]["address"], "10.70.0.0");
            assert_eq!(with_pod["ipam"]["allocated"], 1);

            // An unknown field is rejected; the last good spec stays in force.
            write_spec(dir.path(), 2, "  address: 192.168.10.2/24\n  blokcs: [10.71.0.0/28]\n");
            let rejected =
                wait_status(dir.path(), "rejection", |s| s["lastError"].as_str().is_some_and(|e| e.contains("blokcs")))
                    .await;
            assert_eq!(rejected["observedGeneration"], 1);
            assert_eq!(condition(&rejected, "Ready")["reason"], "SpecRejected");
            assert!(rejected["lastError"].as_str().unwrap().contains("last good spec"), "{rejected}");
            assert_eq!(
                dataplane.last_plan.lock().unwrap().as_ref().unwrap().blocks,
                vec!["10.70.0.0/28".parse().unwrap()]
            );

            // A spec that fails validation is rejected with its field path.
            write_spec(dir.path(), 3, "  address: nonsense\n  blocks: [10.70.0.0/28]\n");
            wait_status(dir.path(), "validation error", |s| {
                s["lastError"].as_str().is_some_and(|e| e.contains("spec.address"))
            })
            .await;

            // A good spec again clears the error.
            write_spec(dir.path(), 4, GOOD);
            let fixed = wait_status(dir.path(), "recovery", |s| s["observedGeneration"] == 4).await;
            assert!(fixed.get("lastError").is_none_or(Value::is_null), "{fixed}");
            assert_eq!(condition(&fixed, "Ready")["status"], "True");

            // Nothing changes, so nothing is rewritten.
            let path = dir.path().join("status/nodenetworks/node-a.yaml");
            let before = std::fs::metadata(&path).unwrap().modified().unwrap();
            tokio::time::sleep(Duration::from_millis(4500)).await;
            assert_eq!(
                std::fs::metadata(&path).unwrap().modified().unwrap(),
                before,
                "an unchanged status is not rewritten"
            );

            let _ = stop.send(());
            running.await.unwrap();
        })
        .await;
}

/// The periodic leak check: a ready allocation whose host veth is gone (the pod was deleted
/// without a DEL) is released; an ADD still in progress keeps its address.
#[tokio::test]
async fn addresses_of_pods_whose_interface_is_gone_are_released() {
    let TestNode { dir, state: _state, shared, ipam, dataplane } = TestNode::new(GOOD, Some("{}\n"));
    let blocks = BlockSet {
        blocks: vec!["10.70.0.0/28".parse().unwrap()],
        releasing: BTreeSet::new(),
        tunnel_blocks: Vec::new(),
    };
    let request = |container: &str, pod: &str| AllocationRequest {
        container_id: container.into(),
        ifname: "eth0".into(),
        namespace: "default".into(),
        pod: pod.into(),
        uid: None,
        families: vec![FamilyRequest::any(IpFamily::IPv4)],
    };
    let gone = ipam.allocate(&blocks, &request("gone", "deleted")).unwrap();
    ipam.mark_ready("gone", "eth0").unwrap();
    assert!(!Path::new("/sys/class/net").join(&gone.interface).exists(), "{} must not exist", gone.interface);
    ipam.allocate(&blocks, &request("adding", "starting")).unwrap();

    let local = tokio::task::LocalSet::new();
    local
        .run_until(async {
            let (stop, running) = start(dir.path(), &dataplane, &shared, &ipam, true);
            let started = Instant::now();
            let left = loop {
                let left: Vec<String> = ipam.list().unwrap().into_iter().map(|a| a.container_id).collect();
                if left.len() < 2 || started.elapsed() > Duration::from_secs(10) {
                    break left;
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            };
            assert_eq!(left, vec!["adding"], "the leaked address is released, the pending ADD keeps its own");
            let _ = stop.send(());
            running.await.unwrap();
        })
        .await;
}

/// Whoever holds the IPAM lock (anyone, while it was world-readable) must neither hang CNI ADD
/// nor stop the loop: ADD fails after the lock's timeout naming the lock, and the loop goes on
/// programming spec changes with the endpoints it last read, reporting why in status.
#[tokio::test]
async fn a_held_ipam_lock_fails_add_fast_and_the_loop_keeps_syncing() {
    let TestNode { dir, state, shared, ipam, dataplane } = TestNode::new(GOOD, Some("{}\n"));
    let blocks = BlockSet {
        blocks: vec!["10.70.0.0/28".parse().unwrap()],
        releasing: BTreeSet::new(),
        tunnel_blocks: Vec::new(),
    };
    let web = AllocationRequest {
        container_id: "c1".into(),
        ifname: "eth0".into(),
        namespace: "default".into(),
        pod: "web".into(),
        uid: None,
        families: vec![FamilyRequest::any(IpFamily::IPv4)],
    };
    ipam.allocate(&blocks, &web).unwrap();
    ipam.mark_ready("c1", "eth0").unwrap();
    let synced = |blocks: usize| {
        let spec = dataplane.last_plan.lock().unwrap().as_ref().map_or(0, |s| s.blocks.len());
        spec == blocks && *dataplane.last_endpoints.lock().unwrap() == vec!["default/web".to_string()]
    };
    let local = tokio::task::LocalSet::new();
    local
        .run_until(async {
            let (stop, running) = start(dir.path(), &dataplane, &shared, &ipam, false);
            wait_status(dir.path(), "Ready", |s| condition(s, "Ready")["status"] == "True").await;
            assert!(synced(1), "the pod is programmed");

            let lock = state.path().join("ipam/lock");
            let holder = std::fs::OpenOptions::new().write(true).open(&lock).unwrap();
            holder.lock().unwrap();

            let context = ApiContext { ipam: ipam.clone(), shared: Arc::clone(&shared) };
            let add = add_request("c2", "db");
            let started = Instant::now();
            let answer = tokio::time::timeout(LOCK_TIMEOUT + Duration::from_secs(3), handle(&context, add.clone()))
                .await
                .expect("ADD must not hang on a held lock");
            let Response::Error { code, msg, .. } = answer else { panic!("ADD under a held lock: {answer:?}") };
            assert_eq!(code, 5, "an I/O error: {msg}");
            assert!(msg.contains(&lock.display().to_string()) && msg.contains("held by pid"), "{msg}");
            assert!(started.elapsed() < LOCK_TIMEOUT + Duration::from_secs(2), "took {:?}", started.elapsed());

            // A spec change is still programmed, for the pod the loop last knew.
            write_spec(dir.path(), 2, "  address: 192.168.10.2/24\n  blocks: [10.70.0.0/28, 10.70.0.16/28]\n");
            let reported = wait_status(dir.path(), "generation 2 with the IPAM error naming the lock", |s| {
                s["observedGeneration"] == 2 && s["lastError"].as_str().is_some_and(|e| e.contains("held by pid"))
            })
            .await;
            assert!(synced(2), "the new block is programmed and the pod kept: {reported}");
            assert_eq!(reported["endpoints"][0]["name"], "default/web", "{reported}");

            // Once the lock is free, the next pod is added and programmed as usual.
            drop(holder);
            assert!(matches!(handle(&context, add).await, Response::Allocated { .. }), "the lock is free again");
            let ready = Request::Ready { container_id: "c2".into(), ifname: "eth0".into(), timeout_seconds: 5 };
            assert!(matches!(handle(&context, ready).await, Response::Allocated { .. }), "the new pod is programmed");
            wait_status(dir.path(), "the IPAM error to clear", |s| s["lastError"].is_null()).await;

            let _ = stop.send(());
            running.await.unwrap();
        })
        .await;
}

/// A value that does not decode is reported in status with its path and left out; the rest of
/// the spec and the span is still programmed (no last-good fallback for one bad value).
#[tokio::test]
async fn a_value_that_does_not_decode_is_reported_and_the_rest_programmed() {
    let TestNode { dir, state: _state, shared, ipam, dataplane } = TestNode::new(
        "  address: 192.168.10.2/24\n  blocks: [10.70.0.0/28, 10.71.0.0/99]\n",
        Some("ipSets:\n- name: s\n  members: [10.70.0.1, 10.70.0.x]\n"),
    );
    let local = tokio::task::LocalSet::new();
    local
        .run_until(async {
            let (stop, running) = start(dir.path(), &dataplane, &shared, &ipam, false);
            let reported = wait_status(dir.path(), "the bad values", |s| {
                s["lastError"].as_str().is_some_and(|e| e.contains("spec.blocks[1]") && e.contains("ipset/s"))
            })
            .await;
            let error = reported["lastError"].as_str().unwrap();
            assert!(error.contains("\"10.71.0.0/99\" is not a CIDR"), "{error}");
            assert!(error.contains("ipset/s.members[1]"), "{error}");
            assert_eq!(reported["observedGeneration"], 1, "the spec is in force, not rejected");
            assert_eq!(condition(&reported, "RoutesProgrammed")["status"], "False");
            assert_eq!(condition(&reported, "Ready")["status"], "False");
            assert_eq!(reported["ipam"]["capacity"], 16, "the good block is used");
            let plan = dataplane.last_plan.lock().unwrap().clone().unwrap();
            assert_eq!(plan.blocks, vec!["10.70.0.0/28".parse().unwrap()], "the good block is programmed");
            let members = &plan.policy.unwrap().sets[0].members;
            assert_eq!(
                members,
                &gingham_node_agent::dataplane::plan::SetMembers::Addresses(vec!["10.70.0.1/32".parse().unwrap()])
            );

            write_spec(dir.path(), 2, GOOD);
            write_span(dir.path(), "{}\n");
            let fixed = wait_status(dir.path(), "recovery", |s| {
                s["observedGeneration"] == 2 && s.get("lastError").is_none_or(Value::is_null)
            })
            .await;
            assert_eq!(condition(&fixed, "Ready")["status"], "True");
            stop.send(()).unwrap();
            running.await.unwrap();
        })
        .await;
}

/// Until the span file is there, routes are programmed but policy and BGP wait for the span: the
/// node is not Ready and a pod's CNI `ready` does not return. The span arriving programs policy
/// and readies the pod; a change of the file is read again.
#[tokio::test]
async fn until_the_span_arrives_policy_waits_and_pods_are_not_ready() {
    let TestNode { dir, state: _state, shared, ipam, dataplane } = TestNode::new(GOOD, None);
    let local = tokio::task::LocalSet::new();
    local
        .run_until(async {
            let (stop, running) = start(dir.path(), &dataplane, &shared, &ipam, false);
            let waiting = wait_status(dir.path(), "policy waiting", |s| {
                condition(s, "PolicyProgrammed")["reason"] == "WaitingForSpan"
            })
            .await;
            assert_eq!(condition(&waiting, "PolicyProgrammed")["status"], "False");
            assert_eq!(condition(&waiting, "RoutesProgrammed")["status"], "True");
            assert_eq!(condition(&waiting, "Ready")["reason"], "PolicyProgrammedNotTrue");
            assert!(waiting["lastError"].as_str().is_some_and(|e| e.contains("span")), "{waiting}");

            let context = ApiContext { ipam: ipam.clone(), shared: Arc::clone(&shared) };
            let add = add_request("c1", "web");
            assert!(matches!(handle(&context, add).await, Response::Allocated { .. }));
            let ready = || Request::Ready { container_id: "c1".into(), ifname: "eth0".into(), timeout_seconds: 1 };
            let answer = handle(&context, ready()).await;
            assert!(matches!(answer, Response::Error { .. }), "ready before the span: {answer:?}");

            write_span(dir.path(), "endpoints:\n- name: default/web\n");
            let programmed = wait_status(dir.path(), "Ready", |s| condition(s, "Ready")["status"] == "True").await;
            assert_eq!(condition(&programmed, "PolicyProgrammed")["reason"], "Programmed");
            assert!(matches!(handle(&context, ready()).await, Response::Allocated { .. }), "the pod is programmed");

            write_span(dir.path(), "endpoints:\n- name: default/web\n  ingress: [global/web]\n");
            let started = Instant::now();
            let ingress = || {
                let plan = dataplane.last_plan.lock().unwrap().clone();
                plan.and_then(|p| p.policy).map(|p| p.endpoints[0].ingress.clone())
            };
            while ingress() != Some(vec![TierPolicies::default_tier(["global/web"])]) {
                assert!(started.elapsed() < Duration::from_secs(10), "the changed span file was not read again");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            stop.send(()).unwrap();
            running.await.unwrap();
        })
        .await;
}
