//! The CNI_* environment variables of one invocation.

use std::collections::BTreeMap;

use gingham_crds::naming::{WORKLOAD_NAMESPACE, workload_name};

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

impl Command {
    /// The command as `CNI_COMMAND` spells it.
    pub fn name(self) -> &'static str {
        match self {
            Self::Add => "ADD",
            Self::Del => "DEL",
            Self::Check => "CHECK",
            Self::Version => "VERSION",
            Self::Gc => "GC",
            Self::Status => "STATUS",
        }
    }
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

    /// The pod's namespace and name from `K8S_POD_NAMESPACE` and `K8S_POD_NAME`. Without
    /// `K8S_POD_NAMESPACE` (a runtime outside Kubernetes, such as plain podman, which may set
    /// `K8S_POD_NAME` only) the container is a workload named by its container ID in
    /// [`WORKLOAD_NAMESPACE`], as Calico's plugin falls back to a non-Kubernetes workload.
    pub fn pod(&self) -> Result<(String, String), CniError> {
        let arg = |name: &str| self.args.get(name).filter(|value| !value.is_empty());
        match (arg("K8S_POD_NAMESPACE"), arg("K8S_POD_NAME")) {
            (Some(namespace), Some(pod)) => Ok((namespace.clone(), pod.clone())),
            (None, _) if !self.container_id.is_empty() => {
                Ok((WORKLOAD_NAMESPACE.to_string(), workload_name(&self.container_id)))
            }
            (None, _) => Err(CniError::new(
                codes::INVALID_ENV,
                "CNI_CONTAINERID is not set; a workload outside Kubernetes is named by its container ID",
            )),
            (Some(namespace), None) => Err(CniError::new(
                codes::INVALID_ENV,
                format!(
                    "CNI_ARGS sets K8S_POD_NAMESPACE={namespace} but not K8S_POD_NAME; the runtime must set both, or neither for a workload outside Kubernetes"
                ),
            )),
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::panic)]
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
    fn without_a_pod_namespace_the_container_is_a_workload_named_by_its_id() {
        let id = "4f3c0d2e9a1b";
        let workload = (WORKLOAD_NAMESPACE.to_string(), id.to_string());
        let cases = [
            ("", Ok(workload.clone())),
            ("IgnoreUnknown=1", Ok(workload.clone())),
            ("IgnoreUnknown=1;K8S_POD_NAME=s3", Ok(workload.clone())),
            ("K8S_POD_NAMESPACE=;K8S_POD_NAME=s3", Ok(workload)),
            ("K8S_POD_NAMESPACE=ns;K8S_POD_NAME=web", Ok(("ns".to_string(), "web".to_string()))),
            ("K8S_POD_NAMESPACE=ns", Err("K8S_POD_NAME")),
        ];
        for (args, expected) in cases {
            let invocation = env(&[
                ("CNI_COMMAND", "ADD"),
                ("CNI_CONTAINERID", id),
                ("CNI_NETNS", "/n"),
                ("CNI_IFNAME", "eth0"),
                ("CNI_ARGS", args),
            ])
            .unwrap();
            match (invocation.pod(), expected) {
                (Ok(pod), Ok(expected)) => assert_eq!(pod, expected, "{args}"),
                (Err(error), Err(field)) => {
                    assert_eq!(error.code, codes::INVALID_ENV, "{args}");
                    assert!(error.msg.contains(field), "{args}: {}", error.msg);
                }
                (got, expected) => panic!("{args}: got {got:?}, expected {expected:?}"),
            }
        }
    }

    #[test]
    fn del_does_not_need_a_netns_and_version_needs_nothing() {
        assert!(env(&[("CNI_COMMAND", "DEL"), ("CNI_CONTAINERID", "c"), ("CNI_IFNAME", "eth0")]).is_ok());
        assert_eq!(env(&[("CNI_COMMAND", "VERSION")]).unwrap().command, Command::Version);
        assert_eq!(env(&[("CNI_COMMAND", "FOO")]).unwrap_err().code, codes::INVALID_ENV);
    }
}
