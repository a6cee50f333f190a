//! The main loop's IPAM calls: on the blocking pool, one at a time, each waited for at most
//! [`IPAM_WAIT`]. A held lock or a hung disk then costs the loop a second, not its life: it goes
//! on programming routes and policy with the endpoints it last knew.

use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use crate::ipam::{IpamError, IpamStore};

/// How long the loop waits for one IPAM call. A call that takes longer goes on in the background
/// (until the lock's own timeout, [`crate::ipam::LOCK_TIMEOUT`]) and its error is logged then.
pub const IPAM_WAIT: Duration = Duration::from_secs(1);

/// An IPAM call of the loop failed or did not answer in time.
#[derive(Debug, thiserror::Error)]
pub(crate) enum LoopIpamError {
    /// The call itself failed.
    #[error(transparent)]
    Ipam(#[from] IpamError),
    /// The call did not finish within [`IPAM_WAIT`].
    #[error(
        "IPAM {call} did not finish within {waited:?}; routes and policy stay programmed for the endpoints last read, and the call's own error follows in the log"
    )]
    TimedOut {
        /// The call.
        call: &'static str,
        /// How long the loop waited.
        waited: Duration,
    },
    /// An earlier call has not finished yet.
    #[error(
        "IPAM {call} skipped: the earlier {earlier} has not finished (it waits for the IPAM lock); routes and policy stay programmed for the endpoints last read"
    )]
    Busy {
        /// The call.
        call: &'static str,
        /// The call still running.
        earlier: &'static str,
    },
    /// The call's task panicked or was cancelled.
    #[error("IPAM {call} failed: {reason}")]
    Task {
        /// The call.
        call: &'static str,
        /// The task's failure.
        reason: String,
    },
}

impl LoopIpamError {
    /// A stable short label for metrics.
    pub(crate) fn label(&self) -> &'static str {
        match self {
            Self::Ipam(error) => error.label(),
            Self::TimedOut { .. } => "timed_out",
            Self::Busy { .. } => "busy",
            Self::Task { .. } => "task",
        }
    }
}

/// The IPAM store as the loop uses it.
#[derive(Clone, Debug)]
pub(crate) struct LoopIpam {
    store: IpamStore,
    /// The call running on the blocking pool, if any.
    running: Arc<Mutex<Option<&'static str>>>,
}

/// Clears [`LoopIpam::running`] when the call ends, panic or not.
struct Running(Arc<Mutex<Option<&'static str>>>);

impl Drop for Running {
    fn drop(&mut self) {
        *self.0.lock().unwrap_or_else(PoisonError::into_inner) = None;
    }
}

impl LoopIpam {
    /// The loop's handle on `store`.
    pub(crate) fn new(store: IpamStore) -> Self {
        Self { store, running: Arc::new(Mutex::new(None)) }
    }

    /// Runs `work` on the blocking pool and waits for it at most [`IPAM_WAIT`]; fails at once while
    /// an earlier call that timed out is still running.
    pub(crate) async fn call<T: Send + 'static>(
        &self,
        call: &'static str,
        work: impl FnOnce(&IpamStore) -> Result<T, IpamError> + Send + 'static,
    ) -> Result<T, LoopIpamError> {
        let guard = {
            let mut running = self.running.lock().unwrap_or_else(PoisonError::into_inner);
            if let Some(earlier) = *running {
                return Err(LoopIpamError::Busy { call, earlier });
            }
            *running = Some(call);
            Running(Arc::clone(&self.running))
        };
        let store = self.store.clone();
        let mut task = tokio::task::spawn_blocking(move || {
            let _guard = guard;
            work(&store)
        });
        match tokio::time::timeout(IPAM_WAIT, &mut task).await {
            Ok(Ok(result)) => result.map_err(LoopIpamError::from),
            Ok(Err(join)) => Err(LoopIpamError::Task { call, reason: join.to_string() }),
            Err(_) => {
                tokio::spawn(async move {
                    match task.await {
                        Ok(Err(error)) => tracing::warn!(%error, call, "a late IPAM call of the main loop failed"),
                        Ok(Ok(_)) => tracing::info!(call, "a late IPAM call of the main loop finished"),
                        Err(error) => tracing::warn!(%error, call, "a late IPAM call of the main loop failed"),
                    }
                });
                Err(LoopIpamError::TimedOut { call, waited: IPAM_WAIT })
            }
        }
    }
}
