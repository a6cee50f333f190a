//! Which families and pools a pod's addresses come from: Calico's CNI IPAM options
//! `assign_ipv4`/`assign_ipv6` and the pod's pool annotations (which the operator resolves to
//! CIDRs in the pod's span entry), against the blocks the node has. Pure.

use gingham_crds::api::IpFamily;
use gingham_crds::api::nodenetwork::{EndpointPolicy, IPV4_POOLS_ANNOTATION, IPV6_POOLS_ANNOTATION};
use ipnet::IpNet;
use serde::{Deserialize, Serialize};

use super::{BlockSet, IpamError};

/// The families the CNI configuration asks for (`ipam.assign_ipv4`, `ipam.assign_ipv6`); `None`
/// where it says nothing.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Assign {
    /// `assign_ipv4`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ipv4: Option<bool>,
    /// `assign_ipv6`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ipv6: Option<bool>,
}

impl Assign {
    /// Whether `family` is asked for: with neither option set, every family the node has blocks
    /// of (`None` here: decided by the blocks); with one set, the other takes Calico's default
    /// (IPv4 yes, IPv6 no).
    fn wants(self, family: IpFamily) -> Option<bool> {
        if self.ipv4.is_none() && self.ipv6.is_none() {
            return None;
        }
        Some(match family {
            IpFamily::IPv4 => self.ipv4.unwrap_or(true),
            IpFamily::IPv6 => self.ipv6.unwrap_or(false),
        })
    }
}

/// The option of the CNI configuration that asks for `family`.
pub fn assign_field(family: IpFamily) -> &'static str {
    match family {
        IpFamily::IPv4 => "ipam.assign_ipv4",
        IpFamily::IPv6 => "ipam.assign_ipv6",
    }
}

/// The annotation that names `family`'s pools.
pub fn pools_annotation(family: IpFamily) -> &'static str {
    match family {
        IpFamily::IPv4 => IPV4_POOLS_ANNOTATION,
        IpFamily::IPv6 => IPV6_POOLS_ANNOTATION,
    }
}

/// The pools a pod asks for, per family (from its span entry); empty: any.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RequestedPools {
    /// IPv4 pools, in order.
    pub ipv4: Vec<IpNet>,
    /// IPv6 pools, in order.
    pub ipv6: Vec<IpNet>,
    /// Values the operator could not resolve to a pool (kept as the annotation wrote them), by
    /// family: asking for that family fails naming them.
    pub unresolved: Vec<(IpFamily, String)>,
}

impl RequestedPools {
    /// The pools of a span entry; a value that does not decode as a CIDR is one the operator
    /// could not resolve (it reports it on the Pod), kept in [`RequestedPools::unresolved`].
    pub fn of(entry: &EndpointPolicy) -> Self {
        let mut pools = Self::default();
        for (family, listed) in [(IpFamily::IPv4, &entry.ipv4_pools), (IpFamily::IPv6, &entry.ipv6_pools)] {
            for pool in listed {
                match pool.value() {
                    Some(cidr) => pools.of_family_mut(family).push(cidr.0.trunc()),
                    None => pools.unresolved.push((family, pool.as_str().to_string())),
                }
            }
        }
        pools
    }

    /// Whether no family is limited.
    pub fn is_empty(&self) -> bool {
        self.ipv4.is_empty() && self.ipv6.is_empty() && self.unresolved.is_empty()
    }

    fn of_family_mut(&mut self, family: IpFamily) -> &mut Vec<IpNet> {
        match family {
            IpFamily::IPv4 => &mut self.ipv4,
            IpFamily::IPv6 => &mut self.ipv6,
        }
    }

    fn of_family(&self, family: IpFamily) -> &[IpNet] {
        match family {
            IpFamily::IPv4 => &self.ipv4,
            IpFamily::IPv6 => &self.ipv6,
        }
    }
}

/// One address to hand out: its family, and the pools it must come from (empty: any block).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct FamilyRequest {
    /// The family.
    pub family: IpFamily,
    /// The pools, in order; empty: any of the node's blocks of the family.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub pools: Vec<IpNet>,
}

impl FamilyRequest {
    /// An address of `family` from any block.
    pub fn any(family: IpFamily) -> Self {
        Self { family, pools: Vec::new() }
    }
}

/// The addresses a pod gets, IPv4 first: the families `assign` asks for (or, without options,
/// every family the node has usable blocks of), each from the pools the pod asks for. Fails
/// naming the option when it asks for a family the node has no block of, and naming the
/// annotation and its pools when the node has no block in them.
pub fn choose(blocks: &BlockSet, assign: Assign, pools: &RequestedPools) -> Result<Vec<FamilyRequest>, IpamError> {
    let mut chosen = Vec::new();
    for family in IpFamily::BOTH {
        let wanted = assign.wants(family);
        if wanted == Some(false) {
            continue;
        }
        let has_blocks = !blocks.usable(family, &[]).is_empty();
        if !has_blocks {
            if wanted == Some(true) {
                return Err(IpamError::NoBlockOfFamily { family, field: assign_field(family) });
            }
            continue;
        }
        if let Some((_, value)) = pools.unresolved.iter().find(|(f, _)| *f == family) {
            return Err(IpamError::UnresolvedPool {
                family,
                annotation: pools_annotation(family),
                value: value.clone(),
            });
        }
        let pools = pools.of_family(family).to_vec();
        if !pools.is_empty() && blocks.usable(family, &pools).is_empty() {
            return Err(IpamError::NoBlockInPools { family, annotation: pools_annotation(family), pools });
        }
        chosen.push(FamilyRequest { family, pools });
    }
    if chosen.is_empty() {
        return Err(IpamError::NoBlocks);
    }
    Ok(chosen)
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use std::collections::BTreeSet;

    use super::*;
    use IpFamily::{IPv4, IPv6};

    fn nets(nets: &[&str]) -> Vec<IpNet> {
        nets.iter().map(|n| n.parse().unwrap()).collect()
    }

    fn node(blocks: &[&str]) -> BlockSet {
        BlockSet { blocks: nets(blocks), releasing: BTreeSet::new(), tunnel_blocks: Vec::new() }
    }

    const DUAL: &[&str] = &["10.0.0.0/26", "10.1.0.0/26", "fd00:1::/122"];

    /// (node's blocks, assign_ipv4, assign_ipv6, requested pools (v4, v6), the families and pools
    /// chosen, or the words the error must carry).
    #[test]
    fn families_and_pools_are_chosen_as_calico_does_except_the_default() {
        type Case<'a> = (
            &'a [&'a str],
            Option<bool>,
            Option<bool>,
            (&'a [&'a str], &'a [&'a str]),
            Result<Vec<(IpFamily, Vec<IpNet>)>, &'a [&'a str]>,
        );
        let cases: Vec<Case<'_>> = vec![
            (DUAL, None, None, (&[], &[]), Ok(vec![(IPv4, vec![]), (IPv6, vec![])])),
            (&["10.0.0.0/26"], None, None, (&[], &[]), Ok(vec![(IPv4, vec![])])),
            (&["fd00:1::/122"], None, None, (&[], &[]), Ok(vec![(IPv6, vec![])])),
            (DUAL, Some(true), None, (&[], &[]), Ok(vec![(IPv4, vec![])])),
            (DUAL, None, Some(true), (&[], &[]), Ok(vec![(IPv4, vec![]), (IPv6, vec![])])),
            (DUAL, Some(false), Some(true), (&[], &[]), Ok(vec![(IPv6, vec![])])),
            (DUAL, Some(true), Some(false), (&[], &[]), Ok(vec![(IPv4, vec![])])),
            (
                DUAL,
                None,
                None,
                (&["10.1.0.0/16"], &["fd00:1::/64"]),
                Ok(vec![(IPv4, nets(&["10.1.0.0/16"])), (IPv6, nets(&["fd00:1::/64"]))]),
            ),
            (DUAL, Some(true), Some(false), (&[], &["fd00:9::/64"]), Ok(vec![(IPv4, vec![])])),
            (&["10.0.0.0/26"], None, Some(true), (&[], &[]), Err(&["IPv6", "ipam.assign_ipv6"])),
            (&["fd00:1::/122"], Some(true), None, (&[], &[]), Err(&["IPv4", "ipam.assign_ipv4"])),
            (DUAL, None, None, (&["10.9.0.0/16"], &[]), Err(&["cni.projectcalico.org/ipv4pools", "10.9.0.0/16"])),
            (DUAL, None, None, (&[], &["fd00:9::/64"]), Err(&["cni.projectcalico.org/ipv6pools", "fd00:9::/64"])),
            (&[], None, None, (&[], &[]), Err(&["no blocks"])),
        ];
        for (blocks, ipv4, ipv6, (pools4, pools6), expected) in cases {
            let requested = RequestedPools { ipv4: nets(pools4), ipv6: nets(pools6), unresolved: Vec::new() };
            let got = choose(&node(blocks), Assign { ipv4, ipv6 }, &requested);
            let case = format!("{blocks:?} assign {ipv4:?}/{ipv6:?} pools {pools4:?}/{pools6:?}");
            match expected {
                Ok(families) => {
                    let got: Vec<(IpFamily, Vec<IpNet>)> = got
                        .unwrap_or_else(|e| panic!("{case}: {e}"))
                        .into_iter()
                        .map(|r| (r.family, r.pools))
                        .collect();
                    assert_eq!(got, families, "{case}");
                }
                Err(words) => {
                    let error = got.expect_err(&case).to_string();
                    for word in words {
                        assert!(error.contains(word), "{case}: {error} lacks {word}");
                    }
                }
            }
        }
    }

    #[test]
    fn a_span_entry_gives_its_decoded_pools() {
        let entry: EndpointPolicy = serde_json::from_value(serde_json::json!({
            "name": "ns/web", "ipv4Pools": ["10.1.0.0/16", "bad"], "ipv6Pools": ["fd00:1::/64"],
        }))
        .unwrap();
        let pools = RequestedPools::of(&entry);
        assert_eq!((&pools.ipv4, &pools.ipv6), (&nets(&["10.1.0.0/16"]), &nets(&["fd00:1::/64"])));
        assert_eq!(pools.unresolved, [(IPv4, "bad".to_string())]);
        assert!(RequestedPools::of(&EndpointPolicy::default()).is_empty());
        // Asking for IPv4 fails naming the value; IPv6 alone is fine.
        let dual = node(DUAL);
        let error = choose(&dual, Assign::default(), &pools).unwrap_err().to_string();
        assert!(error.contains("cni.projectcalico.org/ipv4pools") && error.contains("\"bad\""), "{error}");
        let ipv6 = choose(&dual, Assign { ipv4: Some(false), ipv6: Some(true) }, &pools).unwrap();
        assert_eq!(ipv6, [FamilyRequest { family: IPv6, pools: nets(&["fd00:1::/64"]) }]);
    }
}
