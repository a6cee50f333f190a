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
    /// The call did not finish within [`IPAM_WAIT`], or an earlier one that did not is still
    /// running. The message does not name the call, so that it stays the same while IPAM is stuck.
    #[error(
        "IPAM does not answer the main loop within {waited:?} ({cause}); routes and policy stay programmed for the endpoints last read"
    )]
    NoAnswer {
        /// How long the loop waits for a call.
        waited: Duration,
        /// The error of the last call that finished late, or that none has finished yet.
        cause: String,
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
            Self::NoAnswer { .. } => "no_answer",
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
    /// The error of the last call that finished after the loop stopped waiting for it.
    late_error: Arc<Mutex<Option<String>>>,
}

/// Clears [`LoopIpam::running`] when the call ends, panic or not.
struct Running(Arc<Mutex<Option<&'static str>>>);

impl Drop for Running {
    fn drop(&mut self) {
        *lock(&self.0) = None;
    }
}

impl LoopIpam {
    /// The loop's handle on `store`.
    pub(crate) fn new(store: IpamStore) -> Self {
        Self { store, running: Arc::default(), late_error: Arc::default() }
    }

    /// Runs `work` on the blocking pool and waits for it at most [`IPAM_WAIT`]; fails at once while
    /// an earlier call that timed out is still running.
    pub(crate) async fn call<T: Send + 'static>(
        &self,
        call: &'static str,
        work: impl FnOnce(&IpamStore) -> Result<T, IpamError> + Send + 'static,
    ) -> Result<T, LoopIpamError> {
        let guard = {
            let mut running = lock(&self.running);
            if let Some(earlier) = *running {
                tracing::debug!(call, earlier, "IPAM call skipped: an earlier one still runs");
                return Err(self.no_answer());
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
            Ok(Ok(result)) => {
                *lock(&self.late_error) = None;
                result.map_err(LoopIpamError::from)
            }
            Ok(Err(join)) => Err(LoopIpamError::Task { call, reason: join.to_string() }),
            Err(_) => {
                let late_error = Arc::clone(&self.late_error);
                tokio::spawn(async move {
                    let outcome = match task.await {
                        Ok(Ok(_)) => None,
                        Ok(Err(error)) => Some(error.to_string()),
                        Err(error) => Some(error.to_string()),
                    };
                    match &outcome {
                        Some(error) => tracing::warn!(%error, call, "a late IPAM call of the main loop failed"),
                        None => tracing::info!(call, "a late IPAM call of the main loop finished"),
                    }
                    *lock(&late_error) = outcome;
                });
                Err(self.no_answer())
            }
        }
    }

    fn no_answer(&self) -> LoopIpamError {
        let cause = lock(&self.late_error).clone().unwrap_or_else(|| "a call is still running".to_string());
        LoopIpamError::NoAnswer { waited: IPAM_WAIT, cause }
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}
