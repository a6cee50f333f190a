//! `gingham policy log TEXT`: which policy and rule logged a packet. A `Log` rule's nftables
//! prefix is `gingham <hash> <i|e><rule>: ` ([`LogTag`]): 12 hex digits of a hash of the compiled
//! policy name (`namespace/name`, `namespace/knp.name` for a Kubernetes NetworkPolicy,
//! `global/name`), the direction and the rule's index among the policy's compiled rules of that
//! direction. TEXT is a prefix or a whole kernel log line (`dmesg`, `journalctl -k`); the
//! command hashes the name of every policy in the cluster and names the one that matches, with
//! its rule.

use gingham_crds::api::nodenetwork::CompiledRule;
use gingham_crds::api::policy::PolicyView;
use gingham_crds::naming::{LogTag, policy_log_hash};
use gingham_operator::core::compile::rules::compile_policy;
use gingham_operator::core::compile::{global_name, namespaced_name};
use gingham_operator::core::translate::translate;
use serde::Serialize;

use crate::output::Report;
use crate::source::ClusterView;

/// What `policy log` prints.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct LogReport {
    /// The prefix found in the text.
    pub prefix: String,
    /// The compiled policy name (`namespace/name` or `global/name`).
    pub policy: String,
    /// `ingress` or `egress`.
    pub direction: &'static str,
    /// The rule's index among the policy's compiled rules of that direction.
    pub rule: usize,
    /// The compiled rule (what the agent programs), when the policy has it.
    pub compiled: Option<CompiledRule>,
}

impl Report for LogReport {
    fn human(&self) -> String {
        let rule = match &self.compiled {
            Some(rule) => serde_json::to_string(rule).unwrap_or_default(),
            None => "(the policy has no such rule now: it changed since the packet was logged)".into(),
        };
        format!("{}logged by {} {} rule {}: {rule}\n", self.prefix, self.policy, self.direction, self.rule)
    }
}

/// The compiled name and view of every policy in the cluster.
fn policies(view: &ClusterView) -> Vec<(String, PolicyView<'_>)> {
    let snapshot = &view.snapshot;
    let namespaced = snapshot.network_policies.iter().map(|p| {
        let namespace = p.metadata.namespace.as_deref().unwrap_or("default");
        (namespaced_name(namespace, p.metadata.name.as_deref().unwrap_or_default()), p.view())
    });
    let global = snapshot
        .global_network_policies
        .iter()
        .map(|p| (global_name(p.metadata.name.as_deref().unwrap_or_default()), p.view()));
    namespaced.chain(global).collect()
}

/// Finds the policy and rule behind a log prefix or kernel log line.
pub fn explain_log(view: &ClusterView, text: &str) -> Result<LogReport, String> {
    let tag = LogTag::find(text).ok_or_else(|| {
        format!("no gingham log prefix (`gingham <12 hex digits> i<rule>:` or `e<rule>:`) in {text:?}")
    })?;
    // Kubernetes NetworkPolicies become `knp.*` policies: compile their translations too.
    let translated: Vec<_> = view.snapshot.kube_network_policies.iter().map(|knp| translate(knp).1).collect();
    let mut all = policies(view);
    all.extend(translated.iter().map(|p| {
        let namespace = p.metadata.namespace.as_deref().unwrap_or("default");
        (namespaced_name(namespace, p.metadata.name.as_deref().unwrap_or_default()), p.view())
    }));
    let Some((name, policy)) = all.into_iter().find(|(name, _)| policy_log_hash(name) == tag.policy_hash) else {
        return Err(format!("no policy in the cluster hashes to {} (deleted or renamed since?)", tag.policy_hash));
    };
    let (template, _) = compile_policy(&name, &policy);
    let rules = if tag.ingress { &template.policy.ingress } else { &template.policy.egress };
    Ok(LogReport {
        prefix: tag.prefix(),
        policy: name,
        direction: if tag.ingress { "ingress" } else { "egress" },
        rule: tag.rule,
        compiled: rules.get(tag.rule).cloned(),
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use gingham_crds::api::policy::Action;
    use gingham_crds::api::{GlobalNetworkPolicy, NetworkPolicy};
    use serde_json::json;

    use super::*;

    fn view() -> ClusterView {
        let mut view = ClusterView::default();
        view.snapshot.network_policies.push(
            serde_json::from_value::<NetworkPolicy>(json!({"apiVersion": "gingham.dev/v1", "kind": "NetworkPolicy",
                "metadata": {"name": "audit", "namespace": "shop"},
                "spec": {"selector": "all()", "egress": [{"action": "Allow", "protocol": "UDP"}, {"action": "Log"}]}}))
            .unwrap(),
        );
        view.snapshot.global_network_policies.push(
            serde_json::from_value::<GlobalNetworkPolicy>(
                json!({"apiVersion": "gingham.dev/v1", "kind": "GlobalNetworkPolicy",
                "metadata": {"name": "audit"}, "spec": {"selector": "all()", "ingress": [{"action": "Log"}]}}),
            )
            .unwrap(),
        );
        view
    }

    #[test]
    fn a_kernel_line_names_its_policy_and_rule() {
        let line =
            format!("[ 81.2] {}IN= OUT=gh0 SRC=10.0.0.1 DST=10.0.0.2", LogTag::new("shop/audit", false, 1).prefix());
        let report = explain_log(&view(), &line).unwrap();
        assert_eq!((report.policy.as_str(), report.direction, report.rule), ("shop/audit", "egress", 1));
        assert_eq!(report.compiled.map(|r| r.action), Some(Action::Log));
        let global = explain_log(&view(), &LogTag::new("global/audit", true, 0).prefix()).unwrap();
        assert_eq!(global.policy, "global/audit", "same name, other policy: another hash");
        let unknown = explain_log(&view(), &LogTag::new("shop/gone", true, 0).prefix()).unwrap_err();
        assert!(unknown.contains("no policy in the cluster"), "{unknown}");
        assert!(explain_log(&view(), "kernel: something else").is_err());
    }
}
