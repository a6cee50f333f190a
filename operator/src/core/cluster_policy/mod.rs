//! The network-policy-api kinds (ClusterNetworkPolicy v1alpha2, AdminNetworkPolicy and
//! BaselineAdminNetworkPolicy v1alpha1) → gingham GlobalNetworkPolicies in the built-in tiers
//! `kube-admin` (before the `default` tier, where Kubernetes NetworkPolicy lives) and
//! `kube-baseline` (after it), as Calico maps them.
//!
//! | source | tier | name | order |
//! |---|---|---|---|
//! | ClusterNetworkPolicy `tier: Admin` | `kube-admin` | `kube-admin.cnp.<name>` | `priority` |
//! | AdminNetworkPolicy | `kube-admin` | `kube-admin.anp.<name>` | `priority` |
//! | ClusterNetworkPolicy `tier: Baseline` | `kube-baseline` | `kube-baseline.cnp.<name>` | `priority` |
//! | BaselineAdminNetworkPolicy `default` | `kube-baseline` | `kube-baseline.banp.default` | 1001 (after every CNP) |
//!
//! Both tiers' default action is Pass, so a subject no rule decides goes on to the next tier, and
//! after the last one it is allowed, as the API says. A NetworkPolicy that selects a pod decides
//! for it in the `default` tier (its default action is Deny), so the baseline only ever sees pods
//! no NetworkPolicy selects, in that direction.
//!
//! Two steps, each pure: [`normalize`] reads each kind into one [`ClusterPolicy`] and reports what
//! the API server's schema would have refused (the file datastore has no schema), and
//! [`translate`] writes the GlobalNetworkPolicy. Node peers resolve against the nodes as observed
//! at translation time: the engine translates again when a node changes.

pub mod normalize;
pub mod translate;

#[cfg(test)]
mod tests;

use gingham_crds::api::policy::Action;
use gingham_crds::netpolapi::NamespacedPod;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;

/// The tier before NetworkPolicy.
pub const ADMIN_TIER: &str = "kube-admin";
/// The tier after NetworkPolicy.
pub const BASELINE_TIER: &str = "kube-baseline";
/// The order of the BaselineAdminNetworkPolicy: after every Baseline ClusterNetworkPolicy, whose
/// priorities end at 1000.
pub const BANP_ORDER: f64 = 1001.0;

/// Which kind a translation comes from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum SourceKind {
    /// policy.networking.k8s.io/v1alpha2 ClusterNetworkPolicy.
    ClusterNetworkPolicy,
    /// policy.networking.k8s.io/v1alpha1 AdminNetworkPolicy.
    AdminNetworkPolicy,
    /// policy.networking.k8s.io/v1alpha1 BaselineAdminNetworkPolicy.
    BaselineAdminNetworkPolicy,
}

impl SourceKind {
    /// The kind as written in manifests.
    pub fn kind(self) -> &'static str {
        match self {
            Self::ClusterNetworkPolicy => "ClusterNetworkPolicy",
            Self::AdminNetworkPolicy => "AdminNetworkPolicy",
            Self::BaselineAdminNetworkPolicy => "BaselineAdminNetworkPolicy",
        }
    }

    /// The `apiVersion` of the kind.
    pub fn api_version(self) -> &'static str {
        match self {
            Self::ClusterNetworkPolicy => "policy.networking.k8s.io/v1alpha2",
            Self::AdminNetworkPolicy | Self::BaselineAdminNetworkPolicy => "policy.networking.k8s.io/v1alpha1",
        }
    }

    /// The short name in the translation's name.
    fn short(self) -> &'static str {
        match self {
            Self::ClusterNetworkPolicy => "cnp",
            Self::AdminNetworkPolicy => "anp",
            Self::BaselineAdminNetworkPolicy => "banp",
        }
    }
}

/// The tier a translation goes into.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum KubeTier {
    /// `kube-admin`.
    Admin,
    /// `kube-baseline`.
    Baseline,
}

impl KubeTier {
    /// The gingham tier's name.
    pub fn name(self) -> &'static str {
        match self {
            Self::Admin => ADMIN_TIER,
            Self::Baseline => BASELINE_TIER,
        }
    }
}

/// The GlobalNetworkPolicy name of a translation: `<tier>.<cnp|anp|banp>.<name>`, which also
/// follows the `tier.name` rule of policies outside the `default` tier.
pub fn translated_name(kind: SourceKind, tier: KubeTier, name: &str) -> String {
    format!("{}.{}.{name}", tier.name(), kind.short())
}

/// Whether a GlobalNetworkPolicy name is reserved for translations. The compiler ignores observed
/// GlobalNetworkPolicies with such names and uses its own fresh translations.
pub fn is_translated_name(name: &str) -> bool {
    [ADMIN_TIER, BASELINE_TIER].iter().any(|tier| {
        name.strip_prefix(tier)
            .and_then(|rest| rest.strip_prefix('.'))
            .is_some_and(|rest| ["cnp.", "anp.", "banp."].iter().any(|short| rest.starts_with(short)))
    })
}

/// One policy of any of the three kinds, read into one shape.
#[derive(Clone, Debug, PartialEq)]
pub struct ClusterPolicy {
    /// The source kind.
    pub kind: SourceKind,
    /// The source object's name.
    pub name: String,
    /// The source object's uid (for the owner reference), when it has one.
    pub uid: Option<String>,
    /// The tier the translation goes into.
    pub tier: KubeTier,
    /// The order within the tier.
    pub order: f64,
    /// The pods it applies to.
    pub subject: Subject,
    /// Ingress rules, in precedence order.
    pub ingress: Vec<Rule>,
    /// Egress rules, in precedence order.
    pub egress: Vec<Rule>,
}

/// The pods a policy applies to.
#[derive(Clone, Debug, PartialEq)]
pub enum Subject {
    /// Every pod of the namespaces selected.
    Namespaces(LabelSelector),
    /// The pods selected in the namespaces selected.
    Pods(NamespacedPod),
}

/// One rule.
#[derive(Clone, Debug, PartialEq)]
pub struct Rule {
    /// The rule's name (for the translation's rule metadata).
    pub name: String,
    /// The gingham action: Accept and Allow are Allow.
    pub action: Action,
    /// The peers, ORed.
    pub peers: Vec<Peer>,
    /// The destination ports, ORed; `None`: any protocol and port.
    pub ports: Option<Vec<PortMatch>>,
    /// Part of the rule cannot be matched (a peer with no field or several, domain names, a bad
    /// CIDR or port). The API says to fail closed: an Allow rule then matches nothing, and a Deny
    /// or Pass rule denies everything.
    pub unusable: bool,
}

/// One peer.
#[derive(Clone, Debug, PartialEq)]
pub enum Peer {
    /// Every pod of the namespaces selected.
    Namespaces(LabelSelector),
    /// The pods selected in the namespaces selected.
    Pods(NamespacedPod),
    /// The nodes selected (their addresses).
    Nodes(LabelSelector),
    /// CIDRs.
    Networks(Vec<String>),
}

/// One destination port match.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum PortMatch {
    /// Every port of a protocol.
    Protocol(String),
    /// A protocol's ports `first..=last` (one port when equal).
    Ports(String, u16, u16),
    /// A container port by name, of whatever protocol it has.
    Named(String),
}
