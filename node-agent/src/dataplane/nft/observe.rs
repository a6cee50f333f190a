//! What `nft -j list table inet gingham` shows, reduced to what decides between doing nothing,
//! changing it incrementally and rewriting it; and that decision ([`plan`]).

use std::collections::{BTreeMap, BTreeSet};

use serde_json::Value;

use super::delta::{self, Delta};
use super::model::Ruleset;
use super::render::FINGERPRINT_PREFIX;

/// Elements by set or map name, in nft syntax.
pub type Elements = BTreeMap<String, BTreeSet<String>>;

/// The table as listed: enough to detect structural drift and element drift.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Observed {
    /// The structure fingerprint found in a rule comment.
    pub fingerprint: Option<String>,
    /// Rules per chain.
    pub chains: BTreeMap<String, usize>,
    /// Elements of every set and map.
    pub elements: Elements,
    /// Per chain, a hash of its rules' expressions and comments as listed (empty when not from a
    /// listing): it changes when a rule is edited in place.
    pub rule_digests: Digests,
}

/// Rule digests by chain name.
pub type Digests = BTreeMap<String, u64>;

impl Observed {
    /// What listing the table should show once `ruleset` is applied.
    pub fn expected(ruleset: &Ruleset) -> Self {
        let fingerprint = ruleset
            .chains
            .iter()
            .flat_map(|chain| chain.rules.iter())
            .find_map(|rule| rule.comment.as_deref()?.strip_prefix(FINGERPRINT_PREFIX).map(str::to_string));
        let chains = ruleset.chains.iter().map(|chain| (chain.name.clone(), chain.rules.len())).collect();
        Self { fingerprint, chains, elements: ruleset.elements(), rule_digests: Digests::new() }
    }

    /// Parses `nft -j list table` output.
    pub fn from_json(json: &str) -> Result<Self, serde_json::Error> {
        let value: Value = serde_json::from_str(json)?;
        let mut observed = Self::default();
        let mut rules: BTreeMap<String, String> = BTreeMap::new();
        let items = value.get("nftables").and_then(Value::as_array).map(Vec::as_slice).unwrap_or_default();
        for item in items {
            if let Some(chain) = item.get("chain") {
                let name = text(chain.get("name"));
                observed.chains.entry(name).or_insert(0);
            } else if let Some(rule) = item.get("rule") {
                let chain = text(rule.get("chain"));
                *observed.chains.entry(chain.clone()).or_insert(0) += 1;
                let listed = rules.entry(chain).or_default();
                for key in ["expr", "comment"] {
                    listed.push_str(&rule.get(key).map(Value::to_string).unwrap_or_default());
                }
                listed.push('\n');
                let comment = rule.get("comment").and_then(Value::as_str).unwrap_or_default();
                if let Some(print) = comment.strip_prefix(FINGERPRINT_PREFIX) {
                    observed.fingerprint = Some(print.to_string());
                }
            } else if let Some(set) = item.get("set").or_else(|| item.get("map")) {
                let elements = set.get("elem").and_then(Value::as_array).map(Vec::as_slice).unwrap_or_default();
                observed.elements.insert(text(set.get("name")), elements.iter().map(element).collect());
            }
        }
        observed.rule_digests =
            rules.into_iter().map(|(chain, listed)| (chain, super::model::stable_hash(&listed))).collect();
        Ok(observed)
    }
}

fn text(value: Option<&Value>) -> String {
    value.and_then(Value::as_str).unwrap_or_default().to_string()
}

/// One element as nft input syntax: `10.0.0.1`, `10.1.0.0/16`, `10.0.0.1 . tcp . 80`,
/// `"gh1" : jump ep`.
fn element(value: &Value) -> String {
    match value {
        Value::String(s) => s.clone(),
        Value::Number(n) => n.to_string(),
        Value::Array(pair) if pair.len() == 2 => {
            let target = pair[1].get("jump").or_else(|| pair[1].get("goto")).map(|j| text(j.get("target")));
            format!("\"{}\" : jump {}", element(&pair[0]), target.unwrap_or_default())
        }
        Value::Object(object) => {
            if let Some(prefix) = object.get("prefix") {
                format!("{}/{}", text(prefix.get("addr")), prefix.get("len").and_then(Value::as_u64).unwrap_or(32))
            } else if let Some(Value::Array(parts)) = object.get("concat") {
                parts.iter().map(element).collect::<Vec<_>>().join(" . ")
            } else if let Some(Value::Array(range)) = object.get("range") {
                range.iter().map(element).collect::<Vec<_>>().join("-")
            } else if let Some(inner) = object.get("elem").and_then(|e| e.get("val")) {
                element(inner)
            } else {
                value.to_string()
            }
        }
        other => other.to_string(),
    }
}

/// What applying a desired ruleset takes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Plan {
    /// The table already matches.
    UpToDate,
    /// Apply these changes in one transaction: elements only, or also sets, maps and chains
    /// when the table is exactly as gingham last left it.
    Changes(Box<Delta>),
    /// The structure differs in a way no delta covers (or the table is missing, or was edited):
    /// rewrite it in one transaction.
    Rewrite,
}

impl Observed {
    /// The same fingerprint, chains with the same rule counts, and the same sets and maps.
    fn same_structure(&self, other: &Observed) -> bool {
        self.fingerprint == other.fingerprint
            && self.chains == other.chains
            && self.elements.keys().eq(other.elements.keys())
    }
}

/// Decides how to bring the observed table to the desired ruleset. `trusted_rules` holds the rule
/// digests of the chains gingham knows it left as they are (see [`trust`]): a different digest
/// means a rule was edited in place. `last` is the ruleset gingham last applied, when
/// known: a table that still shows its structure is changed chain by chain instead of rewritten.
pub fn plan(desired: &Ruleset, observed: Option<&Observed>, trusted_rules: &Digests, last: Option<&Ruleset>) -> Plan {
    let Some(seen) = observed else { return Plan::Rewrite };
    if trusted_rules.iter().any(|(chain, digest)| seen.rule_digests.get(chain).is_some_and(|d| d != digest)) {
        return Plan::Rewrite;
    }
    let mut changes = if Observed::expected(desired).same_structure(seen) {
        Delta::default()
    } else {
        let from_last = last.filter(|last| Observed::expected(last).same_structure(seen));
        match from_last.and_then(|last| delta::structure(last, desired)) {
            Some(structural) => structural,
            None => return Plan::Rewrite,
        }
    };
    delta::elements(&mut changes, &desired.elements(), &seen.elements);
    if changes.is_empty() { Plan::UpToDate } else { Plan::Changes(Box::new(changes)) }
}

/// The rule digests to trust after a sync that listed `seen` and then changed the rules of the
/// chains `changed`: those already trusted, plus every other chain as listed (adopted the first
/// time it is seen), less the changed chains, which are learned at the next listing.
pub fn trust(mut trusted: Digests, seen: &Observed, changed: &BTreeSet<String>) -> Digests {
    for (chain, digest) in &seen.rule_digests {
        trusted.entry(chain.clone()).or_insert(*digest);
    }
    trusted.retain(|chain, _| !changed.contains(chain) && seen.chains.contains_key(chain));
    trusted
}

#[cfg(test)]
#[path = "observe_tests.rs"]
mod tests;
