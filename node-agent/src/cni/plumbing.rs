//! The pod's veth, made with iproute2: created inside the pod's namespace (through `nsenter`), its
//! host side moved to the plugin's namespace, addressed and routed the Calico way.

use std::net::Ipv4Addr;
use std::path::Path;
use std::process::Command;

use serde_json::Value;

/// The MAC of every host-side veth (the pod's gateway answers with it through proxy ARP).
pub const HOST_MAC: &str = "ee:ee:ee:ee:ee:ee";
/// The pod's link-local gateway.
pub const GATEWAY: &str = "169.254.1.1";

/// A plumbing step failed.
#[derive(Debug, thiserror::Error)]
pub enum PlumbingError {
    /// A command could not run or failed.
    #[error("`{command}` failed: {stderr}")]
    Command {
        /// The command line.
        command: String,
        /// Its error output.
        stderr: String,
    },
    /// Writing a sysctl failed.
    #[error("cannot set sysctl {path}: {source}")]
    Sysctl {
        /// The /proc/sys path.
        path: String,
        /// The cause.
        #[source]
        source: std::io::Error,
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
    /// The pod's address.
    pub address: Ipv4Addr,
    /// The MTU of both sides.
    pub mtu: u32,
}

/// Creates the veth pair and configures both sides; returns the pod-side MAC.
pub fn create(veth: &Veth<'_>) -> Result<String, PlumbingError> {
    if link_exists(None, veth.host) {
        tracing::info!(interface = veth.host, "removing a stale host-side veth");
        ip(None, &["link", "del", veth.host])?;
    }
    if link_exists(Some(veth.netns), veth.ifname) {
        ip(Some(veth.netns), &["link", "del", veth.ifname])?;
    }
    let pid = std::process::id().to_string();
    let mtu = veth.mtu.to_string();
    let pod = Some(veth.netns);
    ip(pod, &["link", "add", veth.ifname, "mtu", &mtu, "type", "veth", "peer", "name", veth.host, "mtu", &mtu])?;
    ip(pod, &["link", "set", veth.host, "netns", &pid])?;
    ip(None, &["link", "set", "dev", veth.host, "address", HOST_MAC])?;
    sysctl(&format!("/proc/sys/net/ipv4/conf/{}/proxy_arp", veth.host), "1")?;
    sysctl(&format!("/proc/sys/net/ipv4/neigh/{}/proxy_delay", veth.host), "0")?;
    ip(None, &["link", "set", "dev", veth.host, "up"])?;
    ip(pod, &["link", "set", "dev", veth.ifname, "up"])?;
    ip(pod, &["addr", "add", &format!("{}/32", veth.address), "dev", veth.ifname])?;
    ip(pod, &["route", "add", GATEWAY, "dev", veth.ifname, "scope", "link"])?;
    ip(pod, &["route", "add", "default", "via", GATEWAY, "dev", veth.ifname])?;
    link_mac(pod, veth.ifname)
}

/// Removes the veth (deleting either side removes both); missing pieces are not an error.
pub fn remove(netns: Option<&str>, ifname: &str, host: Option<&str>) -> Result<(), PlumbingError> {
    if let Some(host) = host.filter(|h| link_exists(None, h)) {
        ip(None, &["link", "del", host])?;
    }
    if let Some(netns) = netns.filter(|n| !n.is_empty() && Path::new(n).exists())
        && link_exists(Some(netns), ifname)
    {
        ip(Some(netns), &["link", "del", ifname])?;
    }
    Ok(())
}

/// Verifies that the veth is as [`create`] left it.
pub fn check(veth: &Veth<'_>) -> Result<(), PlumbingError> {
    let mismatch = |what: String| Err(PlumbingError::Mismatch(what));
    let host = json(None, &["-j", "link", "show", "dev", veth.host])
        .map_err(|_| PlumbingError::Mismatch(format!("host interface {} is missing", veth.host)))?;
    if host.pointer("/0/address").and_then(Value::as_str) != Some(HOST_MAC) {
        return mismatch(format!("host interface {} does not have MAC {HOST_MAC}", veth.host));
    }
    let pod = Some(veth.netns);
    let addresses = json(pod, &["-j", "-4", "addr", "show", "dev", veth.ifname])?;
    let want = veth.address.to_string();
    let has_address = addresses.pointer("/0/addr_info").and_then(Value::as_array).is_some_and(|list| {
        list.iter().any(|a| a["local"].as_str() == Some(&want) && a["prefixlen"].as_u64() == Some(32))
    });
    if !has_address {
        return mismatch(format!("{} in {} lacks address {want}/32", veth.ifname, veth.netns));
    }
    let routes = json(pod, &["-j", "-4", "route", "show", "dev", veth.ifname])?;
    let routes = routes.as_array().cloned().unwrap_or_default();
    let has = |dst: &str, gateway: Option<&str>| {
        routes.iter().any(|r| r["dst"].as_str() == Some(dst) && r["gateway"].as_str() == gateway)
    };
    if !has(GATEWAY, None) || !has("default", Some(GATEWAY)) {
        return mismatch(format!("{} in {} lacks the routes to and via {GATEWAY}", veth.ifname, veth.netns));
    }
    Ok(())
}

fn link_exists(netns: Option<&str>, name: &str) -> bool {
    command(netns, &["link", "show", "dev", name]).output().is_ok_and(|o| o.status.success())
}

fn link_mac(netns: Option<&str>, name: &str) -> Result<String, PlumbingError> {
    let link = json(netns, &["-j", "link", "show", "dev", name])?;
    Ok(link.pointer("/0/address").and_then(Value::as_str).unwrap_or_default().to_string())
}

fn json(netns: Option<&str>, args: &[&str]) -> Result<Value, PlumbingError> {
    let text = ip(netns, args)?;
    serde_json::from_str(&text)
        .map_err(|e| PlumbingError::Command { command: format!("ip {}", args.join(" ")), stderr: e.to_string() })
}

fn command(netns: Option<&str>, args: &[&str]) -> Command {
    match netns {
        Some(netns) => {
            let mut command = Command::new("nsenter");
            command.arg(format!("--net={netns}")).arg("ip").args(args);
            command
        }
        None => {
            let mut command = Command::new("ip");
            command.args(args);
            command
        }
    }
}

fn ip(netns: Option<&str>, args: &[&str]) -> Result<String, PlumbingError> {
    let line = || match netns {
        Some(n) => format!("nsenter --net={n} ip {}", args.join(" ")),
        None => format!("ip {}", args.join(" ")),
    };
    let output =
        command(netns, args).output().map_err(|e| PlumbingError::Command { command: line(), stderr: e.to_string() })?;
    if !output.status.success() {
        return Err(PlumbingError::Command {
            command: line(),
            stderr: String::from_utf8_lossy(&output.stderr).trim().to_string(),
        });
    }
    Ok(String::from_utf8_lossy(&output.stdout).into_owned())
}

fn sysctl(path: &str, value: &str) -> Result<(), PlumbingError> {
    std::fs::write(path, value).map_err(|source| PlumbingError::Sysctl { path: path.to_string(), source })
}
