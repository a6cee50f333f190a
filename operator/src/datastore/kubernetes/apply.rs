//! Executing planned writes against the API server: server-side apply with the field manager
//! `gingham-operator` (forced), creates with a precondition, status through the status
//! subresource, deletes that treat 404 as done, and retries with exponential backoff on conflicts,
//! throttling and server errors (a failed precondition is not retried: only a fresh read helps).

use std::time::Duration;

use kube::Client;
use kube::api::{Api, DeleteParams, DynamicObject, Patch, PatchParams, PostParams};

use super::KubeError;
use super::plan::{Target, Write};
use crate::datastore::objects::MANAGER;

/// How writes are retried.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Backoff {
    /// The first delay.
    pub initial: Duration,
    /// The longest delay.
    pub max: Duration,
    /// How many attempts in all before giving up.
    pub attempts: u32,
}

impl Default for Backoff {
    fn default() -> Self {
        Self { initial: Duration::from_millis(200), max: Duration::from_secs(10), attempts: 6 }
    }
}

/// Makes writes through a kube client.
#[derive(Clone)]
pub struct Writer {
    client: Client,
    backoff: Backoff,
}

impl Writer {
    /// A writer retrying as `backoff` says.
    pub fn new(client: Client, backoff: Backoff) -> Self {
        Self { client, backoff }
    }

    fn api(&self, target: &Target) -> Api<DynamicObject> {
        match &target.namespace {
            Some(namespace) => Api::namespaced_with(self.client.clone(), namespace, &target.resource),
            None => Api::all_with(self.client.clone(), &target.resource),
        }
    }

    /// Makes one write, retrying transient failures.
    pub async fn execute(&self, write: &Write) -> Result<(), KubeError> {
        let mut delay = self.backoff.initial;
        let mut attempt = 1;
        loop {
            match self.attempt(write).await {
                Ok(()) => return Ok(()),
                Err(e) if status_code(&e) == Some(409) && !write.retries_conflicts() => {
                    let target = write.target();
                    return Err(KubeError::Conflict { kind: target.kind, name: target.name.clone() });
                }
                Err(e) if is_transient(&e) && attempt < self.backoff.attempts => {
                    let target = write.target();
                    tracing::info!(kind = target.kind, name = %target.name, attempt, error = %e, ?delay, "retrying a write");
                    tokio::time::sleep(delay).await;
                    delay = (delay * 2).min(self.backoff.max);
                    attempt += 1;
                }
                Err(source) => {
                    let target = write.target();
                    return Err(KubeError::Write {
                        kind: target.kind,
                        name: target.name.clone(),
                        attempts: attempt,
                        source: Box::new(source),
                    });
                }
            }
        }
    }

    async fn attempt(&self, write: &Write) -> Result<(), kube::Error> {
        let params = PatchParams::apply(MANAGER).force();
        match write {
            Write::Apply { target, body } => {
                self.api(target).patch(&target.name, &params, &Patch::Apply(body)).await.map(drop)
            }
            Write::Create { target, body } => {
                let object: DynamicObject = serde_json::from_value(body.clone()).map_err(kube::Error::SerdeError)?;
                self.api(target)
                    .create(&PostParams { field_manager: Some(MANAGER.into()), ..PostParams::default() }, &object)
                    .await
                    .map(drop)
            }
            Write::ApplyStatus { target, body } => {
                match self.api(target).patch_status(&target.name, &params, &Patch::Apply(body)).await {
                    // The pool was deleted since it was observed: its status went with it.
                    Err(e) if status_code(&e) == Some(404) => Ok(()),
                    other => other.map(drop),
                }
            }
            Write::Delete { target } => match self.api(target).delete(&target.name, &DeleteParams::default()).await {
                Err(e) if status_code(&e) == Some(404) => Ok(()),
                other => other.map(drop),
            },
        }
    }
}

fn status_code(error: &kube::Error) -> Option<u16> {
    match error {
        kube::Error::Api(status) => Some(status.code),
        _ => None,
    }
}

/// Conflicts, throttling, server errors and transport failures are worth another try.
fn is_transient(error: &kube::Error) -> bool {
    match status_code(error) {
        Some(code) => code == 409 || code == 429 || code >= 500,
        None => matches!(error, kube::Error::HyperError(_) | kube::Error::Service(_)),
    }
}
