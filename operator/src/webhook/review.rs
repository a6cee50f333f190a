//! The webhook's verdict on one object, without I/O: the CRD schema (defaults, CEL), the Rust
//! validators, for IPPools overlap with the pools that exist, for policies whether their tier
//! exists, and for a tier's deletion whether it may go.

use gingham_crds::api::IPPool;
use gingham_crds::api::tier::{builtin_order, policy_tier};
use gingham_crds::manifest::{Document, Manifest};
use gingham_crds::offline::validate_document;
use gingham_crds::validate::find_pool_overlaps;
use kube::ResourceExt;
use serde_json::Value;

/// Every problem with `object`, each as `field.path: message`; empty when it may be admitted.
/// `pools` are the IPPools that exist now (the object itself, on update, is ignored among them).
pub fn review(object: &Value, pools: &[IPPool]) -> Vec<String> {
    let manifest = match validate_document(&Document { line: 1, value: object.clone() }) {
        Ok(manifest) => manifest,
        Err(problems) => {
            return problems
                .into_iter()
                .map(|p| {
                    let message = p.message.strip_prefix("line 1: ").unwrap_or(&p.message).to_string();
                    if p.path.is_empty() { message } else { format!("{}: {message}", p.path) }
                })
                .collect();
        }
    };
    let Manifest::IPPool(pool) = manifest else { return Vec::new() };
    let name = pool.name_any();
    // Existing pools are older than the one being admitted, so an overlap always names it.
    let mut keyed: Vec<(String, String, u8)> =
        pools.iter().filter(|p| p.name_any() != name).map(|p| (p.name_any(), p.spec.cidr.clone(), 0)).collect();
    keyed.push((name.clone(), pool.spec.cidr.clone(), 1));
    find_pool_overlaps(&keyed)
        .into_iter()
        .filter(|overlap| overlap.pool == name)
        .map(|overlap| {
            let other =
                pools.iter().find(|p| p.name_any() == overlap.other).map(|p| p.spec.cidr.as_str()).unwrap_or("");
            format!(
                "spec.cidr: {} overlaps IPPool {} ({other}) (fix: choose a range outside every other pool)",
                pool.spec.cidr, overlap.other
            )
        })
        .collect()
}

/// The tier a policy object names, when it is not a built-in one (those always exist).
pub fn custom_tier(object: &Value) -> Option<&str> {
    let tier = policy_tier(object.pointer("/spec/tier").and_then(Value::as_str));
    builtin_order(tier).is_none().then_some(tier)
}

/// The problem with a policy naming `tier`, when the tier does not exist.
pub fn missing_tier(tier: &str, exists: bool) -> Option<String> {
    (!exists).then(|| {
        format!("spec.tier: the tier {tier:?} does not exist (fix: create the Tier first, or use an existing tier)")
    })
}

/// The problems with deleting tier `name` that holds `policies`: the built-in tiers always exist,
/// and a tier that still holds policies stays until they are moved or deleted.
pub fn tier_deletion(name: &str, policies: &[String]) -> Vec<String> {
    if builtin_order(name).is_some() {
        return vec![format!("the tier {name} is built in and cannot be deleted")];
    }
    if policies.is_empty() {
        return Vec::new();
    }
    vec![format!(
        "the tier {name} still holds {} policies ({}): delete them or move them to another tier first",
        policies.len(),
        policies.join(", ")
    )]
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;
    use gingham_crds::api::IPPoolSpec;
    use serde_json::json;

    fn pool(name: &str, cidr: &str) -> IPPool {
        IPPool::new(name, IPPoolSpec { cidr: cidr.into(), ..IPPoolSpec::default() })
    }

    fn pool_json(name: &str, spec: Value) -> Value {
        json!({"apiVersion": "gingham.dev/v1", "kind": "IPPool", "metadata": {"name": name}, "spec": spec})
    }

    #[test]
    fn verdicts_name_the_field() {
        let existing = [pool("default", "10.244.0.0/16")];
        let cases: Vec<(Value, Vec<&str>)> = vec![
            (pool_json("other", json!({"cidr": "10.245.0.0/16"})), vec![]),
            // Updating a pool does not overlap with itself.
            (pool_json("default", json!({"cidr": "10.244.0.0/16", "natOutgoing": true})), vec![]),
            (
                pool_json("inner", json!({"cidr": "10.244.1.0/24"})),
                vec![
                    "spec.cidr: 10.244.1.0/24 overlaps IPPool default (10.244.0.0/16) (fix: choose a range outside every other pool)",
                ],
            ),
        ];
        for (object, expected) in cases {
            assert_eq!(review(&object, &existing), expected, "{object}");
        }
    }

    #[test]
    fn schema_and_rust_problems_are_reported_with_their_paths() {
        let both = pool_json("x", json!({"cidr": "10.0.0.0/16", "ipipMode": "Always", "vxlanMode": "Always"}));
        let problems = review(&both, &[]);
        assert_eq!(problems.len(), 1, "{problems:?}");
        assert!(problems[0].contains("ipipMode and vxlanMode cannot both be enabled"), "{problems:?}");
        let selector = json!({
            "apiVersion": "gingham.dev/v1", "kind": "BGPPeer", "metadata": {"name": "p"},
            "spec": {"nodeSelector": "a ==", "peerIP": "192.0.2.1", "asNumber": 64513}
        });
        let problems = review(&selector, &[]);
        assert!(problems.iter().any(|p| p.starts_with("spec.nodeSelector: ")), "{problems:?}");
    }
}
