//! Reflectors over every kind the operator reads. Objects are decoded through
//! [`DeserializeGuard`], so a malformed object is held as an error, reported and skipped while the
//! watch and every other object keep working (linkerd's guarded watches). Every event also goes to
//! the datastore as engine events, so that the core recomputes only what changed.

use std::collections::BTreeMap;

use futures::StreamExt;
use gingham_crds::api::{
    BGPConfiguration, BGPPeer, FelixConfiguration, GlobalNetworkPolicy, GlobalNetworkSet, HostEndpoint, IPAMBlock,
    IPPool, NetworkPolicy, NetworkSet, NodeNetwork, Tier,
};
use gingham_crds::netpolapi::v1alpha1::{AdminNetworkPolicy, BaselineAdminNetworkPolicy};
use gingham_crds::netpolapi::v1alpha2::ClusterNetworkPolicy;
use k8s_openapi::api::apps::v1::DaemonSet;
use k8s_openapi::api::core::v1::{Namespace, Node, Pod, Secret, ServiceAccount};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use k8s_openapi::api::networking::v1::NetworkPolicy as KubeNetworkPolicy;
use kube::api::ListParams;
use kube::core::DeserializeGuard;
use kube::runtime::reflector::{self, ObjectRef, Store};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Api, Client, ResourceExt};
use tokio::sync::mpsc::UnboundedSender;

use super::KubeError;
use super::plan::Observed;
use super::watched::{Message, Rejected, Watched, judge, messages};
use crate::core::ClusterSnapshot;
use crate::core::cluster_policy::is_translated_name;
use crate::core::engine::Changes;
use crate::datastore::objects::{MANAGED_BY_LABEL, MANAGER, translated_policy_name};

type Guarded<K> = Store<DeserializeGuard<K>>;

/// How often a kind the API server does not serve is looked for again.
const ABSENT_RECHECK: std::time::Duration = std::time::Duration::from_secs(60);

/// The cache of a kind whose CRD another project publishes (the network-policy-api kinds): the
/// cluster may not serve it. While the API server answers 404 the kind counts as ready and empty,
/// and is looked for again every minute; once served, it is watched like any other kind.
#[derive(Clone)]
struct Optional<K: Watched> {
    store: Guarded<K>,
    absent: tokio::sync::watch::Receiver<bool>,
}

impl<K: Watched> Optional<K> {
    async fn wait_until_ready(&self) -> Result<(), KubeError> {
        let mut absent = self.absent.clone();
        // Once the kind is found served, the sender is gone and only the store's readiness counts.
        tokio::select! {
            ready = self.store.wait_until_ready() => ready.map_err(|_| KubeError::WatchStopped),
            Ok(_) = absent.wait_for(|absent| *absent) => Ok(()),
        }
    }
}

/// The local caches of every watched kind.
#[derive(Clone)]
pub struct Stores {
    pools: Guarded<IPPool>,
    bgp_configurations: Guarded<BGPConfiguration>,
    bgp_peers: Guarded<BGPPeer>,
    felix_configurations: Guarded<FelixConfiguration>,
    network_policies: Guarded<NetworkPolicy>,
    global_network_policies: Guarded<GlobalNetworkPolicy>,
    tiers: Guarded<Tier>,
    network_sets: Guarded<NetworkSet>,
    global_network_sets: Guarded<GlobalNetworkSet>,
    host_endpoints: Guarded<HostEndpoint>,
    kube_network_policies: Guarded<KubeNetworkPolicy>,
    cluster_network_policies: Optional<ClusterNetworkPolicy>,
    admin_network_policies: Optional<AdminNetworkPolicy>,
    baseline_admin_network_policies: Optional<BaselineAdminNetworkPolicy>,
    nodes: Guarded<Node>,
    pods: Guarded<Pod>,
    namespaces: Guarded<Namespace>,
    secrets: Guarded<Secret>,
    service_accounts: Guarded<ServiceAccount>,
    endpoint_slices: Guarded<EndpointSlice>,
    blocks: Guarded<IPAMBlock>,
    node_networks: Guarded<NodeNetwork>,
    daemon_sets: Guarded<DaemonSet>,
}

fn watch<K: Watched>(
    api: Api<DeserializeGuard<K>>,
    config: watcher::Config,
    sender: &UnboundedSender<Message>,
) -> Guarded<K> {
    watch_when(api, config, sender, None)
}

/// Watches a kind the cluster may not serve (see [`Optional`]).
fn watch_optional<K: Watched>(client: &Client, sender: &UnboundedSender<Message>) -> Optional<K> {
    let (absent_sender, absent) = tokio::sync::watch::channel(false);
    let store = watch_when(Api::all(client.clone()), watcher::Config::default(), sender, Some(absent_sender));
    Optional { store, absent }
}

/// Starts the watch; with `absent`, first waits until the API server serves the kind, saying so
/// on `absent` meanwhile.
fn watch_when<K: Watched>(
    api: Api<DeserializeGuard<K>>,
    config: watcher::Config,
    sender: &UnboundedSender<Message>,
    absent: Option<tokio::sync::watch::Sender<bool>>,
) -> Guarded<K> {
    let (reader, writer) = reflector::store();
    let sender = sender.clone();
    tokio::spawn(async move {
        let kind = K::kind(&()).to_string();
        if let Some(absent) = absent {
            loop {
                match api.list(&ListParams::default().limit(1)).await {
                    Ok(_) => break,
                    Err(kube::Error::Api(status)) if status.is_not_found() => {
                        if !*absent.borrow() {
                            tracing::info!(kind, "the API server does not serve this kind; looking again every minute");
                        }
                        absent.send_replace(true);
                    }
                    Err(error) => tracing::warn!(kind, %error, "cannot list; retrying"),
                }
                tokio::time::sleep(ABSENT_RECHECK).await;
            }
        }
        let mut events = std::pin::pin!(watcher(api, config).default_backoff().reflect(writer));
        while let Some(event) = events.next().await {
            match event {
                Ok(event) => {
                    for message in messages(event) {
                        if sender.send(message).is_err() {
                            return;
                        }
                    }
                }
                Err(error) => tracing::warn!(kind, %error, "watch failed; retrying with backoff"),
            }
        }
    });
    reader
}

impl Stores {
    /// Starts a watch per kind; every event goes to `sender`.
    pub fn start(client: &Client, namespace: &str, sender: &UnboundedSender<Message>) -> Self {
        let all = watcher::Config::default();
        let ours = watcher::Config::default().labels(&format!("{MANAGED_BY_LABEL}={MANAGER}"));
        Self {
            pools: watch(Api::all(client.clone()), all.clone(), sender),
            bgp_configurations: watch(Api::all(client.clone()), all.clone(), sender),
            bgp_peers: watch(Api::all(client.clone()), all.clone(), sender),
            felix_configurations: watch(Api::all(client.clone()), all.clone(), sender),
            network_policies: watch(Api::all(client.clone()), all.clone(), sender),
            global_network_policies: watch(Api::all(client.clone()), all.clone(), sender),
            tiers: watch(Api::all(client.clone()), all.clone(), sender),
            network_sets: watch(Api::all(client.clone()), all.clone(), sender),
            global_network_sets: watch(Api::all(client.clone()), all.clone(), sender),
            host_endpoints: watch(Api::all(client.clone()), all.clone(), sender),
            kube_network_policies: watch(Api::all(client.clone()), all.clone(), sender),
            cluster_network_policies: watch_optional(client, sender),
            admin_network_policies: watch_optional(client, sender),
            baseline_admin_network_policies: watch_optional(client, sender),
            nodes: watch(Api::all(client.clone()), all.clone(), sender),
            pods: watch(Api::all(client.clone()), all.clone(), sender),
            namespaces: watch(Api::all(client.clone()), all.clone(), sender),
            secrets: watch(Api::namespaced(client.clone(), namespace), all.clone(), sender),
            service_accounts: watch(Api::all(client.clone()), all.clone(), sender),
            endpoint_slices: watch(Api::all(client.clone()), all.clone(), sender),
            blocks: watch(Api::all(client.clone()), all.clone(), sender),
            node_networks: watch(Api::all(client.clone()), all, sender),
            daemon_sets: watch(Api::namespaced(client.clone(), namespace), ours, sender),
        }
    }

    /// Waits until every cache holds its first full list.
    pub async fn wait_until_ready(&self) -> Result<(), KubeError> {
        let stopped = |_| KubeError::WatchStopped;
        self.pools.wait_until_ready().await.map_err(stopped)?;
        self.bgp_configurations.wait_until_ready().await.map_err(stopped)?;
        self.bgp_peers.wait_until_ready().await.map_err(stopped)?;
        self.felix_configurations.wait_until_ready().await.map_err(stopped)?;
        self.network_policies.wait_until_ready().await.map_err(stopped)?;
        self.global_network_policies.wait_until_ready().await.map_err(stopped)?;
        self.tiers.wait_until_ready().await.map_err(stopped)?;
        self.network_sets.wait_until_ready().await.map_err(stopped)?;
        self.global_network_sets.wait_until_ready().await.map_err(stopped)?;
        self.host_endpoints.wait_until_ready().await.map_err(stopped)?;
        self.kube_network_policies.wait_until_ready().await.map_err(stopped)?;
        self.cluster_network_policies.wait_until_ready().await?;
        self.admin_network_policies.wait_until_ready().await?;
        self.baseline_admin_network_policies.wait_until_ready().await?;
        self.nodes.wait_until_ready().await.map_err(stopped)?;
        self.pods.wait_until_ready().await.map_err(stopped)?;
        self.namespaces.wait_until_ready().await.map_err(stopped)?;
        self.secrets.wait_until_ready().await.map_err(stopped)?;
        self.service_accounts.wait_until_ready().await.map_err(stopped)?;
        self.endpoint_slices.wait_until_ready().await.map_err(stopped)?;
        self.blocks.wait_until_ready().await.map_err(stopped)?;
        self.node_networks.wait_until_ready().await.map_err(stopped)?;
        self.daemon_sets.wait_until_ready().await.map_err(stopped)?;
        Ok(())
    }

    /// Everything valid the caches hold, and every object skipped.
    pub fn snapshot(&self) -> (ClusterSnapshot, Vec<Rejected>) {
        let mut rejected = Vec::new();
        let node_networks = valid(&self.node_networks, &mut rejected);
        let snapshot = ClusterSnapshot {
            pools: valid(&self.pools, &mut rejected),
            bgp_configurations: valid(&self.bgp_configurations, &mut rejected),
            bgp_peers: valid(&self.bgp_peers, &mut rejected),
            felix_configurations: valid(&self.felix_configurations, &mut rejected),
            network_policies: valid(&self.network_policies, &mut rejected),
            global_network_policies: valid(&self.global_network_policies, &mut rejected),
            tiers: valid(&self.tiers, &mut rejected),
            network_sets: valid(&self.network_sets, &mut rejected),
            global_network_sets: valid(&self.global_network_sets, &mut rejected),
            host_endpoints: valid(&self.host_endpoints, &mut rejected),
            kube_network_policies: valid(&self.kube_network_policies, &mut rejected),
            cluster_network_policies: valid(&self.cluster_network_policies.store, &mut rejected),
            admin_network_policies: valid(&self.admin_network_policies.store, &mut rejected),
            baseline_admin_network_policies: valid(&self.baseline_admin_network_policies.store, &mut rejected),
            nodes: valid(&self.nodes, &mut rejected),
            pods: valid(&self.pods, &mut rejected),
            namespaces: valid(&self.namespaces, &mut rejected),
            secrets: valid(&self.secrets, &mut rejected),
            service_accounts: valid(&self.service_accounts, &mut rejected),
            endpoint_slices: valid(&self.endpoint_slices, &mut rejected),
            blocks: valid(&self.blocks, &mut rejected),
            node_statuses: node_networks
                .iter()
                .filter_map(|n| Some((n.name_any(), n.status.clone()?)))
                .collect::<BTreeMap<_, _>>(),
        };
        (snapshot, rejected)
    }

    /// What the API server holds of the kinds the operator writes: everything (`None`), or only
    /// the objects `changes` names.
    pub fn observed(&self, changes: Option<&Changes>) -> Observed {
        let Some(changes) = changes else {
            let mut ignored = Vec::new();
            return Observed {
                node_networks: by_name(valid(&self.node_networks, &mut ignored)),
                blocks: by_name(valid(&self.blocks, &mut ignored)),
                policies: valid(&self.network_policies, &mut ignored)
                    .into_iter()
                    .map(|o| ((o.namespace().unwrap_or_default(), o.name_any()), o))
                    .collect(),
                global_policies: by_name(
                    valid(&self.global_network_policies, &mut ignored)
                        .into_iter()
                        .filter(|o| is_translated_name(&o.name_any()))
                        .collect(),
                ),
                pools: by_name(valid(&self.pools, &mut ignored)),
                daemon_sets: by_name(valid(&self.daemon_sets, &mut ignored)),
            };
        };
        let cluster =
            |names: &std::collections::BTreeSet<String>| names.iter().map(|n| (None, n.clone())).collect::<Vec<_>>();
        let policies = changes
            .translated_policies
            .iter()
            .map(|(namespace, name)| (Some(namespace.clone()), translated_policy_name(name, &NetworkPolicy::default())))
            .collect::<Vec<_>>();
        Observed {
            node_networks: by_name(pick(&self.node_networks, &cluster(&changes.node_networks))),
            blocks: by_name(pick(&self.blocks, &cluster(&changes.blocks))),
            policies: pick(&self.network_policies, &policies)
                .into_iter()
                .map(|o| ((o.namespace().unwrap_or_default(), o.name_any()), o))
                .collect(),
            global_policies: by_name(pick(
                &self.global_network_policies,
                &cluster(&changes.translated_global_policies),
            )),
            pools: by_name(pick(&self.pools, &cluster(&changes.pool_statuses))),
            daemon_sets: if changes.agent_daemon_set {
                by_name(valid(&self.daemon_sets, &mut Vec::new()))
            } else {
                BTreeMap::new()
            },
        }
    }
}

fn by_name<K: Watched>(objects: Vec<K>) -> BTreeMap<String, K> {
    objects.into_iter().map(|o| (o.name_any(), o)).collect()
}

/// The decodable, valid objects of `store` among `keys` (namespace, name).
fn pick<K: Watched>(store: &Guarded<K>, keys: &[(Option<String>, String)]) -> Vec<K> {
    keys.iter()
        .filter_map(|(namespace, name)| {
            let reference = ObjectRef::new(name);
            let reference = match namespace {
                Some(namespace) => reference.within(namespace),
                None => reference,
            };
            store.get(&reference)
        })
        .filter_map(|guarded| judge(&guarded).ok())
        .collect()
}

/// The decodable, valid objects of a store; the others go to `rejected`.
fn valid<K: Watched>(store: &Guarded<K>, rejected: &mut Vec<Rejected>) -> Vec<K> {
    let mut objects = Vec::new();
    for guarded in store.state() {
        match judge(&guarded) {
            Ok(object) => objects.push(object),
            Err(skipped) => rejected.push(skipped),
        }
    }
    objects
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use http::{Request, Response};
    use kube::client::Body;
    use serde_json::json;

    use super::*;

    fn peer(name: &str, spec: serde_json::Value) -> serde_json::Value {
        json!({"apiVersion": "gingham.dev/v1", "kind": "BGPPeer",
               "metadata": {"name": name, "resourceVersion": "7"}, "spec": spec})
    }

    /// A real watcher over a mocked API server whose list holds a good peer, one that does not
    /// decode and one that decodes but fails validation: the watch keeps going, the good one is
    /// used and the two others are reported.
    #[tokio::test]
    async fn a_malformed_object_is_reported_and_the_watch_keeps_going() {
        let (service, mut handle) = tower_test::mock::pair::<Request<Body>, Response<Body>>();
        let client = Client::new(service, "default");
        let (sender, mut receiver) = tokio::sync::mpsc::unbounded_channel();
        let store: Guarded<BGPPeer> = watch(Api::all(client), watcher::Config::default(), &sender);
        let (request, respond) = handle.next_request().await.unwrap();
        assert_eq!(request.uri().path(), "/apis/gingham.dev/v1/bgppeers");
        let list = json!({
            "apiVersion": "gingham.dev/v1", "kind": "BGPPeerList", "metadata": {"resourceVersion": "10"},
            "items": [
                peer("good", json!({"peerIP": "192.0.2.1", "asNumber": 64513})),
                peer("garbled", json!({"peerIP": "192.0.2.2", "asNumber": "not-a-number"})),
                peer("bad-selector", json!({"nodeSelector": "rack ==", "peerIP": "192.0.2.3", "asNumber": 64513})),
            ],
        });
        respond.send_response(Response::new(Body::from(serde_json::to_vec(&list).unwrap())));
        store.wait_until_ready().await.unwrap();

        // The engine hears of the good peer only; the two others are reported, then a resync.
        let mut heard = Vec::new();
        loop {
            let message = receiver.recv().await.unwrap();
            let done = matches!(message, Message::Resync);
            heard.push(match message {
                Message::Event(event) => match *event {
                    crate::core::engine::Event::Upsert(object) => format!("upsert {:?}", object.key()),
                    crate::core::engine::Event::Delete(kind, key) => format!("delete {kind:?} {key:?}"),
                },
                Message::Rejected(r) => format!("rejected {}", r.name),
                Message::Accepted(id) => format!("accepted {}", id.2),
                Message::Resync => "resync".into(),
            });
            if done {
                break;
            }
        }
        assert_eq!(
            heard,
            [
                "accepted good",
                "upsert (\"\", \"good\")",
                "rejected garbled",
                "delete BgpPeer (\"\", \"garbled\")",
                "rejected bad-selector",
                "delete BgpPeer (\"\", \"bad-selector\")",
                "resync",
            ]
        );

        let mut rejected = Vec::new();
        let peers = valid(&store, &mut rejected);
        assert_eq!(peers.iter().map(ResourceExt::name_any).collect::<Vec<_>>(), ["good"]);
        rejected.sort();
        let summary: Vec<(&str, bool)> = rejected
            .iter()
            .map(|r| {
                (r.name.as_str(), r.message.starts_with("cannot decode") || r.message.contains("spec.nodeSelector"))
            })
            .collect();
        assert_eq!(summary, [("bad-selector", true), ("garbled", true)], "{rejected:?}");
        assert!(rejected.iter().all(|r| r.kind == "BGPPeer" && r.resource_version.as_deref() == Some("7")));

        // The watcher went on to watch from the list's version.
        let (request, _respond) = handle.next_request().await.unwrap();
        let query = request.uri().query().unwrap_or_default().to_string();
        assert!(query.contains("watch=true") && query.contains("resourceVersion=10"), "{query}");
    }
}
