//! The smallest change between two rulesets, computed purely: sets, maps and chains to create,
//! chains whose rules changed (flushed and refilled), what to delete, and element additions and
//! deletions. [`super::render::delta`] turns it into one `nft -f -` transaction, so adding an
//! endpoint or a policy touches only what it changes instead of rewriting the table.

use std::collections::{BTreeMap, BTreeSet};

use super::model::{Chain, Ruleset, Set};
use super::observe::Elements;

/// Changes that take gingham's table from one ruleset to another without rewriting it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Delta {
    /// Sets to create, without elements (those are in `add`).
    pub new_sets: Vec<Set>,
    /// Verdict maps to create (their elements are in `add`).
    pub new_maps: Vec<String>,
    /// Chains to create, with their rules.
    pub new_chains: Vec<Chain>,
    /// Existing chains whose rules change: flushed and filled again.
    pub refilled: Vec<Chain>,
    /// Chains to delete (flushed first, so that they may jump to each other).
    pub deleted_chains: Vec<String>,
    /// Sets to delete, once no rule refers to them.
    pub deleted_sets: Vec<String>,
    /// Verdict maps to delete, once no rule refers to them.
    pub deleted_maps: Vec<String>,
    /// Elements to add, by set or map.
    pub add: Elements,
    /// Elements to delete, by set or map.
    pub delete: Elements,
}

impl Delta {
    /// Nothing to change.
    pub fn is_empty(&self) -> bool {
        !self.is_structural() && self.add.is_empty() && self.delete.is_empty()
    }

    /// The chains whose rules this changes (created, refilled or deleted).
    pub fn changed_chains(&self) -> BTreeSet<String> {
        let touched = self.new_chains.iter().chain(&self.refilled).map(|c| c.name.clone());
        touched.chain(self.deleted_chains.iter().cloned()).collect()
    }

    /// Sets, maps or chains change, not only elements.
    pub fn is_structural(&self) -> bool {
        !(self.new_sets.is_empty()
            && self.new_maps.is_empty()
            && self.new_chains.is_empty()
            && self.refilled.is_empty()
            && self.deleted_chains.is_empty()
            && self.deleted_sets.is_empty()
            && self.deleted_maps.is_empty())
    }
}

/// The structural change from the table `last` describes to `desired`, without elements; `None`
/// when only a rewrite can make it (a base chain appears, goes or changes its hook, or a set
/// changes its type or family).
pub fn structure(last: &Ruleset, desired: &Ruleset) -> Option<Delta> {
    let mut delta = Delta::default();
    let old_sets: BTreeMap<&str, &Set> = last.sets.iter().map(|s| (s.name.as_str(), s)).collect();
    for set in &desired.sets {
        match old_sets.get(set.name.as_str()) {
            Some(old) if (old.family, old.kind) != (set.family, set.kind) => return None,
            Some(_) => {}
            None => delta.new_sets.push(Set { elements: BTreeSet::new(), ..set.clone() }),
        }
    }
    let kept: BTreeSet<&str> = desired.sets.iter().map(|s| s.name.as_str()).collect();
    delta.deleted_sets = names(last.sets.iter().map(|s| s.name.as_str()), &kept);

    let old_maps: BTreeSet<&str> = last.maps.iter().map(|m| m.name.as_str()).collect();
    let new_maps: BTreeSet<&str> = desired.maps.iter().map(|m| m.name.as_str()).collect();
    delta.new_maps = names(new_maps.iter().copied(), &old_maps);
    delta.deleted_maps = names(old_maps.iter().copied(), &new_maps);

    let old_chains: BTreeMap<&str, &Chain> = last.chains.iter().map(|c| (c.name.as_str(), c)).collect();
    for chain in &desired.chains {
        match old_chains.get(chain.name.as_str()) {
            Some(old) if old.hook != chain.hook => return None,
            Some(old) if old.rules != chain.rules => delta.refilled.push(chain.clone()),
            Some(_) => {}
            None if chain.hook.is_some() => return None,
            None => delta.new_chains.push(chain.clone()),
        }
    }
    let kept: BTreeSet<&str> = desired.chains.iter().map(|c| c.name.as_str()).collect();
    for chain in last.chains.iter().filter(|c| !kept.contains(c.name.as_str())) {
        if chain.hook.is_some() {
            return None;
        }
        delta.deleted_chains.push(chain.name.clone());
    }
    Some(delta)
}

fn names<'a>(all: impl Iterator<Item = &'a str>, except: &BTreeSet<&str>) -> Vec<String> {
    all.filter(|name| !except.contains(name)).map(str::to_string).collect()
}

/// Adds the element changes that bring `present` (by set or map name) to `desired`: every
/// desired element a set lacks, and every present element not desired, for sets that stay.
pub fn elements(delta: &mut Delta, desired: &Elements, present: &Elements) {
    let empty = BTreeSet::new();
    for (name, wanted) in desired {
        let there = present.get(name).unwrap_or(&empty);
        let missing: BTreeSet<String> = wanted.difference(there).cloned().collect();
        let extra: BTreeSet<String> = there.difference(wanted).cloned().collect();
        if !missing.is_empty() {
            delta.add.insert(name.clone(), missing);
        }
        if !extra.is_empty() {
            delta.delete.insert(name.clone(), extra);
        }
    }
}

#[cfg(test)]
#[path = "delta_tests.rs"]
mod tests;
