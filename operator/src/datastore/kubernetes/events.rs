//! Events for objects the operator skips or finds problems with, each published once per problem.

use std::collections::BTreeSet;

use k8s_openapi::api::core::v1::ObjectReference;
use kube::Client;
use kube::runtime::events::{Event, EventType, Recorder, Reporter};

use super::watched::Rejected;
use crate::core::ObjectProblem;
use crate::datastore::objects::MANAGER;

/// The apiVersion and kind of an object the operator reads, from the kind a problem names: a bare
/// kind, or `Kind.group` for a kind that shares its name with a gingham one or comes from
/// another group (`NetworkPolicy.networking.k8s.io`, `ClusterNetworkPolicy.policy.networking.k8s.io`).
fn reference_of(kind: &str) -> (&'static str, &str) {
    let (kind, group) = kind.split_once('.').unwrap_or((kind, ""));
    let api_version = match (kind, group) {
        ("Node" | "Pod" | "Namespace" | "Secret", _) => "v1",
        ("DaemonSet", _) => "apps/v1",
        ("NetworkPolicy", "networking.k8s.io") => "networking.k8s.io/v1",
        ("ClusterNetworkPolicy", _) => "policy.networking.k8s.io/v1alpha2",
        ("AdminNetworkPolicy" | "BaselineAdminNetworkPolicy", _) => "policy.networking.k8s.io/v1alpha1",
        _ => gingham_crds::api::API_VERSION,
    };
    (api_version, kind)
}

/// Publishes Warning events, remembering what it published so that each problem is told once.
pub struct Events {
    recorder: Recorder,
    published: BTreeSet<(String, Option<String>, String, String, String)>,
}

impl Events {
    /// A publisher reporting as `gingham-operator`, instance `identity`.
    pub fn new(client: Client, identity: &str) -> Self {
        let reporter = Reporter { controller: MANAGER.into(), instance: Some(identity.to_string()) };
        Self { recorder: Recorder::new(client, reporter), published: BTreeSet::new() }
    }

    /// Publishes an event per new problem or rejected object; forgets problems that went away.
    pub async fn publish(&mut self, problems: &[ObjectProblem], rejected: &[Rejected]) {
        let mut current = BTreeSet::new();
        let items = problems
            .iter()
            .map(|p| (p.kind.clone(), p.namespace.clone(), p.name.clone(), p.reason.clone(), p.message.clone()))
            .chain(rejected.iter().map(|r| {
                let message = format!("skipped: {}", r.message);
                (r.kind.clone(), r.namespace.clone(), r.name.clone(), "InvalidObject".to_string(), message)
            }));
        for item in items {
            current.insert(item.clone());
            if self.published.contains(&item) {
                continue;
            }
            let (kind, namespace, name, reason, message) = &item;
            let (api_version, bare_kind) = reference_of(kind);
            let reference = ObjectReference {
                api_version: Some(api_version.into()),
                kind: Some(bare_kind.into()),
                namespace: namespace.clone(),
                name: Some(name.clone()),
                ..ObjectReference::default()
            };
            let event = Event {
                type_: EventType::Warning,
                reason: reason.clone(),
                note: Some(message.chars().take(1000).collect()),
                action: "Reconcile".into(),
                secondary: None,
            };
            if let Err(error) = self.recorder.publish(&event, &reference).await {
                tracing::warn!(kind, name, %error, "cannot publish an event");
            }
        }
        self.published = current;
    }
}

#[cfg(test)]
mod tests {
    use super::reference_of;

    #[test]
    fn problems_point_at_the_object_in_its_own_group() {
        let cases = [
            ("Pod", ("v1", "Pod")),
            ("IPPool", ("gingham.dev/v1", "IPPool")),
            ("NetworkPolicy", ("gingham.dev/v1", "NetworkPolicy")),
            ("NetworkPolicy.networking.k8s.io", ("networking.k8s.io/v1", "NetworkPolicy")),
            (
                "ClusterNetworkPolicy.policy.networking.k8s.io",
                ("policy.networking.k8s.io/v1alpha2", "ClusterNetworkPolicy"),
            ),
            ("BaselineAdminNetworkPolicy", ("policy.networking.k8s.io/v1alpha1", "BaselineAdminNetworkPolicy")),
        ];
        for (kind, expected) in cases {
            assert_eq!(reference_of(kind), expected, "{kind}");
        }
    }
}
