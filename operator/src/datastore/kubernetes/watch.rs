//! Reflectors over every kind the operator reads. Objects are decoded through
//! [`DeserializeGuard`], so a malformed object is held as an error, reported and skipped while the
//! watch and every other object keep working (linkerd's guarded watches).

use std::collections::BTreeMap;
use std::fmt::Debug;
use std::sync::Arc;

use futures::StreamExt;
use gingham_crds::api::{
    BGPConfiguration, BGPPeer, FelixConfiguration, GlobalNetworkPolicy, IPAMBlock, IPPool, NetworkPolicy, NodeNetwork,
};
use gingham_crds::manifest::Manifest;
use k8s_openapi::api::apps::v1::DaemonSet;
use k8s_openapi::api::core::v1::{Namespace, Node, Pod, Secret};
use k8s_openapi::api::networking::v1::NetworkPolicy as KubeNetworkPolicy;
use kube::core::DeserializeGuard;
use kube::runtime::reflector::{self, Store};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Api, Client, Resource, ResourceExt};
use serde::de::DeserializeOwned;
use tokio::sync::Notify;

use super::KubeError;
use super::plan::Observed;
use crate::core::ClusterSnapshot;
use crate::datastore::objects::{MANAGED_BY_LABEL, MANAGER};

/// An object the operator skips, and why.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Rejected {
    /// The kind.
    pub kind: String,
    /// The namespace, for namespaced kinds.
    pub namespace: Option<String>,
    /// The name.
    pub name: String,
    /// The version seen, so that each version is reported once.
    pub resource_version: Option<String>,
    /// What is wrong.
    pub message: String,
}

type Guarded<K> = Store<DeserializeGuard<K>>;

/// The local caches of every watched kind.
#[derive(Clone)]
pub struct Stores {
    pools: Guarded<IPPool>,
    bgp_configurations: Guarded<BGPConfiguration>,
    bgp_peers: Guarded<BGPPeer>,
    felix_configurations: Guarded<FelixConfiguration>,
    network_policies: Guarded<NetworkPolicy>,
    global_network_policies: Guarded<GlobalNetworkPolicy>,
    kube_network_policies: Guarded<KubeNetworkPolicy>,
    nodes: Guarded<Node>,
    pods: Guarded<Pod>,
    namespaces: Guarded<Namespace>,
    secrets: Guarded<Secret>,
    blocks: Guarded<IPAMBlock>,
    node_networks: Guarded<NodeNetwork>,
    daemon_sets: Guarded<DaemonSet>,
}

fn watch<K>(api: Api<DeserializeGuard<K>>, config: watcher::Config, changes: &Arc<Notify>) -> Guarded<K>
where
    K: Resource<DynamicType = ()> + Clone + DeserializeOwned + Debug + Send + Sync + 'static,
{
    let (reader, writer) = reflector::store();
    let changes = Arc::clone(changes);
    tokio::spawn(async move {
        let kind = K::kind(&()).to_string();
        let mut events = std::pin::pin!(watcher(api, config).default_backoff().reflect(writer));
        while let Some(event) = events.next().await {
            match event {
                Ok(_) => changes.notify_one(),
                Err(error) => tracing::warn!(kind, %error, "watch failed; retrying with backoff"),
            }
        }
    });
    reader
}

impl Stores {
    /// Starts a watch per kind; `changes` is notified on every event.
    pub fn start(client: &Client, namespace: &str, changes: &Arc<Notify>) -> Self {
        let all = watcher::Config::default();
        let ours = watcher::Config::default().labels(&format!("{MANAGED_BY_LABEL}={MANAGER}"));
        Self {
            pools: watch(Api::all(client.clone()), all.clone(), changes),
            bgp_configurations: watch(Api::all(client.clone()), all.clone(), changes),
            bgp_peers: watch(Api::all(client.clone()), all.clone(), changes),
            felix_configurations: watch(Api::all(client.clone()), all.clone(), changes),
            network_policies: watch(Api::all(client.clone()), all.clone(), changes),
            global_network_policies: watch(Api::all(client.clone()), all.clone(), changes),
            kube_network_policies: watch(Api::all(client.clone()), all.clone(), changes),
            nodes: watch(Api::all(client.clone()), all.clone(), changes),
            pods: watch(Api::all(client.clone()), all.clone(), changes),
            namespaces: watch(Api::all(client.clone()), all.clone(), changes),
            secrets: watch(Api::namespaced(client.clone(), namespace), all.clone(), changes),
            blocks: watch(Api::all(client.clone()), all.clone(), changes),
            node_networks: watch(Api::all(client.clone()), all, changes),
            daemon_sets: watch(Api::namespaced(client.clone(), namespace), ours, changes),
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
        self.kube_network_policies.wait_until_ready().await.map_err(stopped)?;
        self.nodes.wait_until_ready().await.map_err(stopped)?;
        self.pods.wait_until_ready().await.map_err(stopped)?;
        self.namespaces.wait_until_ready().await.map_err(stopped)?;
        self.secrets.wait_until_ready().await.map_err(stopped)?;
        self.blocks.wait_until_ready().await.map_err(stopped)?;
        self.node_networks.wait_until_ready().await.map_err(stopped)?;
        self.daemon_sets.wait_until_ready().await.map_err(stopped)?;
        Ok(())
    }

    /// Everything valid the caches hold, and every object skipped.
    pub fn snapshot(&self) -> (ClusterSnapshot, Vec<Rejected>) {
        let mut rejected = Vec::new();
        let node_networks = valid(&self.node_networks, &mut rejected, accept);
        let snapshot = ClusterSnapshot {
            // Pools reach the core even when invalid: it reports them in their status.
            pools: valid(&self.pools, &mut rejected, accept),
            bgp_configurations: valid(&self.bgp_configurations, &mut rejected, |o| {
                Manifest::BGPConfiguration(o.clone()).validate()
            }),
            bgp_peers: valid(&self.bgp_peers, &mut rejected, |o| Manifest::BGPPeer(o.clone()).validate()),
            felix_configurations: valid(&self.felix_configurations, &mut rejected, |o| {
                Manifest::FelixConfiguration(o.clone()).validate()
            }),
            network_policies: valid(&self.network_policies, &mut rejected, |o| {
                Manifest::NetworkPolicy(o.clone()).validate()
            }),
            global_network_policies: valid(&self.global_network_policies, &mut rejected, |o| {
                Manifest::GlobalNetworkPolicy(o.clone()).validate()
            }),
            kube_network_policies: valid(&self.kube_network_policies, &mut rejected, accept),
            nodes: valid(&self.nodes, &mut rejected, accept),
            pods: valid(&self.pods, &mut rejected, accept),
            namespaces: valid(&self.namespaces, &mut rejected, accept),
            secrets: valid(&self.secrets, &mut rejected, accept),
            blocks: valid(&self.blocks, &mut rejected, accept),
            node_statuses: node_networks
                .iter()
                .filter_map(|n| Some((n.name_any(), n.status.clone()?)))
                .collect::<BTreeMap<_, _>>(),
        };
        (snapshot, rejected)
    }

    /// What the API server holds of the kinds the operator writes.
    pub fn observed(&self) -> Observed {
        let mut ignored = Vec::new();
        Observed {
            node_networks: valid(&self.node_networks, &mut ignored, accept)
                .into_iter()
                .map(|o| (o.name_any(), o))
                .collect(),
            blocks: valid(&self.blocks, &mut ignored, accept).into_iter().map(|o| (o.name_any(), o)).collect(),
            policies: valid(&self.network_policies, &mut ignored, accept)
                .into_iter()
                .map(|o| ((o.namespace().unwrap_or_default(), o.name_any()), o))
                .collect(),
            pools: valid(&self.pools, &mut ignored, accept).into_iter().map(|o| (o.name_any(), o)).collect(),
            daemon_sets: valid(&self.daemon_sets, &mut ignored, accept)
                .into_iter()
                .map(|o| (o.name_any(), o))
                .collect(),
        }
    }
}

/// Accepts every object that decodes.
fn accept<K>(_: &K) -> Result<(), Vec<String>> {
    Ok(())
}

/// The decodable objects of a store that pass `check`; the others go to `rejected`.
fn valid<K, E>(store: &Guarded<K>, rejected: &mut Vec<Rejected>, check: impl Fn(&K) -> Result<(), Vec<E>>) -> Vec<K>
where
    K: Resource<DynamicType = ()> + Clone,
    E: std::fmt::Display,
{
    let kind = K::kind(&()).to_string();
    let mut objects = Vec::new();
    for guarded in store.state() {
        let (metadata, message) = match &guarded.0 {
            Ok(object) => match check(object) {
                Ok(()) => {
                    objects.push(object.clone());
                    continue;
                }
                Err(errors) => {
                    let messages: Vec<String> = errors.iter().map(ToString::to_string).collect();
                    (object.meta().clone(), messages.join("; "))
                }
            },
            Err(invalid) => (invalid.metadata.clone(), format!("cannot decode: {}", invalid.error)),
        };
        rejected.push(Rejected {
            kind: kind.clone(),
            namespace: metadata.namespace,
            name: metadata.name.unwrap_or_default(),
            resource_version: metadata.resource_version,
            message,
        });
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
        let changes = Arc::new(Notify::new());
        let store: Guarded<BGPPeer> = watch(Api::all(client), watcher::Config::default(), &changes);
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
        changes.notified().await;

        let mut rejected = Vec::new();
        let peers = valid(&store, &mut rejected, |o: &BGPPeer| Manifest::BGPPeer(o.clone()).validate());
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
