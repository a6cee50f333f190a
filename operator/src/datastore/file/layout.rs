//! The directory layout of docs/file-datastore.md: which paths hold what, and who writes them.

use std::path::{Component, Path, PathBuf};

/// The operator's NodeNetworks.
pub const NODE_NETWORKS: &str = "generated/nodenetworks";
/// The operator's IPAMBlocks.
pub const IPAM_BLOCKS: &str = "generated/ipamblocks";
/// The operator's translated Kubernetes NetworkPolicies.
pub const NETWORK_POLICIES: &str = "generated/networkpolicies";
/// The operator's IPPool statuses.
pub const POOL_STATUSES: &str = "status/ippools";
/// The agents' NodeNetwork statuses.
pub const NODE_STATUSES: &str = "status/nodenetworks";

/// What a file under the directory is, for the operator.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Area {
    /// The user's objects: top-level files and `objects/**`.
    User,
    /// `generated/ipamblocks`: the operator's block assignments, read back as state.
    Blocks,
    /// `generated/networkpolicies`: translations read back (the core sees what it wrote).
    Policies,
    /// `status/nodenetworks`: agent reports.
    NodeStatus,
    /// Other files the operator writes; read only to notice changes.
    Own,
}

/// The area of a path relative to the directory, or `None` for files nobody should read.
pub fn area_of(relative: &Path) -> Option<Area> {
    let parts: Vec<&str> = relative
        .components()
        .map(|c| match c {
            Component::Normal(part) => part.to_str().unwrap_or(""),
            _ => "",
        })
        .collect();
    let dir = parts[..parts.len().saturating_sub(1)].join("/");
    match dir.as_str() {
        "" => Some(Area::User),
        _ if parts.first() == Some(&"objects") => Some(Area::User),
        IPAM_BLOCKS => Some(Area::Blocks),
        NETWORK_POLICIES => Some(Area::Policies),
        NODE_STATUSES => Some(Area::NodeStatus),
        NODE_NETWORKS | POOL_STATUSES => Some(Area::Own),
        _ => None,
    }
}

/// The file of an operator-written object: `<dir>/<area>/<name>.yaml`.
pub fn object_path(root: &Path, area: &str, name: &str) -> PathBuf {
    root.join(area).join(format!("{name}.yaml"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_map_to_areas_as_documented() {
        let cases = [
            ("pools.yaml", Some(Area::User)),
            ("objects/team-a/policy.yaml", Some(Area::User)),
            ("generated/ipamblocks/10-0-0-0-26.yaml", Some(Area::Blocks)),
            ("generated/networkpolicies/default.knp.web.yaml", Some(Area::Policies)),
            ("generated/nodenetworks/node-1.yaml", Some(Area::Own)),
            ("status/ippools/default.yaml", Some(Area::Own)),
            ("status/nodenetworks/node-1.yaml", Some(Area::NodeStatus)),
            ("elsewhere/file.yaml", None),
        ];
        for (path, expected) in cases {
            assert_eq!(area_of(Path::new(path)), expected, "{path}");
        }
    }
}
