//! Events for objects the operator skips or finds problems with, each published once per problem.

use std::collections::BTreeSet;

use k8s_openapi::api::core::v1::ObjectReference;
use kube::Client;
use kube::runtime::events::{Event, EventType, Recorder, Reporter};

use super::watched::Rejected;
use crate::core::ObjectProblem;
use crate::datastore::objects::MANAGER;

/// The apiVersion of a kind the operator reads.
fn api_version(kind: &str) -> &'static str {
    match kind {
        "Node" | "Pod" | "Namespace" | "Secret" => "v1",
        "DaemonSet" => "apps/v1",
        _ => gingham_crds::api::API_VERSION,
    }
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
            let reference = ObjectReference {
                api_version: Some(api_version(kind).into()),
                kind: Some(kind.clone()),
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
