//! `NetworkPolicy` (namespaced) and `GlobalNetworkPolicy`: Calico's policy model, shared rule types.

use std::collections::BTreeMap;

use kube::{CustomResource, KubeSchema};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::common::{Port, Protocol};
use super::tier::policy_tier;

/// CEL: numeric ports (in any of the four port lists) need a protocol of TCP, UDP or SCTP.
const NUMERIC_PORTS_NEED_PROTOCOL: &str = "\
    !([has(self.source) && has(self.source.ports) ? self.source.ports : [], \
       has(self.source) && has(self.source.notPorts) ? self.source.notPorts : [], \
       has(self.destination) && has(self.destination.ports) ? self.destination.ports : [], \
       has(self.destination) && has(self.destination.notPorts) ? self.destination.notPorts : []] \
      .exists(l, l.exists(p, string(p).matches('^[0-9]')))) \
    || (has(self.protocol) && string(self.protocol).lowerAscii() in ['tcp', 'udp', 'sctp', '6', '17', '132'])";

/// CEL: ICMP is an IPv4 protocol and ICMPv6 an IPv6 one.
const ICMP_MATCHES_IP_VERSION: &str = "\
    !(has(self.protocol) && has(self.ipVersion) && \
      ((string(self.protocol).lowerAscii() in ['icmp', '1'] && self.ipVersion != 4) || (string(self.protocol).lowerAscii() in ['icmpv6', '58'] && self.ipVersion != 6)))";

/// CEL: icmp/notICMP need protocol ICMP or ICMPv6.
const ICMP_FIELDS_NEED_ICMP: &str = "\
    !(has(self.icmp) || has(self.notICMP)) || \
    (has(self.protocol) && string(self.protocol).lowerAscii() in ['icmp', 'icmpv6', '1', '58'])";

/// A namespaced policy: applies to endpoints in its namespace chosen by `selector`.
#[derive(CustomResource, KubeSchema, Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[kube(
    group = "gingham.dev",
    version = "v1",
    kind = "NetworkPolicy",
    doc = "A namespaced network policy in Calico's model: ordered rules with Allow, Deny, Log and Pass.",
    plural = "networkpolicies",
    singular = "networkpolicy",
    shortname = "gnetpol",
    category = "gingham",
    namespaced,
    printcolumn = r#"{"name":"ORDER","type":"number","jsonPath":".spec.order"}"#,
    printcolumn = r#"{"name":"SELECTOR","type":"string","jsonPath":".spec.selector"}"#,
    printcolumn = r#"{"name":"AGE","type":"date","jsonPath":".metadata.creationTimestamp"}"#,
    derive = "PartialEq",
    derive = "Default"
)]
#[serde(rename_all = "camelCase")]
pub struct NetworkPolicySpec {
    /// The policy's tier (absent: `default`). In a tier other than `default` the policy is named
    /// `<tier>.<name>`, and the tier must exist.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tier: Option<String>,
    /// Lower orders apply first; policies without an order come last.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub order: Option<f64>,
    /// Which endpoints of the namespace this policy applies to. Empty: all of them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub selector: Option<String>,
    /// Which service accounts' endpoints this policy applies to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service_account_selector: Option<String>,
    /// Which directions this policy governs. Default: Ingress, plus Egress when egress rules exist.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub types: Option<Vec<PolicyType>>,
    /// Rules for traffic arriving at the selected endpoints, in order.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ingress: Option<Vec<PolicyRule>>,
    /// Rules for traffic leaving the selected endpoints, in order.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub egress: Option<Vec<PolicyRule>>,
    /// Performance hints (accepted for compatibility).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub performance_hints: Option<Vec<String>>,
}

/// A cluster-wide policy: applies to endpoints in every namespace chosen by `namespaceSelector`.
#[derive(CustomResource, KubeSchema, Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[kube(
    group = "gingham.dev",
    version = "v1",
    kind = "GlobalNetworkPolicy",
    doc = "A cluster-wide network policy in Calico's model, selecting endpoints across namespaces.",
    plural = "globalnetworkpolicies",
    singular = "globalnetworkpolicy",
    shortname = "gnp",
    category = "gingham",
    printcolumn = r#"{"name":"ORDER","type":"number","jsonPath":".spec.order"}"#,
    printcolumn = r#"{"name":"SELECTOR","type":"string","jsonPath":".spec.selector"}"#,
    printcolumn = r#"{"name":"AGE","type":"date","jsonPath":".metadata.creationTimestamp"}"#,
    derive = "PartialEq",
    derive = "Default"
)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = Rule::new("!(has(self.preDNAT) && self.preDNAT && has(self.doNotTrack) && self.doNotTrack)")
    .message("preDNAT and doNotTrack cannot both be true: keep one"))]
#[x_kube(validation = Rule::new("!((has(self.preDNAT) && self.preDNAT) || (has(self.doNotTrack) && self.doNotTrack)) || (has(self.applyOnForward) && self.applyOnForward)")
    .message("applyOnForward must be true when preDNAT or doNotTrack is true"))]
pub struct GlobalNetworkPolicySpec {
    /// The policy's tier (absent: `default`). In a tier other than `default` the policy is named
    /// `<tier>.<name>`, and the tier must exist.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tier: Option<String>,
    /// Lower orders apply first; policies without an order come last.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub order: Option<f64>,
    /// Which endpoints this policy applies to. Empty: all of them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub selector: Option<String>,
    /// Which namespaces' endpoints this policy applies to, by namespace labels.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace_selector: Option<String>,
    /// Which service accounts' endpoints this policy applies to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service_account_selector: Option<String>,
    /// Which directions this policy governs. Default: Ingress, plus Egress when egress rules exist.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub types: Option<Vec<PolicyType>>,
    /// Rules for traffic arriving at the selected endpoints, in order.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ingress: Option<Vec<PolicyRule>>,
    /// Rules for traffic leaving the selected endpoints, in order.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub egress: Option<Vec<PolicyRule>>,
    /// Untracked policy: applies to host endpoints only, in the raw hooks, before connection
    /// tracking; an allowed packet is not tracked and skips every later policy. Needs
    /// `applyOnForward`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub do_not_track: Option<bool>,
    /// Apply before DNAT: applies to host endpoints only, to traffic in through them (ingress
    /// rules only), forwarded traffic included. Needs `applyOnForward`.
    #[serde(default, rename = "preDNAT", skip_serializing_if = "Option::is_none")]
    pub pre_dnat: Option<bool>,
    /// Also apply to traffic forwarded through the host endpoints the policy selects (not only
    /// to traffic to and from the host itself).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub apply_on_forward: Option<bool>,
    /// Performance hints (accepted for compatibility).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub performance_hints: Option<Vec<String>>,
}

/// A traffic direction a policy governs.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, JsonSchema)]
pub enum PolicyType {
    /// Traffic arriving at the endpoint.
    Ingress,
    /// Traffic leaving the endpoint.
    Egress,
}

/// What a matching rule does.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, JsonSchema)]
pub enum Action {
    /// Accept the packet; no later rule or policy is consulted.
    #[default]
    Allow,
    /// Drop the packet.
    Deny,
    /// Log the packet and go on to the next rule.
    Log,
    /// Skip the rest of this tier's policies and go on to the next tier (past the last: allow).
    Pass,
}

/// One policy rule: a match and an action.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, KubeSchema)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = Rule::new(NUMERIC_PORTS_NEED_PROTOCOL)
    .message("rules with numeric ports or port ranges must set protocol to TCP, UDP or SCTP"))]
#[x_kube(validation = Rule::new(ICMP_MATCHES_IP_VERSION)
    .message("protocol ICMP requires ipVersion 4 and ICMPv6 requires ipVersion 6"))]
#[x_kube(validation = Rule::new(ICMP_FIELDS_NEED_ICMP)
    .message("icmp and notICMP require protocol ICMP or ICMPv6"))]
pub struct PolicyRule {
    /// What to do with matching traffic: Allow, Deny, Log or Pass.
    pub action: Action,
    /// Match only this IP version (4 or 6).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 4, max = 6))]
    #[x_kube(validation = Rule::new("self == 4 || self == 6").message("ipVersion must be 4 or 6"))]
    pub ip_version: Option<u8>,
    /// Match only this protocol.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub protocol: Option<Protocol>,
    /// Match every protocol but this one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub not_protocol: Option<Protocol>,
    /// Match ICMP type and code.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub icmp: Option<IcmpFields>,
    /// Match everything but this ICMP type and code.
    #[serde(default, rename = "notICMP", skip_serializing_if = "Option::is_none")]
    pub not_icmp: Option<IcmpFields>,
    /// Conditions on the source.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<EntityRule>,
    /// Conditions on the destination.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub destination: Option<EntityRule>,
    /// Free-form annotations on the rule.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metadata: Option<RuleMetadata>,
}

/// Annotations attached to a rule.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct RuleMetadata {
    /// Key-value annotations.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub annotations: Option<BTreeMap<String, String>>,
}

/// ICMP type and code to match.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, KubeSchema)]
#[x_kube(validation = Rule::new("!has(self.code) || has(self.type)").message("an ICMP code needs an ICMP type: add type"))]
pub struct IcmpFields {
    /// The ICMP type (0-254).
    #[serde(default, rename = "type", skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0, max = 254))]
    pub type_: Option<u8>,
    /// The ICMP code (0-255); needs a type.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0, max = 255))]
    pub code: Option<u8>,
}

/// Conditions on one side (source or destination) of a rule; all of them must hold.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, KubeSchema)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = Rule::new("!has(self.services) || (!has(self.ports) && !has(self.notPorts))")
    .message("ports and notPorts cannot be combined with services: the service's ports are used"))]
pub struct EntityRule {
    /// The address is in one of these CIDRs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nets: Option<Vec<String>>,
    /// The address is in none of these CIDRs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub not_nets: Option<Vec<String>>,
    /// The endpoint matches this selector.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub selector: Option<String>,
    /// The endpoint does not match this selector.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub not_selector: Option<String>,
    /// The endpoint's namespace matches this selector (`global()` for non-namespaced endpoints).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace_selector: Option<String>,
    /// The port is one of these (numbers, ranges `"min:max"` or named ports).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ports: Option<Vec<Port>>,
    /// The port is none of these.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub not_ports: Option<Vec<Port>>,
    /// The endpoint runs as one of these service accounts.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service_accounts: Option<ServiceAccountMatch>,
    /// The endpoint backs this Kubernetes service: its EndpointSlices' addresses (and, as a
    /// destination, their ports).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub services: Option<ServiceMatch>,
}

impl EntityRule {
    /// The fields set on this side that Calico refuses next to `services` (a service names its
    /// endpoints itself), in the order they are reported; `ports` and `notPorts` are refused too,
    /// and checked on their own.
    pub fn fields_beside_services(&self) -> impl Iterator<Item = &'static str> {
        [
            ("selector", self.selector.is_some()),
            ("notSelector", self.not_selector.is_some()),
            ("namespaceSelector", self.namespace_selector.is_some()),
            ("serviceAccounts", self.service_accounts.is_some()),
            ("nets", self.nets.is_some()),
            ("notNets", self.not_nets.is_some()),
        ]
        .into_iter()
        .filter_map(|(field, given)| given.then_some(field))
    }
}

/// Service accounts to match.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct ServiceAccountMatch {
    /// Service account names.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub names: Option<Vec<String>>,
    /// A selector over service account labels.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub selector: Option<String>,
}

/// A Kubernetes service to match.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct ServiceMatch {
    /// The service name.
    pub name: String,
    /// The service namespace.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
}

/// The parts shared by namespaced and global policies, as the compiler sees them.
#[derive(Clone, Debug, PartialEq)]
pub struct PolicyView<'a> {
    /// The policy's tier (`default` when it names none).
    pub tier: &'a str,
    /// The policy's order (`None` sorts last).
    pub order: Option<f64>,
    /// The endpoint selector.
    pub selector: Option<&'a str>,
    /// The selector over the labels of the endpoints' service accounts (ANDed with `selector`).
    pub service_account_selector: Option<&'a str>,
    /// The namespace selector (global policies) or the namespace (namespaced ones).
    pub scope: PolicyScope<'a>,
    /// The directions it governs, with Calico's default applied.
    pub types: Vec<PolicyType>,
    /// Ingress rules.
    pub ingress: &'a [PolicyRule],
    /// Egress rules.
    pub egress: &'a [PolicyRule],
}

/// Where a policy's endpoints live.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PolicyScope<'a> {
    /// One namespace (a NetworkPolicy).
    Namespace(&'a str),
    /// Namespaces chosen by a selector, or all when `None` (a GlobalNetworkPolicy).
    NamespaceSelector(Option<&'a str>),
}

/// Calico's default for `types`: Ingress, plus Egress when egress rules are given.
pub fn effective_types(types: Option<&Vec<PolicyType>>, egress: Option<&Vec<PolicyRule>>) -> Vec<PolicyType> {
    match types {
        Some(types) if !types.is_empty() => types.clone(),
        _ if egress.is_some_and(|rules| !rules.is_empty()) => vec![PolicyType::Ingress, PolicyType::Egress],
        _ => vec![PolicyType::Ingress],
    }
}

impl NetworkPolicy {
    /// The policy as the compiler sees it.
    pub fn view(&self) -> PolicyView<'_> {
        let spec = &self.spec;
        PolicyView {
            tier: policy_tier(spec.tier.as_deref()),
            order: spec.order,
            selector: spec.selector.as_deref(),
            service_account_selector: spec.service_account_selector.as_deref(),
            scope: PolicyScope::Namespace(self.metadata.namespace.as_deref().unwrap_or("default")),
            types: effective_types(spec.types.as_ref(), spec.egress.as_ref()),
            ingress: spec.ingress.as_deref().unwrap_or_default(),
            egress: spec.egress.as_deref().unwrap_or_default(),
        }
    }
}

impl GlobalNetworkPolicy {
    /// The policy as the compiler sees it.
    pub fn view(&self) -> PolicyView<'_> {
        let spec = &self.spec;
        PolicyView {
            tier: policy_tier(spec.tier.as_deref()),
            order: spec.order,
            selector: spec.selector.as_deref(),
            service_account_selector: spec.service_account_selector.as_deref(),
            scope: PolicyScope::NamespaceSelector(spec.namespace_selector.as_deref()),
            types: effective_types(spec.types.as_ref(), spec.egress.as_ref()),
            ingress: spec.ingress.as_deref().unwrap_or_default(),
            egress: spec.egress.as_deref().unwrap_or_default(),
        }
    }
}
