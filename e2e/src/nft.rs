//! gingham's nftables table as a node's kernel shows it, split so that tests can tell a table
//! rewritten (its handles change) from set elements updated in place.

use std::collections::{BTreeMap, BTreeSet};

use crate::cmd::{self, CmdError};

/// gingham's nftables table on a node: its text without set and map elements (with every handle, so
/// that a table rewritten, even to the same rules, shows), and the elements of each set and map.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Nft {
    /// `nft -a list table` with the element lists left out.
    pub structure: String,
    /// Each set's and map's elements.
    pub elements: BTreeMap<String, BTreeSet<String>>,
}

impl Nft {
    /// Reads it from `netns`.
    pub fn of(netns: &str) -> Result<Self, CmdError> {
        Ok(Self::parse(&cmd::run_in(netns, "nft", &["-a", "list", "table", "inet", "gingham"])?))
    }

    /// Splits `nft -a list table` text into structure and elements (an element list may span lines).
    pub fn parse(text: &str) -> Self {
        let (mut structure, mut elements) = (String::new(), BTreeMap::<String, BTreeSet<String>>::new());
        let (mut owner, mut open) = (String::new(), None::<String>);
        for line in text.lines() {
            let words: Vec<&str> = line.split_whitespace().collect();
            if let [kind @ ("set" | "map"), name, ..] = words.as_slice() {
                owner = format!("{kind} {name}");
            }
            let list = match (&mut open, line.split_once("elements = {")) {
                (Some(list), _) => {
                    list.push_str(line);
                    list
                }
                (None, Some((_, rest))) => open.insert(rest.to_string()),
                (None, None) => {
                    structure.push_str(line);
                    structure.push('\n');
                    continue;
                }
            };
            if let Some((inside, _)) = list.clone().rsplit_once('}') {
                let members = inside.split(',').map(str::trim).filter(|m| !m.is_empty()).map(str::to_string);
                elements.entry(owner.clone()).or_default().extend(members);
                open = None;
            }
        }
        Self { structure, elements }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

    use super::*;

    #[test]
    fn an_nft_listing_splits_into_structure_and_elements() {
        let text = "table inet gingham { # handle 7\n\tset s_a { # handle 3\n\t\ttype ipv4_addr\n\t\telements = { 10.0.0.1, 10.0.0.2,\n\t\t\t     10.0.0.3 }\n\t}\n\tmap m { # handle 4\n\t\telements = { \"gh1\" : jump c }\n\t}\n}\n";
        let nft = Nft::parse(text);
        assert!(!nft.structure.contains("10.0.0") && nft.structure.contains("# handle 3"), "{}", nft.structure);
        let addresses: BTreeSet<String> = ["10.0.0.1", "10.0.0.2", "10.0.0.3"].map(String::from).into();
        assert_eq!(nft.elements["set s_a"], addresses);
        assert_eq!(nft.elements["map m"], BTreeSet::from(["\"gh1\" : jump c".to_string()]));
    }
}
