//! The pod's veth, made in-process over rtnetlink (no `ip` or `nsenter` processes), addressed and
//! routed the Calico way: the plugin also adds the host's route to the pod, as Calico's plugin does,
//! so that ADD need not wait for an agent sync when the pod's policy is already in force.
//!
//! Both families: an IPv4 address is a /32 with routes to and via [`GATEWAY`] (answered by proxy
//! ARP on the host side); an IPv6 address is a /128 added without duplicate address detection
//! (`IFA_F_NODAD`), with routes to and via [`GATEWAY6`], the EUI-64 link-local address of the host
//! side's MAC [`HOST_MAC`]. The host side holds that address itself (the kernel makes it when the
//! link comes up) and answers neighbour solicitations for it; it is created down and brought up
//! only after `accept_dad=0`, so the address is usable at once instead of after DAD's second.
//!
//! Each call runs on a worker thread of its own with a single-threaded runtime, so callers inside
//! a runtime are not nested and no other thread of the process ever changes namespace. The worker
//! opens one netlink socket in the plugin's namespace and one in the pod's (it enters the pod's
//! namespace only while that socket is created: a socket stays in the namespace it was born in).
//! The pair is created from the plugin's side with its pod side born inside the pod's namespace,
//! like `ip link add HOST type veth peer name eth0 netns POD`.
//!
//! Ownership: the host-side name comes from the pod (the operator dispatches policy by it), so a
//! newer sandbox of the same pod reuses it. The host side therefore carries the CNI container id
//! that made it, as its alias (`IFLA_IFALIAS`, `ip link show` prints it), and a removal deletes a
//! host veth only when that mark names the removing container (or, for veths made before the mark
//! existed, when the agent's allocation of that container names the interface). Everything in the
//! container's own network namespace is the container's, and is always removed.

use std::fs::File;
use std::future::Future;
use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::os::fd::AsRawFd;

use futures::TryStreamExt;
use netlink_packet_route::address::{AddressAttribute, AddressFlags, AddressHeaderFlags, AddressMessage};
use netlink_packet_route::link::{InfoData, InfoKind, InfoVeth, LinkAttribute, LinkMessage};
use netlink_packet_route::route::{RouteAttribute, RouteFlags, RouteMessage};
use nix::errno::Errno;
use nix::sched::{CloneFlags, setns};
use rtnetlink::{Handle, LinkMessageBuilder, LinkUnspec, LinkVeth, RouteMessageBuilder};

use super::routes::{gateway_for, has_address, has_pod_routes, host_length, host_route, pod_routes};
use crate::dataplane::model::Mac;

/// The MAC of every host-side veth (the pod's gateway answers with it through proxy ARP).
pub const HOST_MAC: &str = "ee:ee:ee:ee:ee:ee";
/// The pod's link-local gateway.
pub const GATEWAY: &str = "169.254.1.1";

/// The pod's IPv6 gateway: the EUI-64 link-local address of [`HOST_MAC`], as Calico's.
pub const GATEWAY6: &str = "fe80::ecee:eeff:feee:eeee";

/// [`HOST_MAC`] as bytes.
const HOST_MAC_BYTES: [u8; 6] = [0xee; 6];
/// [`GATEWAY`] as an address.
pub(super) const GATEWAY_ADDRESS: Ipv4Addr = Ipv4Addr::new(169, 254, 1, 1);
/// [`GATEWAY6`] as an address.
pub(super) const GATEWAY6_ADDRESS: Ipv6Addr = Ipv6Addr::new(0xfe80, 0, 0, 0, 0xecee, 0xeeff, 0xfeee, 0xeeee);
/// How errors name the namespace the plugin runs in.
const OWN_NETNS: &str = "the plugin's network namespace";
/// The worker thread's own network namespace, to return to after opening the pod's socket.
const THREAD_NETNS: &str = "/proc/thread-self/ns/net";

/// A plumbing step failed.
#[derive(Debug, thiserror::Error)]
pub enum PlumbingError {
    /// The worker thread or its runtime could not start.
    #[error("cannot start the plumbing thread: {0}")]
    Worker(#[source] io::Error),
    /// A network namespace could not be opened or entered.
    #[error("cannot enter the network namespace {netns}: {source}")]
    Netns {
        /// The namespace path.
        netns: String,
        /// The cause.
        #[source]
        source: io::Error,
    },
    /// A netlink socket could not be opened.
    #[error("cannot open a netlink socket in {netns}: {source}")]
    Connect {
        /// The namespace the socket was for.
        netns: String,
        /// The cause.
        #[source]
        source: io::Error,
    },
    /// The kernel refused a netlink request.
    #[error("{what} failed: {source}")]
    Netlink {
        /// The step, with its interface and namespace.
        what: String,
        /// The cause.
        #[source]
        source: rtnetlink::Error,
    },
    /// Writing a sysctl failed.
    #[error("cannot set sysctl {path}: {source}")]
    Sysctl {
        /// The /proc/sys path.
        path: String,
        /// The cause.
        #[source]
        source: io::Error,
    },
    /// The pod side is not as ADD left it.
    #[error("{0}")]
    Mismatch(String),
}

/// What the veth looks like.
#[derive(Clone, Debug)]
pub struct Veth<'a> {
    /// The pod's network namespace path.
    pub netns: &'a str,
    /// The interface inside the pod.
    pub ifname: &'a str,
    /// The host-side name.
    pub host: &'a str,
    /// The MTU of both sides.
    pub mtu: u32,
    /// The CNI container id that owns the attachment (the host side's alias).
    pub owner: &'a str,
}

/// The host side a removal may delete: `name`, when its alias names `owner`, or when it carries no
/// mark and `unmarked` says the caller knows it is `owner`'s (the agent's allocation names it).
#[derive(Clone, Copy, Debug)]
pub struct HostSide<'a> {
    /// The host-side interface name.
    pub name: &'a str,
    /// The CNI container id doing the removal.
    pub owner: &'a str,
    /// Also delete the interface when it carries no owner mark.
    pub unmarked: bool,
}

/// Creates the veth pair with the host side up and answering ARP for the pod's gateway, while
/// `meanwhile` runs on the calling thread (the pair needs no address, so ADD asks the agent for one
/// meanwhile); returns both outcomes once both are done. A pair of the same names is replaced, even
/// when `meanwhile` fails: one a failed ADD of the same container left (the runtime may retry ADD
/// without a DEL), or an older sandbox's of the same pod (logged, naming both containers: the
/// newer sandbox takes the pod's interface). The new host side is marked with [`Veth::owner`].
pub fn create_pair_while<T>(veth: &Veth<'_>, meanwhile: impl FnOnce() -> T) -> (Result<(), PlumbingError>, T) {
    on_worker_while(|| create_pair_on_worker(veth), meanwhile)
}

/// Gives the pair [`create_pair_while`] made its addresses (one per family): the host's routes
/// to the pod, and inside the pod the addresses and the routes to and via the gateway of each
/// family. Returns the pod-side MAC.
pub fn address(veth: &Veth<'_>, addresses: &[IpAddr]) -> Result<String, PlumbingError> {
    on_worker(|| address_on_worker(veth, addresses))
}

/// Removes what a container's attachment left: `ifname` in the container's `netns` (whatever it
/// is: a half-made ADD may leave it unpaired) and the host side, if [`HostSide`] allows (deleting
/// either side of a veth removes both); missing pieces are not an error.
pub fn remove(netns: Option<&str>, ifname: &str, host: Option<HostSide<'_>>) -> Result<(), PlumbingError> {
    on_worker(|| remove_on_worker(netns, ifname, host))
}

/// Makes sure the host's routes to the pod (`ADDRESS/32` or `/128 dev HOST`, the agent's
/// protocol) are in the calling process's namespace, adding those that are not (a plugin older
/// than the agent may not add them). Returns whether any had to be added; fails when `host` does
/// not exist.
pub fn ensure_host_routes(host: &str, addresses: &[IpAddr]) -> Result<bool, PlumbingError> {
    on_worker(|| ensure_host_routes_on_worker(host, addresses))
}

async fn ensure_host_routes_on_worker(host: &str, addresses: &[IpAddr]) -> Result<bool, PlumbingError> {
    let handle = connect(OWN_NETNS)?;
    let what = || format!("looking up {host} in {OWN_NETNS}");
    let link = find_link(&handle, host)
        .await
        .map_err(netlink(what))?
        .ok_or_else(|| PlumbingError::Mismatch(format!("host interface {host} is missing")))?;
    let mut added = false;
    for address in addresses {
        let wanted = host_route(*address, link.header.index);
        let length = wanted.header.destination_prefix_length;
        // A lookup, not a dump (a node may hold many routes): the FIB entry the kernel uses for
        // the address, with its protocol. A failed lookup (no route at all) means it is missing.
        let mut lookup = match address {
            IpAddr::V4(a) => RouteMessageBuilder::<Ipv4Addr>::new().destination_prefix(*a, 32).build(),
            IpAddr::V6(a) => RouteMessageBuilder::<Ipv6Addr>::new().destination_prefix(*a, 128).build(),
        };
        lookup.header.flags = RouteFlags::FibMatch;
        let found: Vec<RouteMessage> = handle.route().get(lookup).execute().try_collect().await.unwrap_or_default();
        let present = found.iter().any(|r| {
            r.header.protocol == wanted.header.protocol
                && r.header.destination_prefix_length == length
                && r.attributes.contains(&RouteAttribute::Oif(link.header.index))
        });
        if !present {
            let what = || format!("adding the route {address}/{length} dev {host}");
            handle.route().add(wanted).replace().execute().await.map_err(netlink(what))?;
            added = true;
        }
    }
    Ok(added)
}

/// Verifies that the veth is as [`create_pair_while`] and [`address`] left it, for every address.
pub fn check(veth: &Veth<'_>, addresses: &[IpAddr]) -> Result<(), PlumbingError> {
    on_worker(|| check_on_worker(veth, addresses))
}

async fn create_pair_on_worker(veth: &Veth<'_>) -> Result<(), PlumbingError> {
    let pod_netns = open_netns(veth.netns)?;
    let host = connect(OWN_NETNS)?;
    let pod = connect_in(&pod_netns, veth.netns)?;
    let what = || format!("looking up {} in {OWN_NETNS}", veth.host);
    if let Some(stale) = find_link(&host, veth.host).await.map_err(netlink(what))? {
        let previous = owner(&stale);
        if delete_link(&host, veth.host, OWN_NETNS).await? {
            match previous.as_deref() {
                Some(previous) if previous == veth.owner => {
                    tracing::info!(
                        interface = veth.host,
                        container = veth.owner,
                        "removed the host veth an earlier ADD of this container left"
                    );
                }
                Some(previous) => {
                    tracing::info!(
                        interface = veth.host,
                        older = previous,
                        newer = veth.owner,
                        "a newer sandbox of the pod replaces the older sandbox's attachment"
                    );
                }
                None => tracing::info!(interface = veth.host, "removed a stale host-side veth without an owner mark"),
            }
        }
    }
    if delete_link(&pod, veth.ifname, veth.netns).await? {
        tracing::info!(interface = veth.ifname, netns = veth.netns, "removed a stale pod-side interface");
    }
    let pair = veth_message(veth, &pod_netns);
    let what = || format!("creating veth {} with peer {} in {}", veth.host, veth.ifname, veth.netns);
    host.link().add(pair).execute().await.map_err(netlink(what))?;
    sysctl(&format!("/proc/sys/net/ipv4/conf/{}/proxy_arp", veth.host), "1")?;
    sysctl(&format!("/proc/sys/net/ipv4/neigh/{}/proxy_delay", veth.host), "0")?;
    // Before the link is up: its link-local address (the pod's IPv6 gateway) is then valid as
    // soon as the kernel makes it, with no DAD to wait for.
    if ipv6_enabled() {
        sysctl(&format!("/proc/sys/net/ipv6/conf/{}/accept_dad", veth.host), "0")?;
    }
    // The kernel ignores an alias in the request that creates a link: set it after, with up.
    let what = || format!("marking {} as owned by container {} and setting it up", veth.host, veth.owner);
    let mark = LinkUnspec::new_with_name(veth.host).alias(veth.owner).up().build();
    host.link().set(mark).execute().await.map_err(netlink(what))?;
    Ok(())
}

/// Whether the kernel has IPv6 (in the calling thread's namespace).
fn ipv6_enabled() -> bool {
    std::path::Path::new("/proc/sys/net/ipv6").exists()
}

async fn address_on_worker(veth: &Veth<'_>, addresses: &[IpAddr]) -> Result<String, PlumbingError> {
    let ipv6 = addresses.iter().any(IpAddr::is_ipv6);
    let host = connect(OWN_NETNS)?;
    let what = || format!("looking up {} in {OWN_NETNS}", veth.host);
    let host_link = find_link(&host, veth.host)
        .await
        .map_err(netlink(what))?
        .ok_or_else(|| PlumbingError::Mismatch(format!("{} is missing right after creating the veth", veth.host)))?;
    if ipv6 {
        // The host side needs its link-local address (the gateway), also where IPv6 is off by
        // default.
        sysctl(&format!("/proc/sys/net/ipv6/conf/{}/disable_ipv6", veth.host), "0")?;
    }
    for address in addresses {
        let route = host_route(*address, host_link.header.index);
        let what =
            || format!("adding the route {address}/{} dev {}", route.header.destination_prefix_length, veth.host);
        host.route().add(route.clone()).replace().execute().await.map_err(netlink(what))?;
    }

    let pod_netns = open_netns(veth.netns)?;
    if ipv6 {
        // A runtime may create the pod's namespace with IPv6 off.
        let path = format!("/proc/sys/net/ipv6/conf/{}/disable_ipv6", veth.ifname);
        in_netns(&pod_netns, veth.netns, || sysctl(&path, "0"))??;
    }
    let pod = connect_in(&pod_netns, veth.netns)?;
    let what = || format!("looking up {} in {}", veth.ifname, veth.netns);
    let link = find_link(&pod, veth.ifname).await.map_err(netlink(what))?.ok_or_else(|| {
        PlumbingError::Mismatch(format!("{} is missing in {} right after creating the veth", veth.ifname, veth.netns))
    })?;
    let index = link.header.index;
    let what = || format!("setting {} in {} up", veth.ifname, veth.netns);
    pod.link().set(LinkUnspec::new_with_index(index).up().build()).execute().await.map_err(netlink(what))?;
    for address in addresses {
        let length = host_length(*address);
        let mut add = pod.address().add(index, *address, length);
        if address.is_ipv6() {
            // Each address is the pod's alone (IPAM says so): no DAD to delay its first packet.
            let message = add.message_mut();
            message.header.flags = AddressHeaderFlags::Nodad;
            message.attributes.push(AddressAttribute::Flags(AddressFlags::Nodad));
        }
        let what = || format!("adding {address}/{length} to {} in {}", veth.ifname, veth.netns);
        add.execute().await.map_err(netlink(what))?;
        let gateway = gateway_for(*address);
        for (route, kind) in pod_routes(index, gateway).into_iter().zip(["to", "default via"]) {
            let what = || format!("adding the route {kind} {gateway} dev {} in {}", veth.ifname, veth.netns);
            pod.route().add(route).execute().await.map_err(netlink(what))?;
        }
    }
    Ok(mac(&link))
}

async fn remove_on_worker(netns: Option<&str>, ifname: &str, host: Option<HostSide<'_>>) -> Result<(), PlumbingError> {
    if let Some(side) = host {
        remove_host_side(&connect(OWN_NETNS)?, side).await?;
    }
    let Some(netns) = netns.filter(|n| !n.is_empty()) else { return Ok(()) };
    let file = match File::open(netns) {
        Err(error) if error.kind() == io::ErrorKind::NotFound => return Ok(()),
        opened => opened.map_err(|source| PlumbingError::Netns { netns: netns.to_string(), source })?,
    };
    let pod = match connect_in(&file, netns) {
        // A leftover file that is no namespace any more: the pod side went with its namespace.
        Err(PlumbingError::Netns { source, .. }) if source.raw_os_error() == Some(Errno::EINVAL as i32) => {
            tracing::debug!(netns, "not a network namespace; no pod side to remove");
            return Ok(());
        }
        connected => connected?,
    };
    delete_link(&pod, ifname, netns).await?;
    Ok(())
}

/// Deletes the host side when [`HostSide`] allows; an interface another container owns is left
/// alone (logged).
async fn remove_host_side(handle: &Handle, side: HostSide<'_>) -> Result<(), PlumbingError> {
    let what = || format!("looking up {} in {OWN_NETNS}", side.name);
    let Some(link) = find_link(handle, side.name).await.map_err(netlink(what))? else { return Ok(()) };
    match owner(&link) {
        Some(mark) if mark != side.owner => {
            tracing::info!(interface = side.name, container = side.owner, owner = %mark, "left the host veth alone: another sandbox of the pod owns it");
            Ok(())
        }
        None if !side.unmarked => {
            tracing::info!(
                interface = side.name,
                container = side.owner,
                "left the host veth alone: it carries no owner mark and the agent has no allocation of this container naming it"
            );
            Ok(())
        }
        _ => delete_link(handle, side.name, OWN_NETNS).await.map(drop),
    }
}

async fn check_on_worker(veth: &Veth<'_>, addresses: &[IpAddr]) -> Result<(), PlumbingError> {
    let mismatch = |what: String| Err(PlumbingError::Mismatch(what));
    let host = connect(OWN_NETNS)?;
    let what = || format!("looking up {} in {OWN_NETNS}", veth.host);
    let Some(link) = find_link(&host, veth.host).await.map_err(netlink(what))? else {
        return mismatch(format!("host interface {} is missing", veth.host));
    };
    if mac(&link) != HOST_MAC {
        return mismatch(format!("host interface {} does not have MAC {HOST_MAC}", veth.host));
    }
    if let Some(mark) = owner(&link).filter(|mark| mark != veth.owner) {
        return mismatch(format!("host interface {} belongs to container {mark}, not {}", veth.host, veth.owner));
    }
    let pod = connect_in(&open_netns(veth.netns)?, veth.netns)?;
    let what = || format!("looking up {} in {}", veth.ifname, veth.netns);
    let Some(link) = find_link(&pod, veth.ifname).await.map_err(netlink(what))? else {
        return mismatch(format!("{} in {} is missing", veth.ifname, veth.netns));
    };
    let index = link.header.index;
    let request = pod.address().get().set_link_index_filter(index);
    let what = || format!("listing the addresses of {} in {}", veth.ifname, veth.netns);
    let held: Vec<AddressMessage> = request.execute().try_collect().await.map_err(netlink(what))?;
    for address in addresses {
        let length = host_length(*address);
        if !has_address(&held, *address) {
            return mismatch(format!("{} in {} lacks address {address}/{length}", veth.ifname, veth.netns));
        }
        let what = || format!("listing the routes in {}", veth.netns);
        let dump = match address {
            IpAddr::V4(_) => pod.route().get(RouteMessageBuilder::<Ipv4Addr>::new().build()).execute(),
            IpAddr::V6(_) => pod.route().get(RouteMessageBuilder::<Ipv6Addr>::new().build()).execute(),
        };
        let routes: Vec<RouteMessage> = dump.try_collect().await.map_err(netlink(what))?;
        let gateway = gateway_for(*address);
        if !has_pod_routes(&routes, index, gateway) {
            return mismatch(format!("{} in {} lacks the routes to and via {gateway}", veth.ifname, veth.netns));
        }
    }
    Ok(())
}

/// Runs `work` to completion on a fresh thread with a single-threaded runtime (see the module
/// doc); a panic in it resumes in the caller.
fn on_worker<T, F, Fut>(work: F) -> Result<T, PlumbingError>
where
    T: Send,
    F: FnOnce() -> Fut + Send,
    Fut: Future<Output = Result<T, PlumbingError>>,
{
    on_worker_while(work, || ()).0
}

/// [`on_worker`], with `meanwhile` running on the calling thread at the same time; returns both
/// outcomes once both are done.
fn on_worker_while<T, M, F, Fut>(work: F, meanwhile: impl FnOnce() -> M) -> (Result<T, PlumbingError>, M)
where
    T: Send,
    F: FnOnce() -> Fut + Send,
    Fut: Future<Output = Result<T, PlumbingError>>,
{
    std::thread::scope(|scope| {
        let worker = std::thread::Builder::new().name("cni-plumbing".into()).spawn_scoped(scope, || {
            let runtime =
                tokio::runtime::Builder::new_current_thread().enable_io().build().map_err(PlumbingError::Worker)?;
            runtime.block_on(work())
        });
        let other = meanwhile();
        let done = match worker {
            Ok(worker) => worker.join().unwrap_or_else(|panic| std::panic::resume_unwind(panic)),
            Err(error) => Err(PlumbingError::Worker(error)),
        };
        (done, other)
    })
}

fn open_netns(netns: &str) -> Result<File, PlumbingError> {
    File::open(netns).map_err(|source| PlumbingError::Netns { netns: netns.to_string(), source })
}

/// A netlink connection in the calling thread's namespace (`netns` names it in errors); its task
/// runs on the current runtime.
fn connect(netns: &str) -> Result<Handle, PlumbingError> {
    let (connection, handle, _) =
        rtnetlink::new_connection().map_err(|source| PlumbingError::Connect { netns: netns.to_string(), source })?;
    tokio::spawn(connection);
    Ok(handle)
}

/// A netlink connection in the namespace `file` (at path `netns`): the thread enters it just to
/// create the socket and returns to its own namespace before anything else happens.
fn connect_in(file: &File, netns: &str) -> Result<Handle, PlumbingError> {
    in_netns(file, netns, || connect(netns))?
}

/// Runs `work` with the calling thread in the namespace `file` (at path `netns`), and returns the
/// thread to its own namespace before anything else happens.
fn in_netns<T>(file: &File, netns: &str, work: impl FnOnce() -> T) -> Result<T, PlumbingError> {
    let failed = |netns: &str, source: io::Error| PlumbingError::Netns { netns: netns.to_string(), source };
    let own = File::open(THREAD_NETNS).map_err(|e| failed(THREAD_NETNS, e))?;
    setns(file, CloneFlags::CLONE_NEWNET).map_err(|e| failed(netns, e.into()))?;
    let done = work();
    setns(&own, CloneFlags::CLONE_NEWNET).map_err(|e| failed(THREAD_NETNS, e.into()))?;
    Ok(done)
}

/// The pair: the host side named and addressed with [`HOST_MAC`] in the plugin's namespace (down:
/// it goes up once its sysctls are set), the pod side named inside `pod_netns`; both with the
/// MTU. (The kernel cannot bring a veth's peer up while it creates the pair: that fails with
/// ENOTCONN.)
fn veth_message(veth: &Veth<'_>, pod_netns: &File) -> LinkMessage {
    let peer = LinkUnspec::new_with_name(veth.ifname).mtu(veth.mtu).setns_by_fd(pod_netns.as_raw_fd()).build();
    LinkMessageBuilder::<LinkVeth>::new_with_info_kind(InfoKind::Veth)
        .name(veth.host)
        .mtu(veth.mtu)
        .address(HOST_MAC_BYTES.to_vec())
        .set_info_data(InfoData::Veth(InfoVeth::Peer(peer)))
        .build()
}

/// The link named `name`, or `None` when there is none.
async fn find_link(handle: &Handle, name: &str) -> Result<Option<LinkMessage>, rtnetlink::Error> {
    match handle.link().get().match_name(name).execute().try_next().await {
        Err(error) if no_device(&error) => Ok(None),
        found => found,
    }
}

/// Deletes the link named `name` in `netns`; returns whether there was one.
async fn delete_link(handle: &Handle, name: &str, netns: &str) -> Result<bool, PlumbingError> {
    let request = handle.link().del_with_message(LinkUnspec::new_with_name(name).build());
    match request.execute().await {
        Ok(()) => Ok(true),
        Err(error) if no_device(&error) => Ok(false),
        Err(source) => Err(PlumbingError::Netlink { what: format!("deleting {name} in {netns}"), source }),
    }
}

fn no_device(error: &rtnetlink::Error) -> bool {
    matches!(error, rtnetlink::Error::NetlinkError(message) if message.raw_code() == -(Errno::ENODEV as i32))
}

/// Wraps a netlink failure with the step it failed (`what` is only formatted on failure).
fn netlink(what: impl FnOnce() -> String) -> impl FnOnce(rtnetlink::Error) -> PlumbingError {
    move |source| PlumbingError::Netlink { what: what(), source }
}

/// The container id a host veth is marked with (its alias), if any.
fn owner(link: &LinkMessage) -> Option<String> {
    link.attributes.iter().find_map(|a| match a {
        LinkAttribute::IfAlias(alias) if !alias.is_empty() => Some(alias.clone()),
        _ => None,
    })
}

/// The link's MAC as `aa:bb:..`, or empty when it has none.
fn mac(link: &LinkMessage) -> String {
    let bytes = link.attributes.iter().find_map(|a| match a {
        LinkAttribute::Address(bytes) => <[u8; 6]>::try_from(bytes.as_slice()).ok(),
        _ => None,
    });
    bytes.map(|bytes| Mac(bytes).to_string()).unwrap_or_default()
}

fn sysctl(path: &str, value: &str) -> Result<(), PlumbingError> {
    std::fs::write(path, value).map_err(|source| PlumbingError::Sysctl { path: path.to_string(), source })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_constants_agree_with_their_text() {
        assert_eq!(GATEWAY.parse::<Ipv4Addr>().ok(), Some(GATEWAY_ADDRESS));
        assert_eq!(GATEWAY6.parse::<Ipv6Addr>().ok(), Some(GATEWAY6_ADDRESS));
        // The EUI-64 link-local address of the host MAC: the kernel gives it to the host side.
        let mut eui64 = [0u8; 8];
        eui64[..3].copy_from_slice(&HOST_MAC_BYTES[..3]);
        eui64[3..5].copy_from_slice(&[0xff, 0xfe]);
        eui64[5..].copy_from_slice(&HOST_MAC_BYTES[3..]);
        eui64[0] ^= 0x02;
        assert_eq!(&GATEWAY6_ADDRESS.octets()[8..], &eui64);
        let mut link = LinkMessage::default();
        link.attributes.push(LinkAttribute::Address(HOST_MAC_BYTES.to_vec()));
        assert_eq!(mac(&link), HOST_MAC);
    }
}
