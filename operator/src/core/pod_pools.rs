//! The pools a pod asks for (Calico's `cni.projectcalico.org/ipv4pools` and `ipv6pools`
//! annotations: a JSON list of pool names or CIDRs), resolved to the pools' CIDRs for the pod's
//! span entry, where its node's agent reads them before the pod's CNI ADD. Pure.
//!
//! A value that does not resolve is kept in the entry as written (it does not decode as a CIDR,
//! or names a network that is no pool), so the agent fails the pod's ADD naming it rather than
//! hand out an address from another pool; and it is reported as a Problem on the Pod.

use std::collections::BTreeMap;

use gingham_crds::api::nodenetwork::{IPV4_POOLS_ANNOTATION, IPV6_POOLS_ANNOTATION};
use gingham_crds::api::{Cidr, IpFamily, Wire};
use ipnet::IpNet;

use super::ObjectProblem;
use super::facts::PodFacts;

/// The annotation naming `family`'s pools.
fn annotation(family: IpFamily) -> &'static str {
    match family {
        IpFamily::IPv4 => IPV4_POOLS_ANNOTATION,
        IpFamily::IPv6 => IPV6_POOLS_ANNOTATION,
    }
}

/// The pools of `family` a pod's annotation `text` asks for, as CIDRs, in order, with a message
/// for each value that does not resolve against `pools` (every usable pool, by name).
pub fn resolve(text: &str, family: IpFamily, pools: &BTreeMap<String, IpNet>) -> (Vec<Wire<Cidr>>, Vec<String>) {
    let key = annotation(family);
    let values: Vec<String> = match serde_json::from_str(text) {
        Ok(values) => values,
        Err(error) => {
            let message = format!(
                "annotation {key} ({text:?}) is not a JSON list of pool names or CIDRs ({error}); write it as [\"pool-name\"] or [\"{}\"]",
                if family == IpFamily::IPv4 { "10.0.0.0/16" } else { "fd00::/48" }
            );
            return (vec![Wire::new(text)], vec![message]);
        }
    };
    let mut problems = Vec::new();
    let resolved = values
        .iter()
        .map(|value| {
            let by_name = pools.get(value).copied();
            let by_cidr = value.parse::<IpNet>().ok().filter(|net| pools.values().any(|pool| pool == net));
            match by_name.or(by_cidr) {
                Some(net) if IpFamily::of_net(&net) == family => Wire::from(Cidr(net)),
                Some(net) => {
                    problems.push(format!(
                        "annotation {key} names pool {value:?} ({net}), which is not an {family} pool; list it under {}",
                        annotation(IpFamily::of_net(&net))
                    ));
                    Wire::new(value.as_str())
                }
                None => {
                    problems.push(format!(
                        "annotation {key} names {value:?}, which is no usable IPPool (by name or CIDR); the pod's CNI ADD fails until it is"
                    ));
                    Wire::new(value.as_str())
                }
            }
        })
        .collect();
    (resolved, problems)
}

/// The pod's span-entry pools, IPv4 then IPv6 (empty where it has no annotation): for each
/// family its own annotation, else its namespace's (`namespace_annotations`), as Calico does.
pub fn pod_pools(
    facts: &PodFacts,
    namespace_annotations: &[Option<String>; 2],
    pools: &BTreeMap<String, IpNet>,
) -> [Vec<Wire<Cidr>>; 2] {
    let mut lists = [Vec::new(), Vec::new()];
    for ((slot, family), inherited) in lists.iter_mut().zip(IpFamily::BOTH).zip(namespace_annotations) {
        if let Some(text) = facts.pool_annotation(family).or(inherited.as_deref()) {
            *slot = resolve(text, family, pools).0;
        }
    }
    lists
}

/// The problems of an object's pool annotations (`annotations`, IPv4 then IPv6), as Problems
/// `InvalidPoolAnnotation` on that object (a Pod, or a Namespace, whose annotations its pods
/// without their own inherit).
pub fn annotation_problems(
    kind: &str,
    namespace: Option<&str>,
    name: &str,
    annotations: &[Option<String>; 2],
    pools: &BTreeMap<String, IpNet>,
) -> Vec<ObjectProblem> {
    IpFamily::BOTH
        .into_iter()
        .zip(annotations)
        .filter_map(|(family, text)| Some(resolve(text.as_deref()?, family, pools).1))
        .flatten()
        .map(|message| ObjectProblem {
            kind: kind.into(),
            namespace: namespace.map(str::to_string),
            name: name.to_string(),
            reason: "InvalidPoolAnnotation".into(),
            message,
        })
        .collect()
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn pools() -> BTreeMap<String, IpNet> {
        [("blue", "10.1.0.0/16"), ("red", "10.2.0.0/16"), ("blue6", "fd00:1::/48")]
            .into_iter()
            .map(|(name, cidr)| (name.to_string(), cidr.parse().unwrap()))
            .collect()
    }

    /// (annotation text, family, the entry's values, the words each problem carries).
    #[test]
    fn names_and_cidrs_resolve_to_the_pools_cidrs_and_the_rest_is_kept_and_reported() {
        let cases: [(&str, IpFamily, &[&str], &[&str]); 7] = [
            (r#"["blue"]"#, IpFamily::IPv4, &["10.1.0.0/16"], &[]),
            (r#"["red", "10.1.0.0/16"]"#, IpFamily::IPv4, &["10.2.0.0/16", "10.1.0.0/16"], &[]),
            (r#"["blue6"]"#, IpFamily::IPv6, &["fd00:1::/48"], &[]),
            (r#"["green"]"#, IpFamily::IPv4, &["green"], &["ipv4pools", "\"green\"", "no usable IPPool"]),
            (r#"["10.9.0.0/16"]"#, IpFamily::IPv4, &["10.9.0.0/16"], &["10.9.0.0/16", "no usable IPPool"]),
            (r#"["blue"]"#, IpFamily::IPv6, &["blue"], &["ipv6pools", "not an IPv6 pool", "ipv4pools"]),
            ("blue", IpFamily::IPv4, &["blue"], &["ipv4pools", "not a JSON list"]),
        ];
        for (text, family, values, words) in cases {
            let (resolved, problems) = resolve(text, family, &pools());
            let written: Vec<&str> = resolved.iter().map(Wire::as_str).collect();
            assert_eq!(written, values, "{text} {family}");
            assert_eq!(problems.len(), usize::from(!words.is_empty()), "{text} {family}: {problems:?}");
            for word in words {
                assert!(problems[0].contains(word), "{text} {family}: {} lacks {word}", problems[0]);
            }
        }
    }
}
