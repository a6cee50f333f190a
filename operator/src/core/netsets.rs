//! What policy needs to know about a NetworkSet or GlobalNetworkSet: its namespace, its labels
//! (with the implicit namespace label, as a pod's) and its nets, masked, sorted and without
//! repeats. Decoding is validation: a net that is not one is reported with its field path and left
//! out; the set's other nets still count.

use gingham_crds::api::networkset::NetworkSetView;
use gingham_crds::api::{GlobalNetworkSet, Net, NetworkSet};
use gingham_crds::validate::validate_network_set;
use kube::Resource;

use super::ObjectProblem;
use super::facts::{LabelList, NAMESPACE_LABEL};

/// A network set's identity in the index: its namespace (`None`: a GlobalNetworkSet) and name.
pub type NetSetKey = (Option<String>, String);

/// A network set as the policy index reads it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct NetSetFacts {
    /// Its namespace; `None` for a GlobalNetworkSet.
    pub namespace: Option<String>,
    /// Its labels, plus `projectcalico.org/namespace` for a namespaced set.
    pub labels: LabelList,
    /// Its nets with host bits masked off (Calico's `ParseCIDROrIP`), sorted, each once.
    pub nets: Vec<Net>,
}

impl NetSetFacts {
    /// The facts of a NetworkSet, with the problems of its spec.
    pub fn of_network_set(set: &NetworkSet) -> (NetSetKey, Self, Vec<ObjectProblem>) {
        let namespace = set.meta().namespace.clone().unwrap_or_else(|| "default".into());
        facts("NetworkSet", set, Some(namespace), set.spec.view())
    }

    /// The facts of a GlobalNetworkSet, with the problems of its spec.
    pub fn of_global_network_set(set: &GlobalNetworkSet) -> (NetSetKey, Self, Vec<ObjectProblem>) {
        facts("GlobalNetworkSet", set, None, set.spec.view())
    }
}

fn facts(
    kind: &str,
    object: &impl Resource,
    namespace: Option<String>,
    spec: NetworkSetView<'_>,
) -> (NetSetKey, NetSetFacts, Vec<ObjectProblem>) {
    let name = object.meta().name.clone().unwrap_or_default();
    let problems = validate_network_set(spec)
        .err()
        .into_iter()
        .flatten()
        .map(|error| ObjectProblem {
            kind: kind.into(),
            namespace: namespace.clone(),
            name: name.clone(),
            reason: "InvalidNetworkSet".into(),
            message: format!("{error}; the rest of the set applies"),
        })
        .collect();
    let implicit = namespace.iter().map(|ns| (NAMESPACE_LABEL.to_string(), ns.clone()));
    let labels = implicit.chain(object.meta().labels.iter().flatten().map(|(k, v)| (k.clone(), v.clone()))).collect();
    let mut nets: Vec<Net> = spec.nets.iter().filter_map(|net| net.value()).map(|net| Net(net.0.trunc())).collect();
    nets.sort_unstable();
    nets.dedup();
    ((namespace.clone(), name), NetSetFacts { namespace, labels, nets }, problems)
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use gingham_crds::api::NetworkSetSpec;
    use gingham_crds::selector::Labels;

    use super::*;
    use crate::core::testkit::meta;

    #[test]
    fn nets_are_masked_sorted_once_and_bad_ones_reported() {
        let mut metadata = meta(Some("shop"), "partners");
        metadata.labels = Some([("feed".to_string(), "partners".to_string())].into());
        let set = NetworkSet {
            metadata,
            spec: NetworkSetSpec {
                nets: ["10.0.0.7/8", "192.0.2.1", "10.0.0.0/8", "fd00::1/64", "nope"].map(Into::into).to_vec(),
                allowed_egress_domains: None,
            },
        };
        let (key, facts, problems) = NetSetFacts::of_network_set(&set);
        assert_eq!(key, (Some("shop".into()), "partners".into()));
        let nets: Vec<String> = facts.nets.iter().map(ToString::to_string).collect();
        assert_eq!(nets, ["10.0.0.0/8", "192.0.2.1", "fd00::/64"]);
        assert_eq!(facts.labels.get(NAMESPACE_LABEL), Some("shop"));
        assert_eq!(facts.labels.get("feed"), Some("partners"));
        assert_eq!(problems.len(), 1);
        assert!(problems[0].message.starts_with("spec.nets[4]: \"nope\""), "{problems:?}");
    }
}
