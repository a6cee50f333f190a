//! The CNI spec versions the plugin speaks and which commands each allows, as the reference
//! plugins' `skel` decides: CHECK from 0.4.0, GC and STATUS from 1.1.0.

use std::fmt;

use super::{CniError, Command, codes};

/// A CNI spec version the plugin speaks.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum CniVersion {
    /// 0.3.0: `interfaces` and `ips` (with `version`) in the result.
    V0_3_0,
    /// 0.3.1: 0.3.0 with the `ips` field name fixed.
    V0_3_1,
    /// 0.4.0: adds CHECK and `prevResult` on DEL.
    V0_4_0,
    /// 1.0.0: drops `ips[].version`.
    V1_0_0,
    /// 1.1.0: adds GC and STATUS.
    V1_1_0,
}

impl CniVersion {
    /// Every supported version, oldest first.
    pub const ALL: [Self; 5] = [Self::V0_3_0, Self::V0_3_1, Self::V0_4_0, Self::V1_0_0, Self::V1_1_0];

    /// The newest supported version.
    pub const LATEST: Self = Self::V1_1_0;

    /// The version's text, as in `cniVersion`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::V0_3_0 => "0.3.0",
            Self::V0_3_1 => "0.3.1",
            Self::V0_4_0 => "0.4.0",
            Self::V1_0_0 => "1.0.0",
            Self::V1_1_0 => "1.1.0",
        }
    }

    /// The version a `cniVersion` names, if the plugin speaks it.
    pub fn parse(text: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|v| v.as_str() == text)
    }

    /// Every supported version's text (VERSION's `supportedVersions`).
    pub fn supported() -> Vec<&'static str> {
        Self::ALL.iter().map(|v| v.as_str()).collect()
    }

    /// Whether results carry `ips[].version` ("4" or "6"): before 1.0.0.
    pub fn ips_carry_version(self) -> bool {
        self < Self::V1_0_0
    }

    /// The first version that has `command`.
    fn introduced(command: Command) -> Self {
        match command {
            Command::Add | Command::Del | Command::Version => Self::V0_3_0,
            Command::Check => Self::V0_4_0,
            Command::Gc | Command::Status => Self::V1_1_0,
        }
    }

    /// Fails with the spec's code 1 (incompatible version) when this version lacks `command`.
    pub fn allows(self, command: Command) -> Result<(), CniError> {
        let first = Self::introduced(command);
        if self >= first {
            return Ok(());
        }
        Err(CniError::new(
            codes::INCOMPATIBLE_VERSION,
            format!(
                "cniVersion {self} has no {} command (it came with CNI {first}); set the network configuration's cniVersion to {first} or later",
                command.name()
            ),
        ))
    }
}

impl fmt::Display for CniVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn each_version_allows_the_commands_the_spec_gives_it() {
        use Command::{Add, Check, Del, Gc, Status, Version};
        let commands = [Add, Del, Check, Version, Gc, Status];
        // Per version: which of ADD, DEL, CHECK, VERSION, GC, STATUS it has.
        let table = [
            ("0.3.0", [true, true, false, true, false, false]),
            ("0.3.1", [true, true, false, true, false, false]),
            ("0.4.0", [true, true, true, true, false, false]),
            ("1.0.0", [true, true, true, true, false, false]),
            ("1.1.0", [true, true, true, true, true, true]),
        ];
        assert_eq!(table.len(), CniVersion::ALL.len(), "every version is in the table");
        for (text, allowed) in table {
            let version = CniVersion::parse(text).unwrap();
            for (command, allowed) in commands.into_iter().zip(allowed) {
                match version.allows(command) {
                    Ok(()) => assert!(allowed, "{text} must refuse {command:?}"),
                    Err(error) => {
                        assert!(!allowed, "{text} must allow {command:?}: {error}");
                        assert_eq!(error.code, codes::INCOMPATIBLE_VERSION);
                        assert!(error.msg.contains(text) && error.msg.contains(command.name()), "{}", error.msg);
                    }
                }
            }
        }
    }

    #[test]
    fn versions_round_trip_and_unknown_ones_are_refused() {
        for version in CniVersion::ALL {
            assert_eq!(CniVersion::parse(version.as_str()), Some(version));
        }
        for unknown in ["0.2.0", "0.1.0", "1.2.0", "1.0", ""] {
            assert_eq!(CniVersion::parse(unknown), None, "{unknown}");
        }
        assert_eq!(CniVersion::supported(), ["0.3.0", "0.3.1", "0.4.0", "1.0.0", "1.1.0"]);
    }
}
