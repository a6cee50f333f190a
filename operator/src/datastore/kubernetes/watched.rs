//! What each watched kind means to the core: its engine kind, the Rust validation a schema cannot
//! do, and how a watch event becomes engine events and problem reports.

use std::fmt::Debug;

use gingham_crds::api::{
    BGPConfiguration, BGPPeer, FelixConfiguration, GlobalNetworkPolicy, GlobalNetworkSet, HostEndpoint, IPAMBlock,
    IPPool, NetworkPolicy, NetworkSet, NodeNetwork, Tier,
};
use gingham_crds::manifest::Manifest;
use gingham_crds::netpolapi::v1alpha1::{AdminNetworkPolicy, BaselineAdminNetworkPolicy};
use gingham_crds::netpolapi::v1alpha2::ClusterNetworkPolicy;
use k8s_openapi::api::apps::v1::DaemonSet;
use k8s_openapi::api::core::v1::{Namespace, Node, Pod, Secret, ServiceAccount};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use k8s_openapi::api::networking::v1::NetworkPolicy as KubeNetworkPolicy;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::core::DeserializeGuard;
use kube::runtime::watcher;
use kube::{Resource, ResourceExt};
use serde::de::DeserializeOwned;

use crate::core::engine::Event;
use crate::core::engine::store::{Kind, Object};

/// An object's identity for problem reports: kind, namespace, name.
pub type ObjectId = (String, Option<String>, String);

/// An object the operator skips, and why.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Rejected {
    /// The kind.
    pub kind: String,
    /// The namespace, for namespaced kinds.
    pub namespace: Option<String>,
    /// The name.
    pub name: String,
    /// The version seen.
    pub resource_version: Option<String>,
    /// What is wrong.
    pub message: String,
}

impl Rejected {
    /// The object's identity.
    pub fn id(&self) -> ObjectId {
        (self.kind.clone(), self.namespace.clone(), self.name.clone())
    }
}

/// What a watch tells the datastore.
#[derive(Clone, Debug)]
pub enum Message {
    /// A change for the engine (boxed: a Pod is large, and messages queue).
    Event(Box<Event>),
    /// An object is skipped.
    Rejected(Rejected),
    /// An object is fine (again) or gone: forget any problem with it.
    Accepted(ObjectId),
    /// The watch listed everything again: rebuild from the caches.
    Resync,
}

/// A kind the operator watches.
pub trait Watched: Resource<DynamicType = ()> + Clone + DeserializeOwned + Debug + Send + Sync + 'static {
    /// The engine's kind, for kinds the core reads.
    const ENGINE_KIND: Option<Kind>;

    /// The Rust validation of what the schema cannot check.
    fn check(&self) -> Result<(), Vec<String>> {
        Ok(())
    }

    /// The engine event for the object as it now is.
    fn upsert(self) -> Option<Event>;
}

fn messages_of(errors: Result<(), Vec<gingham_crds::validate::FieldError>>) -> Result<(), Vec<String>> {
    errors.map_err(|errors| errors.iter().map(ToString::to_string).collect())
}

macro_rules! watched {
    ($type:ty, $kind:ident, $object:ident) => {
        watched!($type, $kind, $object, |_o: &$type| Ok(()));
    };
    ($type:ty, $kind:ident, $object:ident, $check:expr) => {
        impl Watched for $type {
            const ENGINE_KIND: Option<Kind> = Some(Kind::$kind);

            fn check(&self) -> Result<(), Vec<String>> {
                let check: fn(&$type) -> Result<(), Vec<String>> = $check;
                check(self)
            }

            fn upsert(self) -> Option<Event> {
                Some(Event::Upsert(Object::$object(self)))
            }
        }
    };
}

// Pools reach the core even when invalid: it reports them in their status.
watched!(IPPool, Pool, Pool);
watched!(BGPConfiguration, BgpConfiguration, BgpConfiguration, |o| messages_of(
    Manifest::BGPConfiguration(o.clone()).validate()
));
watched!(BGPPeer, BgpPeer, BgpPeer, |o| messages_of(Manifest::BGPPeer(o.clone()).validate()));
watched!(FelixConfiguration, FelixConfiguration, FelixConfiguration, |o| messages_of(
    Manifest::FelixConfiguration(o.clone()).validate()
));
watched!(NetworkPolicy, NetworkPolicy, NetworkPolicy, |o| messages_of(Manifest::NetworkPolicy(o.clone()).validate()));
watched!(GlobalNetworkPolicy, GlobalNetworkPolicy, GlobalNetworkPolicy, |o| messages_of(
    Manifest::GlobalNetworkPolicy(o.clone()).validate()
));
watched!(Tier, Tier, Tier, |o| messages_of(Manifest::Tier(o.clone()).validate()));
watched!(NetworkSet, NetworkSet, NetworkSet, |o| messages_of(Manifest::NetworkSet(o.clone()).validate()));
watched!(GlobalNetworkSet, GlobalNetworkSet, GlobalNetworkSet, |o| messages_of(
    Manifest::GlobalNetworkSet(o.clone()).validate()
));
watched!(HostEndpoint, HostEndpoint, HostEndpoint, |o| messages_of(Manifest::HostEndpoint(o.clone()).validate()));
watched!(KubeNetworkPolicy, KubeNetworkPolicy, KubeNetworkPolicy);
watched!(ClusterNetworkPolicy, ClusterNetworkPolicy, ClusterNetworkPolicy);
watched!(AdminNetworkPolicy, AdminNetworkPolicy, AdminNetworkPolicy);
watched!(BaselineAdminNetworkPolicy, BaselineAdminNetworkPolicy, BaselineAdminNetworkPolicy);
watched!(Node, Node, Node);
watched!(Pod, Pod, Pod);
watched!(Namespace, Namespace, Namespace);
watched!(Secret, Secret, Secret);
watched!(ServiceAccount, ServiceAccount, ServiceAccount);
watched!(EndpointSlice, EndpointSlice, EndpointSlice);
watched!(IPAMBlock, Block, Block);

/// A NodeNetwork is, for the core, its agent's report.
impl Watched for NodeNetwork {
    const ENGINE_KIND: Option<Kind> = Some(Kind::NodeStatus);

    fn upsert(self) -> Option<Event> {
        let name = self.name_any();
        Some(match self.status {
            Some(status) => Event::Upsert(Object::NodeStatus(name, status)),
            None => Event::Delete(Kind::NodeStatus, (String::new(), name)),
        })
    }
}

/// The agent DaemonSet is only compared against, never computed from.
impl Watched for DaemonSet {
    const ENGINE_KIND: Option<Kind> = None;

    fn upsert(self) -> Option<Event> {
        None
    }
}

fn id<K: Watched>(metadata: &ObjectMeta) -> ObjectId {
    (K::kind(&()).to_string(), metadata.namespace.clone(), metadata.name.clone().unwrap_or_default())
}

fn delete<K: Watched>(metadata: &ObjectMeta) -> Option<Event> {
    let key = (metadata.namespace.clone().unwrap_or_default(), metadata.name.clone().unwrap_or_default());
    K::ENGINE_KIND.map(|kind| Event::Delete(kind, key))
}

/// The object a guarded watch holds, or why it is skipped.
pub fn judge<K: Watched>(guarded: &DeserializeGuard<K>) -> Result<K, Rejected> {
    let (metadata, message) = match &guarded.0 {
        Ok(object) => match object.check() {
            Ok(()) => return Ok(object.clone()),
            Err(errors) => (object.meta().clone(), errors.join("; ")),
        },
        Err(invalid) => (invalid.metadata.clone(), format!("cannot decode: {}", invalid.error)),
    };
    let (kind, namespace, name) = id::<K>(&metadata);
    Err(Rejected { kind, namespace, name, resource_version: metadata.resource_version, message })
}

/// What one watch event means: engine events and problem reports.
pub fn messages<K: Watched>(event: watcher::Event<DeserializeGuard<K>>) -> Vec<Message> {
    match event {
        watcher::Event::Apply(guarded) | watcher::Event::InitApply(guarded) => match judge(&guarded) {
            Ok(object) => {
                let accepted = Message::Accepted(id::<K>(object.meta()));
                [Some(accepted), object.upsert().map(|e| Message::Event(Box::new(e)))].into_iter().flatten().collect()
            }
            Err(rejected) => {
                let metadata = guarded.meta().clone();
                [Some(Message::Rejected(rejected)), delete::<K>(&metadata).map(|e| Message::Event(Box::new(e)))]
                    .into_iter()
                    .flatten()
                    .collect()
            }
        },
        watcher::Event::Delete(guarded) => {
            let metadata = guarded.meta().clone();
            [Some(Message::Accepted(id::<K>(&metadata))), delete::<K>(&metadata).map(|e| Message::Event(Box::new(e)))]
                .into_iter()
                .flatten()
                .collect()
        }
        watcher::Event::Init => Vec::new(),
        watcher::Event::InitDone => vec![Message::Resync],
    }
}
