//! The Kubernetes datastore: watches this node's NodeNetwork (by name) and every IPAMBlock, and
//! writes status through the status subresource with server-side apply.
//!
//! Objects are watched untyped and decoded here, so one object that does not decode is reported
//! (the NodeNetwork) or skipped (an IPAMBlock) instead of breaking the watch.

use std::collections::BTreeMap;
use std::sync::Arc;

use futures::StreamExt;
use gingham_crds::api::{API_VERSION, IPAMBlock, NodeNetwork, NodeNetworkStatus};
use kube::api::{ApiResource, DynamicObject, Patch, PatchParams};
use kube::runtime::WatchStreamExt;
use kube::runtime::watcher::{self, Event};
use kube::{Api, Client, ResourceExt};
use serde::de::DeserializeOwned;
use serde_json::json;
use tokio::sync::watch;

use super::{DatastoreError, FIELD_MANAGER, NodeNetworkState, Snapshot, StatusSink};

/// Starts the watches; the channel holds the current inputs.
pub fn spawn(client: Client, node: &str) -> watch::Receiver<Snapshot> {
    let (sender, receiver) = watch::channel(Snapshot::default());
    let sender = Arc::new(sender);
    let networks = Api::all_with(client.clone(), &ApiResource::erase::<NodeNetwork>(&()));
    let blocks = Api::all_with(client, &ApiResource::erase::<IPAMBlock>(&()));
    tokio::spawn(watch_node_network(networks, node.to_string(), Arc::clone(&sender)));
    tokio::spawn(watch_blocks(blocks, sender));
    receiver
}

fn decode<T: DeserializeOwned>(object: &DynamicObject) -> Result<T, String> {
    serde_json::to_value(object).and_then(serde_json::from_value).map_err(|e| e.to_string())
}

async fn watch_node_network(api: Api<DynamicObject>, node: String, sender: Arc<watch::Sender<Snapshot>>) {
    let config = watcher::Config::default().fields(&format!("metadata.name={node}"));
    let mut events = watcher::watcher(api, config).default_backoff().boxed();
    while let Some(event) = events.next().await {
        let state = match event {
            Ok(Event::Apply(object) | Event::InitApply(object)) => match decode::<NodeNetwork>(&object) {
                Ok(network) => NodeNetworkState::Found(Box::new(network)),
                Err(error) => NodeNetworkState::Malformed(format!("cannot decode: {error}")),
            },
            Ok(Event::Delete(_)) => NodeNetworkState::Missing,
            Ok(Event::Init | Event::InitDone) => continue,
            Err(error) => {
                tracing::warn!(%node, %error, "watching this node's NodeNetwork failed; retrying");
                continue;
            }
        };
        sender.send_if_modified(|snapshot| {
            let changed = snapshot.node_network != state;
            snapshot.node_network = state;
            changed
        });
    }
}

async fn watch_blocks(api: Api<DynamicObject>, sender: Arc<watch::Sender<Snapshot>>) {
    let mut known = BTreeMap::new();
    let mut pending = BTreeMap::new();
    let mut events = watcher::watcher(api, watcher::Config::default()).default_backoff().boxed();
    while let Some(event) = events.next().await {
        let decoded = |object: &DynamicObject| match decode::<IPAMBlock>(object) {
            Ok(block) => Some(block.spec),
            Err(error) => {
                tracing::warn!(block = %object.name_any(), %error, "skipping an IPAMBlock that does not decode");
                None
            }
        };
        match event {
            Ok(Event::Init) => pending.clear(),
            Ok(Event::InitApply(object)) => {
                if let Some(spec) = decoded(&object) {
                    pending.insert(object.name_any(), spec);
                }
            }
            Ok(Event::InitDone) => known = std::mem::take(&mut pending),
            Ok(Event::Apply(object)) => match decoded(&object) {
                Some(spec) => {
                    known.insert(object.name_any(), spec);
                }
                None => {
                    known.remove(&object.name_any());
                }
            },
            Ok(Event::Delete(object)) => {
                known.remove(&object.name_any());
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
