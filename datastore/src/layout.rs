//! The directory layout of docs/file-datastore.md: which paths hold what, and who writes them.
//! Every component builds its paths here; none spells a directory name itself.

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

/// The operator replicas' leader lock: the replica holding an exclusive `flock` on it writes. A dot
/// file, so that no reader takes it for an object.
pub const LEADER_LOCK: &str = ".operator-leader.lock";

/// The user's objects as the lab and the CLI write them: `objects/<group>/<kind>/<file>`.
pub const USER_OBJECTS: &str = "objects";

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
        _ if parts.first() == Some(&USER_OBJECTS) => Some(Area::User),
        IPAM_BLOCKS => Some(Area::Blocks),
        NETWORK_POLICIES => Some(Area::Policies),
        NODE_STATUSES => Some(Area::NodeStatus),
        NODE_NETWORKS | POOL_STATUSES => Some(Area::Own),
        _ => None,
    }
}

/// The file of an operator- or agent-written object: `<dir>/<area>/<name>.yaml`.
pub fn object_path(root: &Path, area: &str, name: &str) -> PathBuf {
    root.join(area).join(format!("{name}.yaml"))
}

/// The NodeNetwork the operator generated for `node`.
pub fn node_network_path(root: &Path, node: &str) -> PathBuf {
    object_path(root, NODE_NETWORKS, node)
}

/// The status `node`'s agent reports.
pub fn node_status_path(root: &Path, node: &str) -> PathBuf {
    object_path(root, NODE_STATUSES, node)
}

/// Whether a change to `path` (absolute, under `root`) concerns `node`'s agent: its own
/// NodeNetwork, any IPAMBlock, or a directory holding them (created, moved or removed as a whole:
/// files written into a new directory before its watch starts send no event of their own). This
/// is the agent's watch filter.
pub fn read_by_agent(root: &Path, node: &str, path: &Path) -> bool {
    let (network, blocks) = (node_network_path(root, node), root.join(IPAM_BLOCKS));
    path == network || path.starts_with(&blocks) || network.starts_with(path) || blocks.starts_with(path)
}

/// The file of a user's object, from its identity, so that writing an object again replaces it:
/// `objects/<gingham|k8s>/<kind>/[<namespace>.]<name>.yaml`.
pub fn user_object_path(root: &Path, api_version: &str, kind: &str, namespace: Option<&str>, name: &str) -> PathBuf {
    let group = if api_version.starts_with("gingham.dev/") { "gingham" } else { "k8s" };
    let file = match namespace {
        Some(ns) => format!("{ns}.{name}.yaml"),
        None => format!("{name}.yaml"),
    };
    root.join(USER_OBJECTS).join(group).join(kind.to_ascii_lowercase()).join(file)
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

    #[test]
    fn an_agent_reads_its_own_node_network_and_every_block() {
        let root = Path::new("/ds");
        let cases = [
            ("/ds/generated/nodenetworks/node-1.yaml", true),
            ("/ds/generated/nodenetworks/node-2.yaml", false),
            ("/ds/generated/ipamblocks/10-0-0-0-26.yaml", true),
            ("/ds/generated/ipamblocks", true),
            ("/ds/generated", true),
            ("/ds/generated/nodenetworks", true),
            ("/ds/status/nodenetworks/node-1.yaml", false),
            ("/ds/status", false),
            ("/ds/pools.yaml", false),
        ];
        for (path, expected) in cases {
            assert_eq!(read_by_agent(root, "node-1", Path::new(path)), expected, "{path}");
        }
    }

    #[test]
    fn user_objects_have_one_file_per_identity() {
        let root = Path::new("/ds");
        let cases = [
            (("gingham.dev/v1", "IPPool", None, "p"), "/ds/objects/gingham/ippool/p.yaml"),
            (("v1", "Pod", Some("prod"), "web"), "/ds/objects/k8s/pod/prod.web.yaml"),
            (("networking.k8s.io/v1", "NetworkPolicy", Some("a"), "b"), "/ds/objects/k8s/networkpolicy/a.b.yaml"),
        ];
        for ((api_version, kind, namespace, name), expected) in cases {
            assert_eq!(user_object_path(root, api_version, kind, namespace, name), Path::new(expected));
        }
    }
}
