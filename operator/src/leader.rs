//! Leader election on a Lease in the operator's namespace (kube-lease-manager): only the leader
//! computes and writes, so two replicas never assign the same block.

use std::future::Future;

use kube::Client;
use kube_lease_manager::{LeaseManager, LeaseManagerBuilder, LeaseManagerError};
use tokio::sync::watch;
use tokio::task::JoinHandle;

/// The Lease's name.
pub const LEASE_NAME: &str = "gingham-operator-leader";
/// How long a lease lasts without renewal, in seconds.
const LEASE_SECONDS: u64 = 15;
/// How long before expiry the holder renews, in seconds.
const GRACE_SECONDS: u64 = 5;

/// Leader election failed.
#[derive(Debug, thiserror::Error)]
pub enum LeaderError {
    /// The Lease could not be read or created.
    #[error("cannot use the Lease {LEASE_NAME}: {0} (check the operator's RBAC for leases in its namespace)")]
    Lease(#[source] LeaseManagerError),
    /// The election task stopped before this replica led.
    #[error("leader election stopped unexpectedly")]
    Stopped,
    /// Another replica took over; this one stops so that it never writes as a follower.
    #[error("lost the leadership: another replica leads now")]
    Lost,
}

impl LeaderError {
    /// A stable short label for metrics.
    pub fn label(&self) -> &'static str {
        match self {
            Self::Lease(_) => "lease",
            Self::Stopped => "election_stopped",
            Self::Lost => "leadership_lost",
        }
    }
}

/// This replica's identity when none is given: the host name (the pod name in a cluster).
pub fn default_identity() -> String {
    std::env::var("HOSTNAME").ok().filter(|h| !h.is_empty()).unwrap_or_else(|| "gingham-operator".into())
}

/// Held leadership: renewed in the background until released.
pub struct Leadership {
    leading: watch::Receiver<bool>,
    task: JoinHandle<Result<LeaseManager, LeaseManagerError>>,
}

impl Leadership {
    /// Waits until this replica leads (`Some`) or `shutdown` completes first (`None`).
    pub async fn acquire(
        client: Client,
        namespace: &str,
        identity: &str,
        shutdown: impl Future<Output = ()>,
    ) -> Result<Option<Self>, LeaderError> {
        let manager = LeaseManagerBuilder::new(client, LEASE_NAME)
            .with_namespace(namespace)
            .with_identity(identity)
            .with_duration(LEASE_SECONDS)
            .with_grace(GRACE_SECONDS)
            .with_field_manager(crate::datastore::objects::MANAGER)
            .build()
            .await
            .map_err(LeaderError::Lease)?;
        let (mut leading, task) = manager.watch().await;
        tracing::info!(identity, lease = LEASE_NAME, "waiting for the leadership");
        let led = tokio::select! {
            () = shutdown => None,
            result = leading.wait_for(|leading| *leading) => Some(result.is_ok()),
        };
        match led {
            None => {
                drop(leading);
                let _ = task.await;
                Ok(None)
            }
            Some(false) => Err(LeaderError::Stopped),
            Some(true) => {
                tracing::info!(identity, "leading");
                Ok(Some(Self { leading, task }))
            }
        }
    }

    /// Completes when the leadership is lost.
    pub async fn lost(&mut self) {
        let _ = self.leading.wait_for(|leading| !*leading).await;
    }

    /// Releases the Lease so that another replica takes over at once.
    pub async fn release(self) {
        drop(self.leading);
        match self.task.await {
            Ok(Ok(_)) => tracing::info!("released the leadership"),
            Ok(Err(error)) => tracing::warn!(%error, "cannot release the Lease; it expires by itself"),
            Err(error) => tracing::warn!(%error, "the election task failed"),
        }
    }
}
