//! Policy compilation: gingham NetworkPolicies (including the `knp.*` translations) and
//! GlobalNetworkPolicies become, for each node, the ordered policy lists of its endpoints, the
//! compiled rules, and the selector memberships as named sets. The agent evaluates no selectors.
//!
//! Semantics the agent implements over this output: for each direction, an endpoint's policies are
//! evaluated in order (by `order`, then name); the first matching Allow or Deny decides, Log goes on,
//! Pass skips the remaining policies (and allows, as Calico's default profile does). When policies
//! apply but none decides, the traffic is denied; when none apply, it is allowed.

pub mod accounts;
mod fxhash;
pub mod index;
pub mod rules;
pub mod services;
pub mod sets;

use std::sync::Arc;

use gingham_crds::api::policy::{PolicyScope, PolicyType, PolicyView};
use gingham_crds::api::{GlobalNetworkPolicy, NetworkPolicy};
use gingham_crds::selector::Selector;
use gingham_crds::validate::{validate_global_network_policy, validate_network_policy};

use self::index::{Applies, PolicyEntry};
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
    report: &dyn Fn(&str, String) -> ObjectProblem,
) -> (Option<PolicyEntry>, Vec<ObjectProblem>) {
    let selector = match policy_selector(view) {
        Ok(selector) => selector,
        Err(error) => return (None, vec![report("InvalidPolicy", format!("{error}; the policy is not applied"))]),
    };
    let (template, messages) = compile_policy(&compiled_name, view);
    let problems = messages.into_iter().map(|m| report("UnsupportedRule", m)).collect();
    let entry = PolicyEntry {
        name: Arc::from(compiled_name),
        order: view.order,
        selector,
        applies,
        ingress: view.types.contains(&PolicyType::Ingress),
        egress: view.types.contains(&PolicyType::Egress),
        compiled: template.policy.into(),
        sets: template.sets,
    };
    (Some(entry), problems)
}

/// Compiles a namespaced policy; `None` when it cannot apply at all (problems say why).
pub fn network_policy_entry(policy: &NetworkPolicy) -> (Option<PolicyEntry>, Vec<ObjectProblem>) {
    let namespace = policy.metadata.namespace.as_deref().unwrap_or("default");
    let name = policy.metadata.name.as_deref().unwrap_or_default();
    let report = |reason: &str, message: String| problem("NetworkPolicy", Some(namespace), name, reason, message);
    let mut problems: Vec<ObjectProblem> = Vec::new();
    if let Err(errors) = validate_network_policy(&policy.spec) {
        problems.extend(errors.iter().map(|e| report("InvalidPolicy", e.to_string())));
    }
    let (entry, more) =
        entry(namespaced_name(namespace, name), &policy.view(), Applies::Namespace(namespace.into()), &report);
    problems.extend(more);
    (entry, problems)
}

/// Compiles a global policy; `None` when it cannot apply at all (problems say why).
pub fn global_policy_entry(policy: &GlobalNetworkPolicy) -> (Option<PolicyEntry>, Vec<ObjectProblem>) {
    let name = policy.metadata.name.as_deref().unwrap_or_default();
    let report = |reason: &str, message: String| problem("GlobalNetworkPolicy", None, name, reason, message);
    let mut problems: Vec<ObjectProblem> = Vec::new();
    if let Err(errors) = validate_global_network_policy(&policy.spec) {
        problems.extend(errors.iter().map(|e| report("InvalidPolicy", e.to_string())));
    }
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
    let (entry, more) = entry(global_name(name), &view, applies, &report);
    problems.extend(more);
    (entry, problems)
}
