//! The stream's messages on the wire: the generated protobuf types, and the conversion between them
//! and [`Delivery`]. Item values and patches travel as the JSON of gingham's typed items; decoding them is
//! validation, and a message that does not decode is refused whole, naming the item.

use std::collections::BTreeMap;
use std::sync::Arc;

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::item::{Item, ItemKey, ItemKind};
use crate::replica::{Delivery, Update};

/// The generated protobuf messages and gRPC stubs (`proto/stream.proto`).
#[allow(missing_docs, unreachable_pub, clippy::all, clippy::pedantic)]
pub mod proto {
    tonic::include_proto!("gingham.stream.v1");
}

/// An item the stream can carry: its value and its patch are JSON on the wire.
pub trait WireItem:
    Item<Patch = <Self as WireItem>::WirePatch> + Serialize + DeserializeOwned + Send + Sync + 'static
{
    /// The item's patch, as it travels.
    type WirePatch: Clone + PartialEq + std::fmt::Debug + Serialize + DeserializeOwned + Send + Sync + 'static;
}

impl<V, P> WireItem for V
where
    V: Item<Patch = P> + Serialize + DeserializeOwned + Send + Sync + 'static,
    P: Clone + PartialEq + std::fmt::Debug + Serialize + DeserializeOwned + Send + Sync + 'static,
{
    type WirePatch = P;
}

/// A message that does not decode.
#[derive(Debug, thiserror::Error)]
pub enum WireError {
    /// An item key with an unknown kind.
    #[error("item {name}: unknown kind {kind}; the server is newer than this agent, upgrade the agent")]
    UnknownKind {
        /// The item's name.
        name: String,
        /// The kind's number.
        kind: i32,
    },
    /// An update without a key or a change.
    #[error("an update of item {name:?} carries no {missing}")]
    Incomplete {
        /// The item's name, when there was a key.
        name: Option<String>,
        /// What is missing.
        missing: &'static str,
    },
    /// A value or patch that is not the JSON of its type.
    #[error("item {key}: its {part} does not decode: {source}")]
    Payload {
        /// The item.
        key: ItemKey,
        /// `value` or `patch`.
        part: &'static str,
        /// Why.
        #[source]
        source: serde_json::Error,
    },
    /// A value that does not encode (a map with non-string keys, for one).
    #[error("item {key}: its {part} does not encode: {source}")]
    Encode {
        /// The item.
        key: ItemKey,
        /// `value` or `patch`.
        part: &'static str,
        /// Why.
        #[source]
        source: serde_json::Error,
    },
}

/// An item value's digest: the first 16 bytes of the SHA-256 of its JSON as it travels. A resync
/// by content takes two values with the same digest as equal (a false match among 2^128 values is
/// not a risk worth a snapshot).
pub type Digest = [u8; DIGEST_BYTES];

/// The length of a [`Digest`].
pub const DIGEST_BYTES: usize = 16;

/// The digest of `value`, the item under `key`.
pub fn digest<V: WireItem>(key: &ItemKey, value: &V) -> Result<Digest, WireError> {
    let json = encode_json(key, "value", value)?;
    let hash = ring::digest::digest(&ring::digest::SHA256, &json);
    let mut digest = [0; DIGEST_BYTES];
    digest.copy_from_slice(&hash.as_ref()[..DIGEST_BYTES]);
    Ok(digest)
}

/// What a subscriber holds, as digests for a resubscription.
pub fn held_to_wire<V: WireItem>(items: &BTreeMap<ItemKey, Arc<V>>) -> Result<proto::SpanDigest, WireError> {
    let items: Result<Vec<_>, _> = items
        .iter()
        .map(|(key, value)| {
            let digest = digest(key, &**value)?;
            Ok(proto::ItemDigest { key: Some(key_to_wire(key)), digest: digest.to_vec() })
        })
        .collect();
    Ok(proto::SpanDigest { items: items? })
}

/// What a subscriber says it holds. A digest of another length is kept: it matches no value, so
/// the item is sent whole.
pub fn held_from_wire(held: proto::SpanDigest) -> Result<BTreeMap<ItemKey, Vec<u8>>, WireError> {
    let mut items = BTreeMap::new();
    for item in held.items {
        let Some(key) = item.key else { return Err(WireError::Incomplete { name: None, missing: "key" }) };
        items.insert(key_from_wire(key)?, item.digest);
    }
    Ok(items)
}

fn key_to_wire(key: &ItemKey) -> proto::ItemKey {
    proto::ItemKey { kind: kind_to_wire(key.kind).into(), name: key.name.clone() }
}

fn kind_to_wire(kind: ItemKind) -> proto::ItemKind {
    match kind {
        ItemKind::Policy => proto::ItemKind::Policy,
        ItemKind::IpSet => proto::ItemKind::IpSet,
        ItemKind::BgpPeers => proto::ItemKind::BgpPeers,
        ItemKind::Endpoints => proto::ItemKind::Endpoints,
        ItemKind::HostEndpoints => proto::ItemKind::HostEndpoints,
    }
}

fn key_from_wire(key: proto::ItemKey) -> Result<ItemKey, WireError> {
    let kind = match proto::ItemKind::try_from(key.kind) {
        Ok(proto::ItemKind::Policy) => ItemKind::Policy,
        Ok(proto::ItemKind::IpSet) => ItemKind::IpSet,
        Ok(proto::ItemKind::BgpPeers) => ItemKind::BgpPeers,
        Ok(proto::ItemKind::Endpoints) => ItemKind::Endpoints,
        Ok(proto::ItemKind::HostEndpoints) => ItemKind::HostEndpoints,
        Ok(proto::ItemKind::Unspecified) | Err(_) => {
            return Err(WireError::UnknownKind { name: key.name, kind: key.kind });
        }
    };
    Ok(ItemKey { kind, name: key.name })
}

fn encode_json<T: Serialize>(key: &ItemKey, part: &'static str, value: &T) -> Result<Vec<u8>, WireError> {
    serde_json::to_vec(value).map_err(|source| WireError::Encode { key: key.clone(), part, source })
}

fn decode_json<T: DeserializeOwned>(key: &ItemKey, part: &'static str, bytes: &[u8]) -> Result<T, WireError> {
    serde_json::from_slice(bytes).map_err(|source| WireError::Payload { key: key.clone(), part, source })
}

fn update_to_wire<V: WireItem>(key: &ItemKey, update: &Update<V>) -> Result<proto::ItemUpdate, WireError> {
    use proto::item_update::Change;
    let change = match update {
        Update::Set(value) => Change::Set(encode_json(key, "value", &**value)?),
        Update::Patch(patch) => Change::Patch(encode_json(key, "patch", &**patch)?),
        Update::Remove => Change::Remove(true),
    };
    Ok(proto::ItemUpdate { key: Some(key_to_wire(key)), change: Some(change) })
}

/// Encodes a sync for the wire.
pub fn encode<V: WireItem>(delivery: &Delivery<V>) -> Result<proto::SyncMessage, WireError> {
    let (snapshot, from_revision, updates) = match delivery {
        Delivery::Snapshot { items, .. } => {
            let updates: Result<Vec<_>, _> =
                items.iter().map(|(key, value)| update_to_wire(key, &Update::Set(Arc::clone(value)))).collect();
            (true, 0, updates?)
        }
        Delivery::Delta { from, updates, .. } => {
            let updates: Result<Vec<_>, _> = updates.iter().map(|(key, update)| update_to_wire(key, update)).collect();
            (false, *from, updates?)
        }
    };
    Ok(proto::SyncMessage {
        snapshot,
        from_revision,
        revision: delivery.revision(),
        updates,
        origin: 0,
        heartbeat_ms: 0,
    })
}

/// Decodes a sync from the wire; refuses the whole message if one item does not decode.
pub fn decode<V: WireItem>(message: proto::SyncMessage) -> Result<Delivery<V>, WireError> {
    use proto::item_update::Change;
    let mut items = BTreeMap::new();
    let mut updates = BTreeMap::new();
    for update in message.updates {
        let Some(key) = update.key else { return Err(WireError::Incomplete { name: None, missing: "key" }) };
        let key = key_from_wire(key)?;
        match update.change {
            None => return Err(WireError::Incomplete { name: Some(key.name), missing: "change" }),
            Some(Change::Set(bytes)) if message.snapshot => {
                let value: V = decode_json(&key, "value", &bytes)?;
                items.insert(key, Arc::new(value));
            }
            Some(_) if message.snapshot => {
                return Err(WireError::Incomplete { name: Some(key.name), missing: "value in a snapshot" });
            }
            Some(Change::Set(bytes)) => {
                let value: V = decode_json(&key, "value", &bytes)?;
                updates.insert(key, Update::Set(Arc::new(value)));
            }
            Some(Change::Patch(bytes)) => {
                let patch: V::Patch = decode_json(&key, "patch", &bytes)?;
                updates.insert(key, Update::Patch(Arc::new(patch)));
            }
            Some(Change::Remove(_)) => {
                updates.insert(key, Update::Remove);
            }
        }
    }
    Ok(if message.snapshot {
        Delivery::Snapshot { revision: message.revision, items }
    } else {
        Delivery::Delta { from: message.from_revision, to: message.revision, updates }
    })
}
