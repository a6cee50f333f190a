//! The agent DaemonSet, rendered from the `default` FelixConfiguration (see `felix` for which
//! fields land here) in the same shape as `config/agent/daemonset.yaml`.

use gingham_crds::api::{FelixConfiguration, FelixConfigurationSpec};
use k8s_openapi::api::apps::v1::DaemonSet;
use serde_json::json;

use super::OperatorSettings;

/// The DaemonSet's name (and its pods' `app.kubernetes.io/name`).
pub const NAME: &str = "gingham-node-agent";
/// The agent's health port when FelixConfiguration does not set one.
pub const DEFAULT_HEALTH_PORT: u16 = 9099;
/// The agent's metrics port when FelixConfiguration does not set one.
pub const DEFAULT_METRICS_PORT: u16 = 9091;

/// The ConfigMap that hands the agents the CA of the stream's certificate (the operator writes it
/// when it generates the certificate; bring your own with your own certificate).
pub const STREAM_CA_CONFIG_MAP: &str = "gingham-stream-ca";
/// The CA's key in that ConfigMap.
pub const STREAM_CA_KEY: &str = "ca.crt";
/// Where the agent finds its stream token (`token`) and the CA (`ca.crt`).
pub const STREAM_CREDENTIALS: &str = "/var/run/secrets/gingham.dev/stream";
/// How long an agent's stream token lives; the kubelet replaces it well before.
const STREAM_TOKEN_SECONDS: i64 = 3600;

/// How the agents reach the operator's stream (docs/stream.md): the Service in front of it, and the
/// audience of the projected ServiceAccount token each agent presents.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AgentStream {
    /// The Service's name (in the operator's namespace).
    pub service: String,
    /// The tokens' audience.
    pub audience: String,
}

impl AgentStream {
    /// The agent's flags. The address is the Service's cluster IP from the variables the kubelet
    /// sets for the Services of the pod's namespace, not a DNS name: the agent must reach the stream
    /// before the cluster's DNS runs on the pod network. The certificate is checked for the Service's
    /// DNS name.
    fn args(&self, namespace: &str) -> Vec<String> {
        let variable = self.service.to_uppercase().replace('-', "_");
        vec![
            format!("--stream-server=https://$({variable}_SERVICE_HOST):$({variable}_SERVICE_PORT)"),
            format!("--stream-tls-server-name={}.{namespace}.svc", self.service),
            format!("--stream-token-file={STREAM_CREDENTIALS}/token"),
            format!("--stream-ca-file={STREAM_CREDENTIALS}/{STREAM_CA_KEY}"),
        ]
    }

    /// The projected volume with the token and the CA. The CA is optional: an agent that starts
    /// before the operator has published it follows the stream once the kubelet adds it.
    fn volume(&self) -> serde_json::Value {
        json!({"name": "stream", "projected": {"sources": [
            {"serviceAccountToken": {"audience": self.audience, "expirationSeconds": STREAM_TOKEN_SECONDS, "path": "token"}},
            {"configMap": {"name": STREAM_CA_CONFIG_MAP, "optional": true, "items": [{"key": STREAM_CA_KEY, "path": STREAM_CA_KEY}]}},
        ]}})
    }
}

/// Why the DaemonSet could not be rendered.
#[derive(Debug, thiserror::Error)]
pub enum RenderError {
    /// The rendered JSON is not a DaemonSet (a bug in this module).
    #[error("the rendered agent DaemonSet {namespace}/{NAME} does not deserialize: {source}")]
    Shape {
        /// The DaemonSet's namespace.
        namespace: String,
        /// The deserialization error.
        #[source]
        source: serde_json::Error,
    },
}

impl RenderError {
    /// A stable short label for metrics.
    pub fn metric_label(&self) -> &'static str {
        match self {
            RenderError::Shape { .. } => "daemonset_shape",
        }
    }
}

/// Renders the agent DaemonSet. `default` is the `default` FelixConfiguration; when it exists the
/// DaemonSet is owned by it, so deleting it cascades.
pub fn render(default: Option<&FelixConfiguration>, settings: &OperatorSettings) -> Result<DaemonSet, RenderError> {
    let spec = default.map(|c| c.spec.clone()).unwrap_or_default();
    let FelixConfigurationSpec {
        health_enabled, health_port, prometheus_metrics_enabled, prometheus_metrics_port, ..
    } = &spec;
    let health_port = health_port.unwrap_or(DEFAULT_HEALTH_PORT);
    let metrics_port = prometheus_metrics_port.unwrap_or(DEFAULT_METRICS_PORT);
    let log_level = spec.log_severity_screen.clone().filter(|l| !l.is_empty()).unwrap_or_else(|| "Info".into());
    let owner = default.and_then(|config| {
        config.metadata.uid.as_ref().map(|uid| {
            json!([{
                "apiVersion": gingham_crds::api::API_VERSION,
                "kind": "FelixConfiguration",
                "name": config.metadata.name.clone().unwrap_or_default(),
                "uid": uid,
                "controller": true,
                "blockOwnerDeletion": true,
            }])
        })
    });
    let mut ports = Vec::new();
    let mut env = vec![
        json!({"name": "NODE_NAME", "valueFrom": {"fieldRef": {"fieldPath": "spec.nodeName"}}}),
        json!({"name": "LOG_LEVEL", "value": log_level}),
    ];
    let health = health_enabled.unwrap_or(true);
    if health {
        ports.push(json!({"name": "health", "containerPort": health_port}));
        env.push(json!({"name": "HEALTH_PORT", "value": health_port.to_string()}));
    }
    if prometheus_metrics_enabled.unwrap_or(false) {
        ports.push(json!({"name": "metrics", "containerPort": metrics_port}));
        env.push(json!({"name": "METRICS_PORT", "value": metrics_port.to_string()}));
    }
    let probe = |path: &str| health.then(|| json!({"httpGet": {"path": path, "port": health_port}}));
    let host_path =
        |name: &str, path: &str| json!({"name": name, "hostPath": {"path": path, "type": "DirectoryOrCreate"}});
    let mut args: Vec<String> =
        ["--datastore", "kubernetes", "--state-dir", "/var/lib/gingham", "--cni-socket", "/run/gingham/cni.sock"]
            .map(String::from)
            .to_vec();
    let mut mounts = vec![
        json!({"name": "cni-bin", "mountPath": "/host/opt/cni/bin"}),
        json!({"name": "cni-net", "mountPath": "/host/etc/cni/net.d"}),
        json!({"name": "state", "mountPath": "/var/lib/gingham"}),
        json!({"name": "run", "mountPath": "/run/gingham"}),
        json!({"name": "netns", "mountPath": "/var/run/netns", "mountPropagation": "HostToContainer"}),
    ];
    let mut volumes = vec![
        host_path("cni-bin", "/opt/cni/bin"),
        host_path("cni-net", "/etc/cni/net.d"),
        host_path("state", "/var/lib/gingham"),
        host_path("run", "/run/gingham"),
        host_path("netns", "/var/run/netns"),
    ];
    if let Some(stream) = &settings.agent_stream {
        args.extend(stream.args(&settings.namespace));
        mounts.push(json!({"name": "stream", "mountPath": STREAM_CREDENTIALS, "readOnly": true}));
        volumes.push(stream.volume());
    }
    let labels = json!({"app.kubernetes.io/name": NAME});
    let value = json!({
        "apiVersion": "apps/v1",
        "kind": "DaemonSet",
        "metadata": {"name": NAME, "namespace": settings.namespace, "labels": labels, "ownerReferences": owner},
        "spec": {
            "selector": {"matchLabels": labels},
            "updateStrategy": {"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 1}},
            "template": {
                "metadata": {"labels": labels},
                "spec": {
                    "serviceAccountName": NAME,
                    "hostNetwork": true,
                    "priorityClassName": "system-node-critical",
                    "tolerations": [{"operator": "Exists"}],
                    "terminationGracePeriodSeconds": 10,
                    // The stream's address comes from the Service variables.
                    "enableServiceLinks": true,
                    "containers": [{
                        "name": "agent",
                        "image": settings.agent_image,
                        "args": args,
                        "env": env,
                        "ports": ports,
                        "readinessProbe": probe("/readyz"),
                        "livenessProbe": probe("/healthz"),
                        "securityContext": {
                            "privileged": false,
                            "capabilities": {"add": ["NET_ADMIN", "NET_RAW", "SYS_ADMIN"]},
                        },
                        "volumeMounts": mounts,
                    }],
                    "volumes": volumes,
                },
            },
        },
    });
    serde_json::from_value(value).map_err(|source| RenderError::Shape { namespace: settings.namespace.clone(), source })
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;
    use crate::core::testkit::{Meta, meta};

    fn felix(spec: FelixConfigurationSpec) -> FelixConfiguration {
        FelixConfiguration { metadata: meta(None, "default"), spec }.uid("felix-uid")
    }

    #[test]
    fn the_daemonset_has_what_the_agent_needs() {
        let settings = OperatorSettings::default();
        let ds = render(Some(&felix(FelixConfigurationSpec::default())), &settings).unwrap();
        assert_eq!(ds.metadata.namespace.as_deref(), Some("gingham-system"));
        let owner = &ds.metadata.owner_references.as_ref().unwrap()[0];
        assert_eq!((owner.kind.as_str(), owner.uid.as_str()), ("FelixConfiguration", "felix-uid"));
        let spec = ds.spec.unwrap();
        let strategy = spec.update_strategy.unwrap();
        assert_eq!(strategy.type_.as_deref(), Some("RollingUpdate"));
        let pod = spec.template.spec.unwrap();
        assert_eq!(pod.host_network, Some(true));
        assert_eq!(pod.tolerations.unwrap()[0].operator.as_deref(), Some("Exists"));
        let container = &pod.containers[0];
        assert_eq!(container.image.as_deref(), Some(settings.agent_image.as_str()));
        let caps = container.security_context.as_ref().unwrap().capabilities.as_ref().unwrap().add.clone().unwrap();
        assert_eq!(caps, ["NET_ADMIN", "NET_RAW", "SYS_ADMIN"]);
        let env = container.env.as_ref().unwrap();
        let node_name = env.iter().find(|e| e.name == "NODE_NAME").unwrap();
        assert_eq!(node_name.value_from.as_ref().unwrap().field_ref.as_ref().unwrap().field_path, "spec.nodeName");
        let mounts: Vec<&str> = container.volume_mounts.iter().flatten().map(|m| m.mount_path.as_str()).collect();
        for path in ["/var/lib/gingham", "/run/gingham", "/var/run/netns", "/host/opt/cni/bin", "/host/etc/cni/net.d"] {
            assert!(mounts.contains(&path), "{path} in {mounts:?}");
        }
        let netns = container.volume_mounts.iter().flatten().find(|m| m.name == "netns").unwrap();
        assert_eq!(netns.mount_propagation.as_deref(), Some("HostToContainer"));
    }

    #[test]
    fn log_level_and_ports_come_from_felix() {
        let spec = FelixConfigurationSpec {
            log_severity_screen: Some("Debug".into()),
            health_port: Some(9999),
            prometheus_metrics_enabled: Some(true),
            ..FelixConfigurationSpec::default()
        };
        let ds = render(Some(&felix(spec)), &OperatorSettings::default()).unwrap();
        let container = ds.spec.unwrap().template.spec.unwrap().containers[0].clone();
        let env = container.env.unwrap();
        assert_eq!(env.iter().find(|e| e.name == "LOG_LEVEL").unwrap().value.as_deref(), Some("Debug"));
        let ports: Vec<(String, i32)> =
            container.ports.unwrap().into_iter().map(|p| (p.name.unwrap_or_default(), p.container_port)).collect();
        assert_eq!(ports, [("health".to_string(), 9999), ("metrics".to_string(), 9091)]);
        let unowned = render(None, &OperatorSettings::default()).unwrap();
        assert!(unowned.metadata.owner_references.is_none());
    }

    #[test]
    fn agents_follow_the_stream_with_a_projected_token_and_the_ca_when_the_operator_serves_it() {
        let plain = render(None, &OperatorSettings::default()).unwrap().spec.unwrap().template.spec.unwrap();
        assert!(plain.containers[0].args.iter().flatten().all(|arg| !arg.starts_with("--stream")));
        assert!(plain.volumes.iter().flatten().all(|volume| volume.name != "stream"));

        let stream = AgentStream { service: "gingham-stream".into(), audience: "gingham-stream".into() };
        let settings = OperatorSettings { agent_stream: Some(stream), ..OperatorSettings::default() };
        let pod = render(None, &settings).unwrap().spec.unwrap().template.spec.unwrap();
        assert_eq!(pod.enable_service_links, Some(true));
        let container = &pod.containers[0];
        let stream_args: Vec<&str> =
            container.args.iter().flatten().map(String::as_str).filter(|arg| arg.starts_with("--stream")).collect();
        assert_eq!(
            stream_args,
            [
                "--stream-server=https://$(GINGHAM_STREAM_SERVICE_HOST):$(GINGHAM_STREAM_SERVICE_PORT)",
                "--stream-tls-server-name=gingham-stream.gingham-system.svc",
                "--stream-token-file=/var/run/secrets/gingham.dev/stream/token",
                "--stream-ca-file=/var/run/secrets/gingham.dev/stream/ca.crt",
            ]
        );
        let mount = container.volume_mounts.iter().flatten().find(|m| m.name == "stream").unwrap();
        assert_eq!((mount.mount_path.as_str(), mount.read_only), (STREAM_CREDENTIALS, Some(true)));
        let volume = pod.volumes.iter().flatten().find(|v| v.name == "stream").unwrap();
        let sources = volume.projected.as_ref().unwrap().sources.clone().unwrap();
        let token = sources[0].service_account_token.as_ref().unwrap();
        assert_eq!((token.audience.as_deref(), token.path.as_str()), (Some("gingham-stream"), "token"));
        let ca = sources[1].config_map.as_ref().unwrap();
        assert_eq!((ca.name.as_str(), ca.optional), ("gingham-stream-ca", Some(true)));
    }

    #[test]
    fn the_shipped_daemonset_follows_the_stream_as_the_rendered_one_does() {
        let shipped: DaemonSet = serde_saphyr::from_str(include_str!("../../../config/agent/daemonset.yaml")).unwrap();
        let stream = AgentStream { service: "gingham-stream".into(), audience: "gingham-stream".into() };
        let settings = OperatorSettings { agent_stream: Some(stream), ..OperatorSettings::default() };
        let rendered = render(None, &settings).unwrap();
        let pods = [shipped, rendered].map(|ds| ds.spec.unwrap().template.spec.unwrap());
        let [shipped, rendered] = pods.map(|pod| {
            let container = &pod.containers[0];
            let args = container.args.clone();
            let mount = container.volume_mounts.iter().flatten().find(|m| m.name == "stream").cloned();
            let volume = pod.volumes.iter().flatten().find(|v| v.name == "stream").cloned();
            (args, mount, volume, pod.enable_service_links)
        });
        assert_eq!(shipped, rendered, "config/agent/daemonset.yaml and daemonset.rs disagree on the stream");
    }
}
