//! Reading the cluster through the Kubernetes API: one list per kind the commands need, with
//! kubectl's `--kubeconfig` and `--context` (in-cluster when neither is given and no kubeconfig
//! is found).

use gingham_crds::api::{GlobalNetworkPolicy, IPAMBlock, IPPool, NetworkPolicy, NodeNetwork};
use gingham_operator::core::daemonset::NAME as AGENT;
use k8s_openapi::api::apps::v1::{DaemonSet, Deployment};
use k8s_openapi::api::core::v1::{Pod, PodSpec};
use k8s_openapi::api::networking::v1::NetworkPolicy as KubeNetworkPolicy;
use kube::api::ListParams;
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::{Api, Client, Config};
use serde::de::DeserializeOwned;

use super::{ClusterView, SourceError};
use crate::args::SourceArgs;

/// The operator's Deployment (config/operator/deployment.yaml).
const OPERATOR: &str = "gingham-operator";

/// A client as kubectl would build it from the arguments.
pub(super) async fn client(args: &SourceArgs) -> Result<Client, SourceError> {
    let options = KubeConfigOptions { context: args.context.clone(), ..KubeConfigOptions::default() };
    let bad = |e: &dyn std::fmt::Display| SourceError::Kubeconfig(e.to_string());
    let config = match &args.kubeconfig {
        Some(path) => {
            let kubeconfig =
                Kubeconfig::read_from(path).map_err(|e| SourceError::Kubeconfig(format!("{}: {e}", path.display())))?;
            Config::from_custom_kubeconfig(kubeconfig, &options).await.map_err(|e| bad(&e))?
        }
        None if args.context.is_some() => Config::from_kubeconfig(&options).await.map_err(|e| bad(&e))?,
        None => Config::infer().await.map_err(|e| bad(&e))?,
    };
    Client::try_from(config).map_err(|source| SourceError::Kube { what: "client", source })
}

/// Reads what the commands need through `client`.
pub(super) async fn load_with(client: Client, namespace: Option<&str>) -> Result<ClusterView, SourceError> {
    let mut view = ClusterView::default();
    for network in list::<NodeNetwork>(Api::all(client.clone()), "nodenetworks").await? {
        let name = network.metadata.name.clone().unwrap_or_default();
        if let Some(status) = &network.status {
            view.snapshot.node_statuses.insert(name.clone(), status.clone());
        }
        view.node_networks.insert(name, network);
    }
    view.snapshot.blocks = list::<IPAMBlock>(Api::all(client.clone()), "ipamblocks").await?;
    view.snapshot.pools = list::<IPPool>(Api::all(client.clone()), "ippools").await?;
    let pods = match namespace {
        Some(namespace) => Api::namespaced(client, namespace),
        None => Api::all(client),
    };
    view.snapshot.pods = list::<Pod>(pods.clone(), "pods").await?;
    // Policies, for the commands that name them (`policy log` maps a log prefix back to one).
    let namespaced = |client: Client| -> (Api<NetworkPolicy>, Api<KubeNetworkPolicy>) {
        match namespace {
            Some(namespace) => (Api::namespaced(client.clone(), namespace), Api::namespaced(client, namespace)),
            None => (Api::all(client.clone()), Api::all(client)),
        }
    };
    let client = pods.into_client();
    let (policies, kube_policies) = namespaced(client.clone());
    view.snapshot.network_policies = list(policies, "networkpolicies.gingham.dev").await?;
    view.snapshot.global_network_policies =
        list::<GlobalNetworkPolicy>(Api::all(client), "globalnetworkpolicies").await?;
    view.snapshot.kube_network_policies = list(kube_policies, "networkpolicies.networking.k8s.io").await?;
    Ok(view)
}

/// Reads the cluster the arguments name.
pub(super) async fn load(args: &SourceArgs) -> Result<ClusterView, SourceError> {
    load_with(client(args).await?, args.namespace.as_deref()).await
}

/// The images of the operator's Deployment and the agent's DaemonSet in `namespace`, as
/// (component, image); a component that is not there is left out.
pub(super) async fn component_images(client: Client, namespace: &str) -> Result<Vec<(String, String)>, SourceError> {
    let image = |spec: Option<&PodSpec>| spec.and_then(|s| s.containers.first()).and_then(|c| c.image.clone());
    let mut images = Vec::new();
    let deployments: Api<Deployment> = Api::namespaced(client.clone(), namespace);
    let found =
        deployments.get_opt(OPERATOR).await.map_err(|source| SourceError::Kube { what: "deployments", source })?;
    let spec = found.as_ref().and_then(|d| d.spec.as_ref()).and_then(|s| s.template.spec.as_ref());
    images.extend(image(spec).map(|i| (OPERATOR.to_string(), i)));
    let daemon_sets: Api<DaemonSet> = Api::namespaced(client, namespace);
    let found = daemon_sets.get_opt(AGENT).await.map_err(|source| SourceError::Kube { what: "daemonsets", source })?;
    let spec = found.as_ref().and_then(|d| d.spec.as_ref()).and_then(|s| s.template.spec.as_ref());
    images.extend(image(spec).map(|i| (AGENT.to_string(), i)));
    Ok(images)
}

async fn list<K>(api: Api<K>, what: &'static str) -> Result<Vec<K>, SourceError>
where
    K: kube::Resource + Clone + DeserializeOwned + std::fmt::Debug,
{
    api.list(&ListParams::default()).await.map(|list| list.items).map_err(|source| SourceError::Kube { what, source })
}
