//! Names both halves must derive the same way from the same facts: pod interface names, VTEP MACs
//! and IPAMBlock object names.

use crate::api::value::Mac;

/// The prefix of every host-side pod interface gingham creates.
pub const INTERFACE_PREFIX: &str = "gh";

/// The namespace of workloads a runtime attaches without Kubernetes (no `K8S_POD_NAMESPACE` in
/// `CNI_ARGS`, as plain podman): policy selects them by this namespace
/// (`projectcalico.org/namespace == "gingham-workloads"`); they carry no other labels.
pub const WORKLOAD_NAMESPACE: &str = "gingham-workloads";

/// The longest workload name: a DNS label, as Kubernetes pod names in practice are.
const WORKLOAD_NAME_MAX: usize = 63;

/// The pod name of a non-Kubernetes workload (in [`WORKLOAD_NAMESPACE`]): its container ID, or,
/// for an ID longer than 63 characters, its first 46 characters, `-` and 16 hex digits of a hash
/// of the whole ID. The host interface name is a hash of namespace/name, so it fits the kernel's
/// 15 characters whatever the name's length.
pub fn workload_name(container_id: &str) -> String {
    if container_id.len() <= WORKLOAD_NAME_MAX {
        return container_id.to_string();
    }
    let head: String = container_id.chars().take(WORKLOAD_NAME_MAX - 17).collect();
    format!("{head}-{:016x}", fnv1a(container_id))
}

/// FNV-1a, 64-bit: a small, stable hash (not for security) so that names never change across
/// versions or platforms.
fn fnv1a(text: &str) -> u64 {
    text.bytes().fold(0xcbf2_9ce4_8422_2325, |hash, byte| (hash ^ u64::from(byte)).wrapping_mul(0x0100_0000_01b3))
}

/// The host-side interface name of a pod: `gh` and 11 hex digits of a hash of `namespace/pod`
/// (13 characters, within the kernel's 15).
pub fn endpoint_interface_name(namespace: &str, pod: &str) -> String {
    let hash = fnv1a(&format!("{namespace}/{pod}"));
    format!("{INTERFACE_PREFIX}{:011x}", hash >> 20)
}

/// The VTEP MAC of a node: locally administered, unicast, from a hash of the node name.
pub fn vtep_mac(node: &str) -> Mac {
    let bytes = fnv1a(node).to_be_bytes();
    Mac([(bytes[2] & 0xfe) | 0x02, bytes[3], bytes[4], bytes[5], bytes[6], bytes[7]])
}

/// The IPv6 VTEP MAC of a node (Calico's `VXLANTunnelMACAddrV6`): as [`vtep_mac`], from a hash
/// of `v6/<node>`, so that it differs from the node's IPv4 VTEP MAC.
pub fn vtep_mac_v6(node: &str) -> Mac {
    vtep_mac(&format!("v6/{node}"))
}

/// The word every gingham log prefix starts with.
pub const LOG_PREFIX_WORD: &str = "gingham";

/// Where a `Log` rule sits: the policy's compiled name hashed (12 hex digits of FNV-1a), the
/// direction and the rule's position among the policy's compiled rules of that direction.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LogTag {
    /// 12 hex digits of a hash of the compiled policy name (`ns/name` or `global/name`).
    pub policy_hash: String,
    /// An ingress rule (else egress).
    pub ingress: bool,
    /// The rule's index among the policy's compiled rules of that direction.
    pub rule: usize,
}

impl LogTag {
    /// The tag of rule `rule` of `policy` (its compiled name) in a direction.
    pub fn new(policy: &str, ingress: bool, rule: usize) -> Self {
        Self { policy_hash: policy_log_hash(policy), ingress, rule }
    }

    /// The nftables log prefix: `gingham <hash> i<rule>: ` (or `e<rule>`), at most 29 bytes for
    /// rule indexes below 1000: within nftables' limit (the kernel's `NF_LOG_PREFIXLEN`, 128 bytes
    /// with the terminating NUL) and even iptables' `LOG` limit of 29 characters, whatever the
    /// length of the policy's name.
    pub fn prefix(&self) -> String {
        let direction = if self.ingress { 'i' } else { 'e' };
        format!("{LOG_PREFIX_WORD} {} {direction}{}: ", self.policy_hash, self.rule)
    }

    /// Finds a tag in text: a prefix, or a whole kernel log line (`... gingham 3fa2c91b0d7e i0:
    /// IN=... SRC=...`).
    pub fn find(text: &str) -> Option<Self> {
        let mut words = text.split_whitespace().skip_while(|w| *w != LOG_PREFIX_WORD).skip(1);
        let hash = words.next()?;
        let place = words.next()?.strip_suffix(':')?;
        let valid_hash = hash.len() == 12 && hash.bytes().all(|b| b.is_ascii_hexdigit());
        let (ingress, rule) = match place.split_at_checked(1)? {
            ("i", rule) => (true, rule),
            ("e", rule) => (false, rule),
            _ => return None,
        };
        let rule = rule.parse().ok()?;
        valid_hash.then(|| Self { policy_hash: hash.to_ascii_lowercase(), ingress, rule })
    }
}

/// 12 hex digits of FNV-1a of a compiled policy name: what a log prefix carries of the policy.
pub fn policy_log_hash(policy: &str) -> String {
    format!("{:012x}", fnv1a(policy) >> 16)
}

/// The object name of the IPAMBlock for a CIDR: `10.244.0.64/26` becomes `10-244-0-64-26`.
pub fn block_object_name(cidr: &str) -> String {
    cidr.chars().map(|c| if c.is_ascii_alphanumeric() { c.to_ascii_lowercase() } else { '-' }).collect()
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_log_prefix_is_short_stable_and_found_again_in_a_kernel_line() {
        let long = format!("a-namespace/{}", "p".repeat(250));
        for (policy, ingress, rule) in
            [("shop/web", true, 0), ("global/deny-all", false, 17), (long.as_str(), true, 999)]
        {
            let tag = super::LogTag::new(policy, ingress, rule);
            let prefix = tag.prefix();
            assert!(prefix.len() <= 29, "{prefix:?}");
            let line = format!("[ 12.3] {prefix}IN=ghabc OUT=gh123 SRC=10.0.0.1 DST=10.0.0.2 PROTO=TCP");
            assert_eq!(super::LogTag::find(&line), Some(tag.clone()), "{line}");
            assert_eq!(super::LogTag::find(&prefix), Some(tag));
        }
        assert_eq!(super::policy_log_hash("shop/web"), super::policy_log_hash("shop/web"));
        assert_ne!(super::policy_log_hash("shop/web"), super::policy_log_hash("shop/db"));
        for bad in [
            "gingham",
            "gingham xyz i0:",
            "gingham 0123456789ab x0:",
            "gingham 0123456789ab i:",
            "other 0123456789ab i0:",
        ] {
            assert_eq!(super::LogTag::find(bad), None, "{bad}");
        }
    }

    use super::*;

    #[test]
    fn a_nodes_two_vtep_macs_differ_and_are_locally_administered() {
        for node in ["node-1", "n", ""] {
            let (v4, v6) = (vtep_mac(node), vtep_mac_v6(node));
            assert_ne!(v4, v6, "{node:?}");
            assert_eq!(v6.0[0] & 0x03, 0x02, "unicast, locally administered");
        }
    }

    #[test]
    fn interface_names_fit_the_kernel_limit_and_are_stable() {
        let name = endpoint_interface_name("default", "web-0");
        assert_eq!(name.len(), 13);
        assert!(name.starts_with(INTERFACE_PREFIX));
        assert_eq!(name, endpoint_interface_name("default", "web-0"));
        assert_ne!(name, endpoint_interface_name("default", "web-1"));
    }

    #[test]
    fn workload_names_are_the_container_id_or_a_unique_dns_label() {
        assert_eq!(workload_name("0123abcd"), "0123abcd");
        let long = "a".repeat(64);
        let name = workload_name(&long);
        assert_eq!(name.len(), 63, "{name}");
        assert!(name.starts_with(&"a".repeat(46)), "{name}");
        assert_ne!(name, workload_name(&format!("{}b", "a".repeat(63))), "IDs that share a prefix stay apart");
        assert_eq!(endpoint_interface_name(WORKLOAD_NAMESPACE, &name).len(), 13);
    }

    #[test]
    fn vtep_macs_are_locally_administered_unicast() {
        let mac = vtep_mac("node-1");
        assert_eq!(mac.0[0] & 0x03, 0x02, "{mac}");
        assert_ne!(mac, vtep_mac("node-2"));
    }

    #[test]
    fn block_names_are_dns_labels() {
        assert_eq!(block_object_name("10.244.0.64/26"), "10-244-0-64-26");
        assert_eq!(block_object_name("fd00::/122"), "fd00---122");
    }
}
