//! `NetworkSet` (namespaced) and `GlobalNetworkSet`: labelled lists of networks that policy rules
//! select by label, as they select pods (Calico's network sets). Calico Enterprise's
//! `allowedEgressDomains` is refused (schema and validator): gingham has no DNS policy, and
//! accepting the field while ignoring it would let traffic the user meant to allow be dropped.

use kube::{CustomResource, KubeSchema};
use serde::{Deserialize, Serialize};

use super::value::{Net, Wire};

/// CEL: `allowedEgressDomains` (Calico Enterprise) is not implemented.
const NO_EGRESS_DOMAINS: &str = "!has(self.allowedEgressDomains)";
/// The message of [`NO_EGRESS_DOMAINS`] (the Rust validator says the same).
pub const EGRESS_DOMAINS_REFUSED: &str = "allowedEgressDomains is a Calico Enterprise feature gingham does not implement: \
     remove it and list the domains' addresses in nets";

/// A namespaced network set: its nets are members of the address sets of the namespace's policy
/// rules whose selector matches its labels.
#[derive(CustomResource, KubeSchema, Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[kube(
    group = "gingham.dev",
    version = "v1",
    kind = "NetworkSet",
    doc = "A namespaced, labelled set of networks that policy rules select by label, as they select pods.",
    plural = "networksets",
    singular = "networkset",
    shortname = "netsets",
    category = "gingham",
    namespaced,
    printcolumn = r#"{"name":"NETS","type":"string","jsonPath":".spec.nets"}"#,
    printcolumn = r#"{"name":"AGE","type":"date","jsonPath":".metadata.creationTimestamp"}"#,
    derive = "PartialEq",
    derive = "Default"
)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = Rule::new(NO_EGRESS_DOMAINS).message(EGRESS_DOMAINS_REFUSED))]
pub struct NetworkSetSpec {
    /// The set's networks: IPv4 or IPv6 addresses or CIDRs (host bits are masked off). Checked by
    /// the Rust validator (webhook): a CEL rule over a list of unbounded length would exceed the
    /// API server's cost budget.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub nets: Vec<Wire<Net>>,
    /// Calico Enterprise's domain names: refused, gingham has no DNS policy.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub allowed_egress_domains: Option<Vec<String>>,
}

/// A cluster-wide network set: its nets are members of the address sets of global policies' rules
/// (and of rules whose `namespaceSelector` includes `global()`) whose selector matches its labels.
#[derive(CustomResource, KubeSchema, Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[kube(
    group = "gingham.dev",
    version = "v1",
    kind = "GlobalNetworkSet",
    doc = "A cluster-wide, labelled set of networks that policy rules select by label, as they select pods.",
    plural = "globalnetworksets",
    singular = "globalnetworkset",
    shortname = "gnetsets",
    category = "gingham",
    printcolumn = r#"{"name":"NETS","type":"string","jsonPath":".spec.nets"}"#,
    printcolumn = r#"{"name":"AGE","type":"date","jsonPath":".metadata.creationTimestamp"}"#,
    derive = "PartialEq",
    derive = "Default"
)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = Rule::new(NO_EGRESS_DOMAINS).message(EGRESS_DOMAINS_REFUSED))]
pub struct GlobalNetworkSetSpec {
    /// The set's networks: IPv4 or IPv6 addresses or CIDRs (host bits are masked off). Checked by
    /// the Rust validator (webhook): a CEL rule over a list of unbounded length would exceed the
    /// API server's cost budget.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub nets: Vec<Wire<Net>>,
    /// Calico Enterprise's domain names: refused, gingham has no DNS policy.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub allowed_egress_domains: Option<Vec<String>>,
}

/// What the compiler reads of a network set of either kind.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct NetworkSetView<'a> {
    /// The nets as written.
    pub nets: &'a [Wire<Net>],
    /// The refused Enterprise field, if set.
    pub allowed_egress_domains: Option<&'a [String]>,
}

impl NetworkSetSpec {
    /// The spec as the compiler and the validator read it.
    pub fn view(&self) -> NetworkSetView<'_> {
        NetworkSetView { nets: &self.nets, allowed_egress_domains: self.allowed_egress_domains.as_deref() }
    }
}

impl GlobalNetworkSetSpec {
    /// The spec as the compiler and the validator read it.
    pub fn view(&self) -> NetworkSetView<'_> {
        NetworkSetView { nets: &self.nets, allowed_egress_domains: self.allowed_egress_domains.as_deref() }
    }
}
