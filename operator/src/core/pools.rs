//! IP pools: validation (each pool alone, then overlaps: the older pool wins), and status
//! (`Allocatable` with a reason, blocks and addresses in use).

use std::collections::BTreeMap;

use gingham_crds::api::common::condition_status;
use gingham_crds::api::ippool::CONDITION_ALLOCATABLE;
use gingham_crds::api::{Condition, IPPool, IPPoolSpec, IPPoolStatus};
use gingham_crds::validate::{find_pool_overlaps, validate_ippool};
use ipnet::IpNet;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

use super::ObjectProblem;

/// Why a pool does or does not hand out blocks.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Valid and enabled: hands out blocks.
    Allocatable,
    /// Valid but disabled: its existing blocks keep routing, it hands out no new ones.
    Disabled,
    /// Invalid: never used. The reason is `InvalidCIDR`, `InvalidPool` or `CIDROverlap`.
    Invalid {
        /// The condition reason.
        reason: &'static str,
        /// What is wrong and how to fix it.
        message: String,
    },
}

/// A pool after validation.
#[derive(Clone, Debug, PartialEq)]
pub struct CheckedPool {
    /// The pool's name.
    pub name: String,
    /// The pool's spec.
    pub spec: IPPoolSpec,
    /// The parsed CIDR (`None` only for pools with an invalid CIDR).
    pub network: Option<IpNet>,
    /// The spec generation this verdict is about.
    pub generation: Option<i64>,
    /// The verdict.
    pub verdict: Verdict,
}

impl CheckedPool {
    /// Valid (possibly disabled): its blocks may be routed.
    pub fn is_valid(&self) -> bool {
        !matches!(self.verdict, Verdict::Invalid { .. })
    }

    /// Hands out new blocks for pods: valid, enabled and allowing workloads.
    pub fn hands_out_blocks(&self) -> bool {
        self.verdict == Verdict::Allocatable && self.spec.allows_workloads()
    }

    /// The pool encapsulates traffic (VXLAN or IPIP, Always or CrossSubnet).
    pub fn encapsulates(&self) -> bool {
        self.spec.vxlan_mode.is_enabled() || self.spec.ipip_mode.is_enabled()
    }
}

/// Validates every pool; invalid ones get a problem each. The result is keyed by pool name.
pub fn check_pools(pools: &[IPPool]) -> (BTreeMap<String, CheckedPool>, Vec<ObjectProblem>) {
    let mut checked = BTreeMap::new();
    let mut problems = Vec::new();
    for pool in pools {
        let name = pool.metadata.name.clone().unwrap_or_default();
        let verdict = match validate_ippool(&pool.spec) {
            Err(errors) => {
                let reason = if errors.iter().any(|e| e.path == "spec.cidr") { "InvalidCIDR" } else { "InvalidPool" };
                let message = errors.iter().map(ToString::to_string).collect::<Vec<_>>().join("; ");
                Verdict::Invalid { reason, message }
            }
            Ok(()) if pool.spec.disabled => Verdict::Disabled,
            Ok(()) => Verdict::Allocatable,
        };
        let entry = CheckedPool {
            name: name.clone(),
            network: pool.spec.network(),
            spec: pool.spec.clone(),
            generation: pool.metadata.generation,
            verdict,
        };
        checked.insert(name, entry);
    }
    let candidates: Vec<(String, String, Option<Time>)> = pools
        .iter()
        .filter(|p| checked.get(p.metadata.name.as_deref().unwrap_or_default()).is_some_and(CheckedPool::is_valid))
        .map(|p| {
            (p.metadata.name.clone().unwrap_or_default(), p.spec.cidr.clone(), p.metadata.creation_timestamp.clone())
        })
        .collect();
    for overlap in find_pool_overlaps(&candidates) {
        if let Some(pool) = checked.get_mut(&overlap.pool) {
            let message = format!(
                "{} overlaps pool {:?}, which is older and keeps working: choose a range that overlaps no other pool",
                pool.spec.cidr, overlap.other
            );
            pool.verdict = Verdict::Invalid { reason: "CIDROverlap", message };
        }
    }
    for pool in checked.values() {
        if let Verdict::Invalid { reason, message } = &pool.verdict {
            problems.push(ObjectProblem {
                kind: "IPPool".into(),
                namespace: None,
                name: pool.name.clone(),
                reason: (*reason).into(),
                message: message.clone(),
            });
        }
    }
    (checked, problems)
}

/// Splits a node's reported address use over its blocks' pools: evenly per block, the remainder to
/// the first block. `block_pools` lists the pool of each of the node's blocks, in block order.
pub fn attribute_addresses(allocated: u32, block_pools: &[&str]) -> BTreeMap<String, u64> {
    let mut shares = BTreeMap::new();
    let Some(count) = u32::try_from(block_pools.len()).ok().filter(|n| *n > 0) else { return shares };
    let each = allocated / count;
    let remainder = allocated % count;
    for (index, pool) in block_pools.iter().enumerate() {
        let extra = if index == 0 { remainder } else { 0 };
        *shares.entry((*pool).to_string()).or_insert(0) += u64::from(each + extra);
    }
    shares
}

/// The status of every pool, given blocks and addresses in use per pool.
///
/// Conditions carry the epoch as their transition time: the core has no clock. Writers compare
/// conditions with `conditions_equivalent` (which ignores times) and stamp the time themselves.
pub fn pool_statuses(
    checked: &BTreeMap<String, CheckedPool>,
    blocks_in_use: &BTreeMap<String, u32>,
    addresses_in_use: &BTreeMap<String, u64>,
) -> BTreeMap<String, IPPoolStatus> {
    checked
        .values()
        .map(|pool| {
            let (status, reason, message) = match &pool.verdict {
                Verdict::Allocatable => (condition_status::TRUE, "PoolValid", "the pool hands out blocks".to_string()),
                Verdict::Disabled => (
                    condition_status::FALSE,
                    "PoolDisabled",
                    "the pool is disabled: existing blocks keep working, no new blocks are handed out".to_string(),
                ),
                Verdict::Invalid { reason, message } => (condition_status::FALSE, *reason, message.clone()),
            };
            let condition = Condition {
                type_: CONDITION_ALLOCATABLE.into(),
                status: status.into(),
                reason: reason.into(),
                message,
                observed_generation: pool.generation,
                last_transition_time: Time(k8s_openapi::jiff::Timestamp::UNIX_EPOCH),
            };
            let status = IPPoolStatus {
                observed_generation: pool.generation,
                conditions: vec![condition],
                blocks_in_use: blocks_in_use.get(&pool.name).copied().unwrap_or(0),
                addresses_in_use: addresses_in_use.get(&pool.name).copied().unwrap_or(0),
            };
            (pool.name.clone(), status)
        })
        .collect()
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;
    use crate::core::testkit::{Meta, PoolExt, pool};

    fn reason(status: &IPPoolStatus) -> (&str, &str) {
        let condition = &status.conditions[0];
        (condition.status.as_str(), condition.reason.as_str())
    }

    #[test]
    fn pools_get_allocatable_with_a_reason() {
        type Case = (&'static str, Vec<IPPool>, &'static str, (&'static str, &'static str));
        let cases: Vec<Case> = vec![
            ("valid", vec![pool("a", "10.0.0.0/16")], "a", ("True", "PoolValid")),
            ("disabled", vec![pool("a", "10.0.0.0/16").disabled()], "a", ("False", "PoolDisabled")),
            ("not a cidr", vec![pool("a", "10.0.0/16")], "a", ("False", "InvalidCIDR")),
            ("host bits", vec![pool("a", "10.0.0.1/16")], "a", ("False", "InvalidCIDR")),
            ("both encaps", vec![pool("a", "10.0.0.0/16").vxlan().ipip()], "a", ("False", "InvalidPool")),
            ("bad selector", vec![pool("a", "10.0.0.0/16").node_selector("a ==")], "a", ("False", "InvalidPool")),
            (
                "younger overlap loses",
                vec![pool("b", "10.0.0.0/24").created(20), pool("a", "10.0.0.0/16").created(10)],
                "b",
                ("False", "CIDROverlap"),
            ),
            (
                "older overlap wins",
                vec![pool("b", "10.0.0.0/24").created(20), pool("a", "10.0.0.0/16").created(10)],
                "a",
                ("True", "PoolValid"),
            ),
            (
                "same age: name decides",
                vec![pool("b", "10.0.0.0/16").created(10), pool("a", "10.0.0.0/24").created(10)],
                "b",
                ("False", "CIDROverlap"),
            ),
            (
                "an invalid pool does not knock out a valid one",
                vec![pool("a", "10.0.0.0/16").created(20), pool("b", "10.0.0.0/24").created(10).vxlan().ipip()],
                "a",
                ("True", "PoolValid"),
            ),
        ];
        for (case, pools, name, expected) in cases {
            let (checked, problems) = check_pools(&pools);
            let statuses = pool_statuses(&checked, &BTreeMap::new(), &BTreeMap::new());
            assert_eq!(reason(&statuses[name]), expected, "{case}");
            let reported = problems.iter().any(|p| p.name == name);
            assert_eq!(reported, expected.0 == "False" && expected.1 != "PoolDisabled", "{case}: {problems:?}");
        }
    }

    #[test]
    fn usable_pools_hand_out_blocks_and_invalid_ones_do_not() {
        let (checked, _) = check_pools(&[
            pool("ok", "10.0.0.0/16"),
            pool("off", "10.1.0.0/16").disabled(),
            pool("bad", "10.2.0.0/33"),
        ]);
        let handing_out: Vec<&str> =
            checked.values().filter(|p| p.hands_out_blocks()).map(|p| p.name.as_str()).collect();
        assert_eq!(handing_out, ["ok"]);
        assert!(checked["off"].is_valid());
        assert!(!checked["bad"].is_valid());
    }

    #[test]
    fn addresses_split_evenly_over_a_nodes_blocks() {
        assert_eq!(attribute_addresses(10, &["a", "b", "a"]), BTreeMap::from([("a".into(), 7), ("b".into(), 3)]));
        assert_eq!(attribute_addresses(5, &[]), BTreeMap::new());
    }

    #[test]
    fn status_counts_what_it_is_given() {
        let (checked, _) = check_pools(&[pool("a", "10.0.0.0/16")]);
        let statuses = pool_statuses(&checked, &BTreeMap::from([("a".into(), 3)]), &BTreeMap::from([("a".into(), 42)]));
        assert_eq!((statuses["a"].blocks_in_use, statuses["a"].addresses_in_use), (3, 42));
    }
}
