//! What the agent does for each request: IPAM through the store, readiness through [`Shared`].

use std::sync::Arc;
use std::time::Duration;

use super::{Request, Response};
use crate::cni::codes::{IO, TRY_AGAIN, UNKNOWN_CONTAINER};
use crate::ipam::{AllocationRequest, IpamError, IpamStore, choose};
use crate::shared::Shared;

/// What the API server needs.
#[derive(Debug)]
pub struct ApiContext {
    /// The allocation table.
    pub ipam: IpamStore,
    /// State shared with the main loop.
    pub shared: Arc<Shared>,
}

/// Answers one request.
pub async fn handle(context: &ApiContext, request: Request) -> Response {
    match request {
        Request::Add { container_id, netns, ifname, namespace, pod, uid, assign } => {
            let Some(blocks) = context.shared.blocks() else {
                return Response::error(
                    TRY_AGAIN,
                    "the gingham agent has no valid NodeNetwork for this node yet; wait for the operator to assign blocks and check `kubectl get nodenetworks`",
                    "",
                );
            };
            tracing::info!(%container_id, %netns, %ifname, %namespace, %pod, uid = uid.as_deref().unwrap_or(""), "CNI ADD: allocating");
            // The pools the pod's annotations ask for, from its span entry (the operator resolves
            // them); without an entry yet, any pool.
            let pools = context.shared.requested_pools(&format!("{namespace}/{pod}"), uid.as_deref());
            let families = match choose(&blocks, assign, &pools) {
                Ok(families) => families,
                Err(error) => return ipam_error(error),
            };
            let request = AllocationRequest { container_id, ifname, namespace, pod, uid, families };
            let ipam = context.ipam.clone();
            match blocking(move || ipam.allocate(&blocks, &request)).await {
                Ok(allocation) => {
                    // The interface is dispatched to the policy of another Pod of the same name (a
                    // predecessor): sync now, so that it is dropped before the plugin routes the pod.
                    if context.shared.policy_for_other_pod(&allocation.endpoint()) {
                        context.shared.endpoints_changed();
                    }
                    Response::Allocated { allocation }
                }
                Err(error) => ipam_error(error),
            }
        }
        Request::Ready { container_id, ifname, timeout_seconds } => {
            let ipam = context.ipam.clone();
            let allocation = match blocking(move || ipam.mark_ready(&container_id, &ifname)).await {
                Ok(allocation) => allocation,
                Err(error) => return ipam_error(error),
            };
            let endpoint = allocation.endpoint();
            let key = endpoint.key();
            let seq = context.shared.endpoints_changed();
            // The plugin made the veth. When the pod's policy is already in force (the operator
            // compiled it for this Pod before ADD; it is dispatched by interface name), only the
            // host's route to the pod is left: make sure it is there, then answer.
            if context.shared.policy_in_force(&endpoint) {
                let (interface, addresses) = (allocation.interface.clone(), allocation.addresses());
                let routed =
                    tokio::task::spawn_blocking(move || crate::cni::ensure_host_routes(&interface, &addresses)).await;
                match routed {
                    Ok(Ok(added)) => {
                        if added {
                            tracing::info!(endpoint = %key, interface = %allocation.interface, "CNI ADD: added the host route the plugin did not add");
                        }
                        tracing::info!(endpoint = %key, addresses = ?allocation.addresses(), "CNI ADD: policy already in force");
                        return Response::Allocated { allocation };
                    }
                    Ok(Err(error)) => {
                        tracing::warn!(endpoint = %key, %error, "CNI ADD: cannot make sure of the host route; waiting for a sync");
                    }
                    Err(error) => {
                        tracing::warn!(endpoint = %key, %error, "CNI ADD: the route check did not finish; waiting for a sync");
                    }
                }
            }
            let wait = Duration::from_secs(u64::from(timeout_seconds.max(1)));
            match tokio::time::timeout(wait, context.shared.wait_programmed(seq, &key)).await {
                Ok(()) => {
                    tracing::info!(endpoint = %key, addresses = ?allocation.addresses(), "CNI ADD: endpoint programmed");
                    Response::Allocated { allocation }
                }
                Err(_) => Response::error(
                    TRY_AGAIN,
                    format!(
                        "timed out after {timeout_seconds}s waiting for the agent to program routes and policy for {key}; check the agent's log and the NodeNetwork's status.lastError"
                    ),
                    "",
                ),
            }
        }
        Request::Del { container_id, ifname } => {
            let ipam = context.ipam.clone();
            released(context, blocking(move || ipam.release(&container_id, Some(&ifname))).await)
        }
        Request::Gc { valid } => {
            let ipam = context.ipam.clone();
            released(context, blocking(move || ipam.gc(&valid)).await)
        }
        Request::Check { container_id, ifname } => {
            let ipam = context.ipam.clone();
            let list = blocking(move || ipam.list()).await;
            match list.map(|all| all.into_iter().find(|a| a.container_id == container_id && a.ifname == ifname)) {
                Ok(Some(allocation)) if allocation.ready => Response::Allocated { allocation },
                Ok(_) => Response::error(
                    UNKNOWN_CONTAINER,
                    "the agent has no programmed address for this container; delete and re-create the pod",
                    "",
                ),
                Err(error) => ipam_error(error),
            }
        }
        Request::Status => match context.shared.readiness() {
            Ok(()) => Response::Status { ready: true, message: "ready".to_string() },
            Err(why) => Response::Status { ready: false, message: why.to_string() },
        },
    }
}

fn released(context: &ApiContext, result: Result<Vec<crate::ipam::Allocation>, IpamError>) -> Response {
    match result {
        Ok(allocations) => {
            for allocation in &allocations {
                tracing::info!(container = %allocation.container_id, addresses = ?allocation.addresses(), "released");
            }
            if !allocations.is_empty() {
                context.shared.endpoints_changed();
            }
            Response::Released { allocations }
        }
        Err(error) => ipam_error(error),
    }
}

fn ipam_error(error: IpamError) -> Response {
    tracing::warn!(%error, "CNI request failed");
    let code = match error {
        // The operator may yet assign a block (of the family, or in the pools).
        IpamError::Exhausted { .. }
        | IpamError::NoBlocks
        | IpamError::NoBlockOfFamily { .. }
        | IpamError::NoBlockInPools { .. }
        | IpamError::UnresolvedPool { .. } => TRY_AGAIN,
        IpamError::NotFound { .. } => UNKNOWN_CONTAINER,
        _ => IO,
    };
    Response::error(code, error.to_string(), "")
}

async fn blocking<T: Send + 'static>(
    work: impl FnOnce() -> Result<T, IpamError> + Send + 'static,
) -> Result<T, IpamError> {
    tokio::task::spawn_blocking(work).await.unwrap_or_else(|e| {
        Err(IpamError::Io { path: "<ipam task>".into(), source: std::io::Error::other(e.to_string()) })
    })
}
