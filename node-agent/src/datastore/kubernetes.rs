//! The Kubernetes datastore: watches this node's NodeNetwork (by name) and every IPAMBlock, and
//! writes status through the status subresource with server-side apply.

use std::collections::BTreeMap;
use std::sync::Arc;

use futures::StreamExt;
use gingham_crds::api::{API_VERSION, IPAMBlock, NodeNetwork, NodeNetworkStatus};
use kube::api::{Patch, PatchParams};
use kube::runtime::WatchStreamExt;
use kube::runtime::watcher::{self, Event};
use kube::{Api, Client, ResourceExt};
use serde_json::json;
use tokio::sync::watch;

use super::{DatastoreError, FIELD_MANAGER, NodeNetworkState, Snapshot, StatusSink};

/// Starts the watches; the channel holds the current inputs.
pub fn spawn(client: Client, node: &str) -> watch::Receiver<Snapshot> {
    let (sender, receiver) = watch::channel(Snapshot::default());
    let sender = Arc::new(sender);
    tokio::spawn(watch_node_network(Api::all(client.clone()), node.to_string(), Arc::clone(&sender)));
    tokio::spawn(watch_blocks(Api::all(client), sender));
    receiver
}

async fn watch_node_network(api: Api<NodeNetwork>, node: String, sender: Arc<watch::Sender<Snapshot>>) {
    let config = watcher::Config::default().fields(&format!("metadata.name={node}"));
    let mut events = watcher::watcher(api, config).default_backoff().boxed();
    while let Some(event) = events.next().await {
        let state = match event {
            Ok(Event::Apply(network) | Event::InitApply(network)) => NodeNetworkState::Found(Box::new(network)),
            Ok(Event::Delete(_)) => NodeNetworkState::Missing,
            Ok(Event::Init | Event::InitDone) => continue,
            Err(error) => {
                tracing::warn!(%node, %error, "watching this node's NodeNetwork failed; retrying");
                if matches!(error, watcher::Error::WatchError(_) | watcher::Error::InitialListFailed(_)) {
                    NodeNetworkState::Malformed(error.to_string())
                } else {
                    continue;
                }
            }
        };
        sender.send_if_modified(|snapshot| {
            let changed = snapshot.node_network != state;
            snapshot.node_network = state;
            changed
        });
    }
}

async fn watch_blocks(api: Api<IPAMBlock>, sender: Arc<watch::Sender<Snapshot>>) {
    let mut known = BTreeMap::new();
    let mut pending = BTreeMap::new();
    let mut events = watcher::watcher(api, watcher::Config::default()).default_backoff().boxed();
    while let Some(event) = events.next().await {
        match event {
            Ok(Event::Init) => pending.clear(),
            Ok(Event::InitApply(block)) => {
                pending.insert(block.name_any(), block.spec);
            }
            Ok(Event::InitDone) => known = std::mem::take(&mut pending),
            Ok(Event::Apply(block)) => {
                known.insert(block.name_any(), block.spec);
            }
            Ok(Event::Delete(block)) => {
                known.remove(&block.name_any());
            }
            Err(error) => {
                tracing::warn!(%error, "watching IPAMBlocks failed; retrying");
                continue;
            }
        }
        let blocks: Vec<_> = known.values().cloned().collect();
        sender.send_if_modified(|snapshot| {
            let changed = snapshot.blocks != blocks;
            snapshot.blocks = blocks;
            changed
        });
    }
}

/// Writes status with server-side apply (field manager `gingham-node-agent`).
#[derive(Clone)]
pub struct KubeStatus {
    api: Api<NodeNetwork>,
    node: String,
}

impl KubeStatus {
    /// The status writer for `node`.
    pub fn new(client: Client, node: &str) -> Self {
        Self { api: Api::all(client), node: node.to_string() }
    }
}

impl StatusSink for KubeStatus {
    async fn write_status(&self, status: &NodeNetworkStatus) -> Result<(), DatastoreError> {
        let patch = json!({
            "apiVersion": API_VERSION,
            "kind": "NodeNetwork",
            "metadata": { "name": self.node },
            "status": status,
        });
        self.api
            .patch_status(&self.node, &PatchParams::apply(FIELD_MANAGER).force(), &Patch::Apply(&patch))
            .await
            .map_err(|source| DatastoreError::Kube {
                action: "patching the status of",
                node: self.node.clone(),
                source,
            })?;
        Ok(())
    }
}
