//! The six CNI commands. ADD: allocate through the agent while the veth pair is made, address it,
//! wait for programming, print the result; any failure undoes what it did. Everything is keyed by
//! the CNI container id: DEL and GC remove only what the container owns (see [`plumbing`]).
//! ADD passes the Pod's UID (`K8S_POD_UID`, which containerd and CRI-O set) to the agent, which
//! applies a compiled policy only to the Pod it was compiled for.

use std::path::Path;
use std::time::Duration;

use gingham_crds::naming::endpoint_interface_name;
use serde_json::{Value, json};

use super::plumbing::{self, HostSide, Veth};
use super::routes::gateway_for;
use super::{CniError, CniResult, CniVersion, Command, Interface, Invocation, NetConf, codes};
use crate::api::{AgentClient, ClientError, Request, Response};
use crate::ipam::Allocation;

/// How long a quick request (not ADD's wait) may take.
const QUICK: Duration = Duration::from_secs(10);

/// Runs one invocation; `Ok(Some(json))` is printed on stdout, `Ok(None)` prints nothing.
pub fn run(invocation: &Invocation, stdin: &str) -> Result<Option<Value>, CniError> {
    if invocation.command == Command::Version {
        let version = requested_version(stdin);
        return Ok(Some(json!({ "cniVersion": version, "supportedVersions": CniVersion::supported() })));
    }
    let conf = NetConf::parse(stdin)?;
    conf.cni_version.allows(invocation.command)?;
    let client = AgentClient::new(&conf.socket_path, QUICK);
    match invocation.command {
        Command::Add => add(invocation, &conf).map(Some),
        Command::Del => del(invocation, &client).map(|()| None),
        Command::Check => check(invocation, &conf, &client).map(|()| None),
        Command::Gc => gc(&conf, &client).map(|()| None),
        Command::Status => status(&client).map(|()| None),
        Command::Version => Ok(None),
    }
}

/// The `cniVersion` the runtime asked for (for VERSION and error output), else the newest supported.
pub fn requested_version(stdin: &str) -> String {
    serde_json::from_str::<Value>(stdin)
        .ok()
        .and_then(|v| v["cniVersion"].as_str().map(str::to_string))
        .unwrap_or_else(|| CniVersion::LATEST.to_string())
}

fn add(invocation: &Invocation, conf: &NetConf) -> Result<Value, CniError> {
    let (namespace, pod) = invocation.pod()?;
    if !Path::new(&invocation.netns).exists() {
        return Err(CniError::new(
            codes::INVALID_ENV,
            format!(
                "CNI_NETNS={} does not exist; the runtime must create the pod's network namespace before ADD",
                invocation.netns
            ),
        ));
    }
    let host = endpoint_interface_name(&namespace, &pod);
    let veth = veth(invocation, conf, &host);
    let client = AgentClient::new(&conf.socket_path, QUICK);
    let add = Request::Add {
        container_id: invocation.container_id.clone(),
        netns: invocation.netns.clone(),
        ifname: invocation.ifname.clone(),
        namespace,
        pod,
        uid: invocation.args.get("K8S_POD_UID").filter(|uid| !uid.is_empty()).cloned(),
        assign: conf.assign,
    };
    let (pair, allocation) = plumbing::create_pair_while(&veth, || allocated(client.call(&add)));
    // Releasing is idempotent, and a request that timed out may still have allocated: always release.
    let undo = |error: CniError| {
        let host = HostSide { name: veth.host, owner: veth.owner, unmarked: false };
        if let Err(cleanup) = plumbing::remove(Some(veth.netns), veth.ifname, Some(host)) {
            tracing::warn!(%cleanup, "undoing a failed ADD: removing the veth failed");
        }
        let release = Request::Del { container_id: invocation.container_id.clone(), ifname: invocation.ifname.clone() };
        if let Err(cleanup) = released(&client, &release) {
            tracing::warn!(%cleanup, "undoing a failed ADD: releasing the address failed; the agent's GC will");
        }
        error
    };
    if let (Err(_), Err(error)) = (&allocation, &pair) {
        tracing::warn!(%error, "creating the veth pair failed too");
    }
    let allocation = allocation.map_err(undo)?;
    let addresses = allocation.addresses();
    let pod_mac = pair.and_then(|()| plumbing::address(&veth, &addresses)).map_err(|e| {
        undo(CniError::new(codes::IO, format!("creating the pod's veth failed: {e}")).details(e.to_string()))
    })?;
    let waiting = AgentClient::new(&conf.socket_path, Duration::from_secs(u64::from(conf.timeout_seconds) + 5));
    allocated(waiting.call(&Request::Ready {
        container_id: invocation.container_id.clone(),
        ifname: invocation.ifname.clone(),
        timeout_seconds: conf.timeout_seconds,
    }))
    .map_err(undo)?;
    let pod = Interface { name: veth.ifname.to_string(), mac: Some(pod_mac), sandbox: Some(veth.netns.to_string()) };
    Ok(CniResult::attached(veth.host, pod, &addresses, gateway_for).to_json(conf.cni_version))
}

/// The pod's veth with host-side name `host`.
fn veth<'a>(invocation: &'a Invocation, conf: &NetConf, host: &'a str) -> Veth<'a> {
    Veth { netns: &invocation.netns, ifname: &invocation.ifname, host, mtu: conf.mtu, owner: &invocation.container_id }
}

/// Removes this container's attachment and releases its address. Only what is this container's:
/// the interface in its own network namespace, and the host veth when it carries this container's
/// mark (or no mark, when the agent's allocation of this container names it). A stale DEL of an
/// older sandbox of the same pod therefore leaves the newer sandbox's veth alone.
fn del(invocation: &Invocation, client: &AgentClient) -> Result<(), CniError> {
    let request = Request::Del { container_id: invocation.container_id.clone(), ifname: invocation.ifname.clone() };
    // Find the host side before releasing: the agent knows it; without the agent, CNI_ARGS does.
    let known = client
        .call(&Request::Check { container_id: invocation.container_id.clone(), ifname: invocation.ifname.clone() });
    let (host, unmarked) = match known {
        Ok(Response::Allocated { allocation }) => (Some(allocation.interface), true),
        _ => (invocation.pod().ok().map(|(ns, pod)| endpoint_interface_name(&ns, &pod)), false),
    };
    let host = host.as_deref().map(|name| HostSide { name, owner: &invocation.container_id, unmarked });
    plumbing::remove(Some(&invocation.netns), &invocation.ifname, host)
        .map_err(|e| CniError::new(codes::IO, format!("removing the pod's veth failed: {e}")))?;
    match released(client, &request) {
        Ok(_) => Ok(()),
        Err(error) if error.code == codes::TRY_AGAIN => {
            tracing::warn!(msg = %error.msg, "DEL: the agent is unreachable; the veth is gone and its next GC releases the address");
            Ok(())
        }
        Err(error) => Err(error),
    }
}

fn check(invocation: &Invocation, conf: &NetConf, client: &AgentClient) -> Result<(), CniError> {
    let prev = conf.prev_result.as_ref().ok_or_else(|| {
        CniError::new(
            codes::INVALID_CONFIG,
            "network configuration field prevResult is missing; CHECK needs the ADD result",
        )
    })?;
    let allocation =
        allocated(client.call(&Request::Check {
            container_id: invocation.container_id.clone(),
            ifname: invocation.ifname.clone(),
        }))?;
    let addresses = allocation.addresses();
    let failed = |msg: String| CniError::new(codes::NOT_AVAILABLE, msg);
    for address in addresses.iter().map(|a| ipnet::IpNet::from(*a)) {
        if !prev.ips.iter().any(|ip| ip.address == address) {
            return Err(failed(format!(
                "prevResult does not list the agent's address {address}; delete and re-create the pod"
            )));
        }
    }
    let veth = veth(invocation, conf, &allocation.interface);
    plumbing::check(&veth, &addresses).map_err(|e| failed(format!("{e}; delete and re-create the pod")))
}

/// Releases what is not in `cni.dev/valid-attachments` and removes the host veths of the released,
/// unless another container owns the interface by now. Without the field, which the spec
/// requires, nothing is released: an absent list is not an empty one.
fn gc(conf: &NetConf, client: &AgentClient) -> Result<(), CniError> {
    let valid = conf.valid_attachments.clone().ok_or_else(|| {
        CniError::new(
            codes::INVALID_CONFIG,
            "network configuration field cni.dev/valid-attachments is missing; GC needs the runtime's list of attachments in use (an empty list releases everything), so nothing was released",
        )
    })?;
    for allocation in released(client, &Request::Gc { valid })? {
        tracing::info!(container = %allocation.container_id, addresses = ?allocation.addresses(), "GC released");
        let host = HostSide { name: &allocation.interface, owner: &allocation.container_id, unmarked: true };
        if let Err(error) = plumbing::remove(None, &allocation.ifname, Some(host)) {
            tracing::warn!(%error, interface = %allocation.interface, "GC: removing a leaked veth failed");
        }
    }
    Ok(())
}

fn status(client: &AgentClient) -> Result<(), CniError> {
    match client.call(&Request::Status) {
        Ok(Response::Status { ready: true, .. }) => Ok(()),
        Ok(Response::Status { message, .. }) => {
            Err(CniError::new(codes::NOT_AVAILABLE, format!("the gingham agent is not ready: {message}")))
        }
        Ok(other) => Err(unexpected(&other)),
        Err(error) => Err(CniError::new(codes::NOT_AVAILABLE, error.to_string())),
    }
}

fn allocated(answer: Result<Response, ClientError>) -> Result<Allocation, CniError> {
    match answer.map_err(client_error)? {
        Response::Allocated { allocation } => Ok(allocation),
        other => Err(agent_error(other)),
    }
}

fn released(client: &AgentClient, request: &Request) -> Result<Vec<Allocation>, CniError> {
    match client.call(request).map_err(client_error)? {
        Response::Released { allocations } => Ok(allocations),
        other => Err(agent_error(other)),
    }
}

fn agent_error(response: Response) -> CniError {
    match response {
        Response::Error { code, msg, details } => CniError { code, msg, details },
        other => unexpected(&other),
    }
}

fn unexpected(response: &Response) -> CniError {
    CniError::new(
        codes::DECODE,
        "the agent answered with an unexpected response; are the plugin and agent the same version?",
    )
    .details(format!("{response:?}"))
}

fn client_error(error: ClientError) -> CniError {
    let code = match error {
        ClientError::Unreachable { .. } => codes::TRY_AGAIN,
        ClientError::Io { .. } => codes::IO,
        ClientError::Protocol { .. } => codes::DECODE,
    };
    CniError::new(code, error.to_string())
}
