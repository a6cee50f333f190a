//! The CNI_* environment variables of one invocation.

use std::collections::BTreeMap;

use super::{CniError, codes};

/// The CNI command.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Command {
    /// Attach a container.
    Add,
    /// Detach a container.
    Del,
    /// Verify an attachment.
    Check,
    /// Print supported versions.
    Version,
    /// Release what is not in the valid attachments.
    Gc,
    /// Report readiness.
    Status,
}

/// One invocation's environment.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Invocation {
    /// `CNI_COMMAND`.
    pub command: Command,
    /// `CNI_CONTAINERID`.
    pub container_id: String,
    /// `CNI_NETNS` (may be empty for DEL).
    pub netns: String,
    /// `CNI_IFNAME`.
    pub ifname: String,
    /// `CNI_ARGS`, split at `;` and `=`.
    pub args: BTreeMap<String, String>,
}

impl Invocation {
    /// Reads the environment through `lookup`, requiring what the command needs.
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, CniError> {
        let get = |name: &str| lookup(name).unwrap_or_default();
        let command = match get("CNI_COMMAND").as_str() {
            "ADD" => Command::Add,
            "DEL" => Command::Del,
            "CHECK" => Command::Check,
            "VERSION" => Command::Version,
            "GC" => Command::Gc,
            "STATUS" => Command::Status,
            other => {
                return Err(CniError::new(
                    codes::INVALID_ENV,
                    format!("CNI_COMMAND={other:?} is not a CNI command; use ADD, DEL, CHECK, VERSION, GC or STATUS"),
                ));
            }
        };
        let args = get("CNI_ARGS")
            .split(';')
            .filter_map(|pair| pair.split_once('='))
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        let invocation = Self {
            command,
            container_id: get("CNI_CONTAINERID"),
            netns: get("CNI_NETNS"),
            ifname: get("CNI_IFNAME"),
            args,
        };
        let needed: &[&str] = match command {
            Command::Add | Command::Check => &["CNI_CONTAINERID", "CNI_NETNS", "CNI_IFNAME"],
            Command::Del => &["CNI_CONTAINERID", "CNI_IFNAME"],
            Command::Version | Command::Gc | Command::Status => &[],
        };
        for name in needed {
            if get(name).is_empty() {
                return Err(CniError::new(
                    codes::INVALID_ENV,
                    format!("{name} is not set; the container runtime must set it for {:?}", command),
                ));
            }
        }
        Ok(invocation)
    }

    /// The pod's namespace and name from `K8S_POD_NAMESPACE` and `K8S_POD_NAME`.
    pub fn pod(&self) -> Result<(String, String), CniError> {
        match (self.args.get("K8S_POD_NAMESPACE"), self.args.get("K8S_POD_NAME")) {
            (Some(namespace), Some(pod)) if !namespace.is_empty() && !pod.is_empty() => {
                Ok((namespace.clone(), pod.clone()))
            }
            _ => Err(CniError::new(
                codes::INVALID_ENV,
                "CNI_ARGS lacks K8S_POD_NAMESPACE or K8S_POD_NAME; gingham serves Kubernetes pods, invoke it through the kubelet's runtime",
            )),
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> Result<Invocation, CniError> {
        let map: BTreeMap<String, String> = pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        Invocation::from_lookup(|name| map.get(name).cloned())
    }

    #[test]
    fn add_needs_container_netns_and_ifname() {
        let error = env(&[("CNI_COMMAND", "ADD"), ("CNI_CONTAINERID", "c")]).unwrap_err();
        assert_eq!(error.code, codes::INVALID_ENV);
        assert!(error.msg.contains("CNI_NETNS"), "{}", error.msg);
        let ok = env(&[
            ("CNI_COMMAND", "ADD"),
            ("CNI_CONTAINERID", "c"),
            ("CNI_NETNS", "/n"),
            ("CNI_IFNAME", "eth0"),
            ("CNI_ARGS", "IgnoreUnknown=1;K8S_POD_NAMESPACE=ns;K8S_POD_NAME=web"),
        ])
        .unwrap();
        assert_eq!(ok.pod().unwrap(), ("ns".into(), "web".into()));
    }

    #[test]
    fn del_does_not_need_a_netns_and_version_needs_nothing() {
        assert!(env(&[("CNI_COMMAND", "DEL"), ("CNI_CONTAINERID", "c"), ("CNI_IFNAME", "eth0")]).is_ok());
        assert_eq!(env(&[("CNI_COMMAND", "VERSION")]).unwrap().command, Command::Version);
        assert_eq!(env(&[("CNI_COMMAND", "FOO")]).unwrap_err().code, codes::INVALID_ENV);
    }
}
