//! `Tier`: an ordered group of policies (Calico's tiers). Tiers are evaluated in `order`; within a
//! tier, policies by their own `order`, then by name. `Pass` skips the rest of a tier, and an
//! endpoint that some policy of a tier selects, where none of them decides, gets the tier's
//! `defaultAction`.
//!
//! Three tiers always exist, with or without an object ([`BUILTIN_TIERS`]): `kube-admin` (where
//! ClusterNetworkPolicy's Admin tier and AdminNetworkPolicy go), `default` (Calico and Kubernetes
//! NetworkPolicy) and `kube-baseline` (ClusterNetworkPolicy's Baseline tier and
//! BaselineAdminNetworkPolicy). An object of a built-in tier may change its `defaultAction`, not its
//! order.

use kube::{CustomResource, KubeSchema};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// A policy tier.
#[derive(CustomResource, KubeSchema, Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[kube(
    group = "gingham.dev",
    version = "v1",
    kind = "Tier",
    doc = "An ordered group of policies: tiers are evaluated in order, Pass goes on to the next tier.",
    plural = "tiers",
    singular = "tier",
    shortname = "gtier",
    category = "gingham",
    printcolumn = r#"{"name":"ORDER","type":"number","jsonPath":".spec.order"}"#,
    printcolumn = r#"{"name":"DEFAULT","type":"string","jsonPath":".spec.defaultAction"}"#,
    printcolumn = r#"{"name":"AGE","type":"date","jsonPath":".metadata.creationTimestamp"}"#,
    derive = "PartialEq",
    derive = "Default"
)]
#[serde(rename_all = "camelCase")]
pub struct TierSpec {
    /// Lower orders are evaluated first; a tier without an order comes last.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub order: Option<f64>,
    /// What happens to traffic of an endpoint some policy of the tier selects when none of them
    /// decides: `Deny` (the default) or `Pass` to the next tier.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub default_action: Option<TierDefaultAction>,
}

/// What a tier does when none of its policies decides.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
pub enum TierDefaultAction {
    /// Drop the traffic.
    #[default]
    Deny,
    /// Go on to the next tier (past the last one: allow).
    Pass,
}

/// The tier of policies that name none.
pub const DEFAULT_TIER: &str = "default";
/// The tier of ClusterNetworkPolicy's Admin tier and of AdminNetworkPolicy, before `default`.
pub const KUBE_ADMIN_TIER: &str = "kube-admin";
/// The tier of ClusterNetworkPolicy's Baseline tier and of BaselineAdminNetworkPolicy, after
/// `default`.
pub const KUBE_BASELINE_TIER: &str = "kube-baseline";

/// A tier as the compiler ranks it: name, order and default action.
#[derive(Clone, Debug, PartialEq)]
pub struct TierRank {
    /// The tier's name.
    pub name: String,
    /// Its order (`None` sorts last).
    pub order: Option<f64>,
    /// What happens when none of its policies decides.
    pub default_action: TierDefaultAction,
}

impl TierRank {
    /// Evaluation order of two tiers: by order (none last), then by name.
    pub fn evaluation_order(&self, other: &Self) -> std::cmp::Ordering {
        let key = |t: &Self| (t.order.is_none(), t.order.unwrap_or(0.0));
        let ((a_none, a), (b_none, b)) = (key(self), key(other));
        a_none.cmp(&b_none).then(a.total_cmp(&b)).then_with(|| self.name.cmp(&other.name))
    }
}

/// The tiers that always exist: name, fixed order and default action when no object says
/// otherwise. The orders are Calico's.
pub const BUILTIN_TIERS: [(&str, f64, TierDefaultAction); 3] = [
    (KUBE_ADMIN_TIER, 1_000.0, TierDefaultAction::Pass),
    (DEFAULT_TIER, 1_000_000.0, TierDefaultAction::Deny),
    (KUBE_BASELINE_TIER, 10_000_000.0, TierDefaultAction::Pass),
];

/// The fixed order of a built-in tier; `None` for any other name.
pub fn builtin_order(name: &str) -> Option<f64> {
    BUILTIN_TIERS.iter().find(|(builtin, ..)| *builtin == name).map(|(_, order, _)| *order)
}

/// The tier a policy's `spec.tier` names: absent or empty is `default`.
pub fn policy_tier(tier: Option<&str>) -> &str {
    tier.filter(|t| !t.is_empty()).unwrap_or(DEFAULT_TIER)
}

impl Tier {
    /// The tier as the compiler ranks it: a built-in tier keeps its fixed order.
    pub fn rank(&self) -> TierRank {
        let name = self.metadata.name.clone().unwrap_or_default();
        let order = builtin_order(&name).or(self.spec.order);
        let builtin_action = BUILTIN_TIERS.iter().find(|(b, ..)| *b == name).map(|(_, _, action)| *action);
        let default_action = self.spec.default_action.or(builtin_action).unwrap_or_default();
        TierRank { name, order, default_action }
    }
}

/// The ranks of the built-in tiers that no object overrides.
pub fn builtin_ranks() -> impl Iterator<Item = TierRank> {
    BUILTIN_TIERS.iter().map(|(name, order, default_action)| TierRank {
        name: (*name).to_string(),
        order: Some(*order),
        default_action: *default_action,
    })
}
