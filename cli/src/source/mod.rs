//! Where the CLI reads the cluster from: the file datastore (`--datastore file:DIR`, the lab's)
//! or the Kubernetes API (kubeconfig or in-cluster). Both give one [`ClusterView`]; the commands
//! never know which one they read.

mod file;
mod kubernetes;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::str::FromStr;

use gingham_crds::api::NodeNetwork;
use gingham_operator::core::ClusterSnapshot;

use crate::args::SourceArgs;

/// The `--datastore` value.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SourceSpec {
    /// The Kubernetes API.
    Kubernetes,
    /// A file datastore directory.
    File(PathBuf),
}

impl FromStr for SourceSpec {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        match text.split_once(':') {
            _ if text == "kubernetes" => Ok(Self::Kubernetes),
            Some(("file", dir)) if !dir.is_empty() => Ok(Self::File(PathBuf::from(dir))),
            _ => Err(format!("`{text}` is no datastore; use `kubernetes` or `file:DIR` (the lab prints its DIR)")),
        }
    }
}

/// Reading the cluster failed.
#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    /// The file datastore could not be read.
    #[error("file datastore {dir}: {source}")]
    File {
        /// The directory.
        dir: PathBuf,
        /// The cause.
        #[source]
        source: gingham_operator::datastore::file::FileError,
    },
    /// The kubeconfig could not be read or has no such context.
    #[error("kubeconfig: {0}; check --kubeconfig, --context or $KUBECONFIG")]
    Kubeconfig(String),
    /// The API server refused or failed.
    #[error("kubernetes: list {what}: {source}; check the API server and your RBAC (`kubectl auth can-i list {what}`)")]
    Kube {
        /// What was listed.
        what: &'static str,
        /// The cause.
        #[source]
        source: kube::Error,
    },
}

/// The cluster as the CLI sees it.
#[derive(Clone, Debug, Default)]
pub struct ClusterView {
    /// Users' objects, IPAMBlocks and the agents' statuses, as the operator reads them.
    pub snapshot: ClusterSnapshot,
    /// The NodeNetworks the operator wrote (spec and generation), by node.
    pub node_networks: BTreeMap<String, NodeNetwork>,
    /// Objects that could not be read, skipped.
    pub problems: Vec<String>,
}

/// Reads the cluster through a Kubernetes client (pods of `namespace` only, when given).
pub async fn load_from_client(client: kube::Client, namespace: Option<&str>) -> Result<ClusterView, SourceError> {
    kubernetes::load_with(client, namespace).await
}

/// The operator's and the agent's images as deployed, as (component, image): from the Deployment
/// and the DaemonSet in `-n` (default `gingham-system`); none through the file datastore, whose
/// components report no version.
pub async fn component_images(args: &SourceArgs) -> Result<Vec<(String, String)>, SourceError> {
    match &args.datastore {
        SourceSpec::File(_) => Ok(Vec::new()),
        SourceSpec::Kubernetes => {
            let namespace = args.namespace.as_deref().unwrap_or("gingham-system");
            kubernetes::component_images(kubernetes::client(args).await?, namespace).await
        }
    }
}

/// The same through a Kubernetes client.
pub async fn component_images_from_client(
    client: kube::Client,
    namespace: &str,
) -> Result<Vec<(String, String)>, SourceError> {
    kubernetes::component_images(client, namespace).await
}

/// Reads the cluster from the datastore the arguments name.
pub async fn load(args: &SourceArgs) -> Result<ClusterView, SourceError> {
    let mut view = match &args.datastore {
        SourceSpec::File(dir) => file::load(dir)?,
        SourceSpec::Kubernetes => kubernetes::load(args).await?,
    };
    view.problems.extend(undecodable_addresses(&view));
    Ok(view)
}

/// The addresses in agents' reports that are no IP address, by field path: the commands leave
/// them out, and this says so.
pub fn undecodable_addresses(view: &ClusterView) -> Vec<String> {
    let mut problems = Vec::new();
    for (node, status) in &view.snapshot.node_statuses {
        let endpoints =
            status.endpoints.iter().enumerate().map(|(i, e)| (format!("endpoints[{i}].address"), &e.address));
        let tunnel = status.tunnel_address.iter().map(|a| ("tunnelAddress".to_string(), a));
        for (path, address) in endpoints.chain(tunnel) {
            if address.value().is_none() {
                problems.push(format!(
                    "NodeNetwork/{node}: status.{path}: {:?} is no IP address; left out",
                    address.as_str()
                ));
            }
        }
    }
    problems
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn datastore_values_parse_or_name_the_two_forms() {
        let cases = [
            ("kubernetes", Ok(SourceSpec::Kubernetes)),
            ("file:/run/lab/datastore", Ok(SourceSpec::File("/run/lab/datastore".into()))),
            ("file:", Err(())),
            ("etcd", Err(())),
        ];
        for (text, expected) in cases {
            let parsed = text.parse::<SourceSpec>();
            match expected {
                Ok(spec) => assert_eq!(parsed.unwrap(), spec, "{text}"),
                Err(()) => assert!(parsed.unwrap_err().contains("use `kubernetes` or `file:DIR`"), "{text}"),
            }
        }
    }
}
