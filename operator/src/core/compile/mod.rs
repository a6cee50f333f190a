//! Policy compilation: gingham NetworkPolicies (including the `knp.*` translations) and
//! GlobalNetworkPolicies become, for each node, the ordered policy lists of its endpoints, the
//! compiled rules, and the selector memberships as named sets. The agent evaluates no selectors.
//!
//! Semantics the agent implements over this output: for each direction, an endpoint's policies are
//! grouped by tier, tiers in their order, policies within a tier by `order`, then name; the first
//! matching Allow or Deny decides, Log goes on, Pass skips the rest of the tier. A tier whose
//! policies apply but none decides ends with its default action (Deny, or Pass to the next tier);
//! past the last tier, and when no policy applies at all, the traffic is allowed (see
//! [`gingham_crds::api::nodenetwork::TierPolicies`]).
//!
//! A policy whose tier does not exist is not applied (and reported); [`Tiers`] holds the tiers
//! that exist, built-in or not.

pub mod accounts;
mod fxhash;
pub mod index;
pub mod rules;
pub mod services;
pub mod sets;

use std::collections::BTreeMap;
use std::sync::Arc;

use gingham_crds::api::policy::{PolicyScope, PolicyType, PolicyView};
use gingham_crds::api::tier::{TierRank, builtin_ranks};
use gingham_crds::api::{GlobalNetworkPolicy, GlobalNetworkPolicySpec, NetworkPolicy, Tier};
use gingham_crds::selector::Selector;
use gingham_crds::validate::{validate_global_network_policy, validate_network_policy, validate_policy_tier};

use self::index::{Applies, HostMode, PolicyEntry};
use self::rules::{compile_policy, policy_selector};
use super::ObjectProblem;

/// The compiled name of a namespaced policy.
pub fn namespaced_name(namespace: &str, name: &str) -> String {
    format!("{namespace}/{name}")
}

/// The compiled name of a global policy.
pub fn global_name(name: &str) -> String {
    format!("global/{name}")
}

/// The tiers that exist, by name: the built-in ones and every Tier object (an object of a built-in
/// tier may change its default action).
#[derive(Clone, Debug, PartialEq)]
pub struct Tiers(BTreeMap<String, TierRank>);

impl Default for Tiers {
    fn default() -> Self {
        Self(builtin_ranks().map(|rank| (rank.name.clone(), rank)).collect())
    }
}

impl Tiers {
    /// The built-in tiers and `objects`.
    pub fn new<'a>(objects: impl IntoIterator<Item = &'a Tier>) -> Self {
        let mut tiers = Self::default();
        for tier in objects {
            let rank = tier.rank();
            tiers.0.insert(rank.name.clone(), rank);
        }
        tiers
    }

    /// The tier named `name`, if it exists.
    pub fn get(&self, name: &str) -> Option<&TierRank> {
        self.0.get(name)
    }
}

fn problem(kind: &str, namespace: Option<&str>, name: &str, reason: &str, message: String) -> ObjectProblem {
    ObjectProblem {
        kind: kind.into(),
        namespace: namespace.map(Into::into),
        name: name.into(),
        reason: reason.into(),
        message,
    }
}

fn entry(
    compiled_name: String,
    view: &PolicyView<'_>,
    applies: Applies,
    tiers: &Tiers,
    report: &dyn Fn(&str, String) -> ObjectProblem,
) -> (Option<PolicyEntry>, Vec<ObjectProblem>) {
    let Some(tier) = tiers.get(view.tier).cloned() else {
        let message = format!(
            "spec.tier: the tier {:?} does not exist; the policy is not applied (create the Tier or move the policy to an existing one)",
            view.tier
        );
        return (None, vec![report("MissingTier", message)]);
    };
    let selector = match policy_selector(view) {
        Ok(selector) => selector,
        Err(error) => return (None, vec![report("InvalidPolicy", format!("{error}; the policy is not applied"))]),
    };
    let (template, messages) = compile_policy(&compiled_name, view);
    let problems = messages.into_iter().map(|m| report("UnsupportedRule", m)).collect();
    let entry = PolicyEntry {
        name: Arc::from(compiled_name),
        tier,
        order: view.order,
        selector,
        applies,
        ingress: view.types.contains(&PolicyType::Ingress),
        egress: view.types.contains(&PolicyType::Egress),
        host: HostMode::Normal,
        compiled: template.policy.into(),
        sets: template.sets,
    };
    (Some(entry), problems)
}

/// Compiles a namespaced policy; `None` when it cannot apply at all (problems say why).
pub fn network_policy_entry(policy: &NetworkPolicy, tiers: &Tiers) -> (Option<PolicyEntry>, Vec<ObjectProblem>) {
    let namespace = policy.metadata.namespace.as_deref().unwrap_or("default");
    let name = policy.metadata.name.as_deref().unwrap_or_default();
    let report = |reason: &str, message: String| problem("NetworkPolicy", Some(namespace), name, reason, message);
    let mut problems: Vec<ObjectProblem> = Vec::new();
    let checked = [validate_policy_tier(name, policy.spec.tier.as_deref()), validate_network_policy(&policy.spec)];
    problems
        .extend(checked.into_iter().filter_map(Result::err).flatten().map(|e| report("InvalidPolicy", e.to_string())));
    let (entry, more) =
        entry(namespaced_name(namespace, name), &policy.view(), Applies::Namespace(namespace.into()), tiers, &report);
    problems.extend(more);
    (entry, problems)
}

/// Compiles a global policy; `None` when it cannot apply at all (problems say why).
pub fn global_policy_entry(policy: &GlobalNetworkPolicy, tiers: &Tiers) -> (Option<PolicyEntry>, Vec<ObjectProblem>) {
    let name = policy.metadata.name.as_deref().unwrap_or_default();
    let report = |reason: &str, message: String| problem("GlobalNetworkPolicy", None, name, reason, message);
    let mut problems: Vec<ObjectProblem> = Vec::new();
    let checked =
        [validate_policy_tier(name, policy.spec.tier.as_deref()), validate_global_network_policy(&policy.spec)];
    problems
        .extend(checked.into_iter().filter_map(Result::err).flatten().map(|e| report("InvalidPolicy", e.to_string())));
    let view = policy.view();
    let applies = match view.scope {
        PolicyScope::NamespaceSelector(Some(text)) => match Selector::parse(text) {
            Ok(selector) => Applies::Namespaces(Some(selector)),
            Err(error) => {
                problems.push(report(
                    "InvalidPolicy",
                    format!("spec.namespaceSelector: {error}; the policy is not applied"),
                ));
                return (None, problems);
            }
        },
        PolicyScope::NamespaceSelector(None) | PolicyScope::Namespace(_) => Applies::Namespaces(None),
    };
    let (entry, more) = entry(global_name(name), &view, applies, tiers, &report);
    problems.extend(more);
    let host = host_mode(&policy.spec);
    (entry.map(|entry| PolicyEntry { host, ..entry }), problems)
}

/// Where a global policy applies on host endpoints: `preDNAT` and `doNotTrack` first (each needs
/// `applyOnForward`, which validation checks), then `applyOnForward`.
fn host_mode(spec: &GlobalNetworkPolicySpec) -> HostMode {
    match (spec.pre_dnat, spec.do_not_track, spec.apply_on_forward) {
        (Some(true), _, _) => HostMode::PreDnat,
        (_, Some(true), _) => HostMode::DoNotTrack,
        (_, _, Some(true)) => HostMode::ApplyOnForward,
        _ => HostMode::Normal,
    }
}
