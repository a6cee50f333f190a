//! The lab's stand-in for Kubernetes' EndpointSlice controller: a Service the lab is given
//! (`gingham-lab apply`, or the harness's `apply`) with a `selector` gets one EndpointSlice per
//! family, `<service>-ipv4` and `<service>-ipv6`, labelled `kubernetes.io/service-name`, holding
//! the addresses of the lab's pods in its namespace whose labels match (read from the Pod objects
//! the lab wrote: labels and `status.podIPs`), and the service's ports as target ports (a numeric
//! `targetPort`, else `port`; a named `targetPort` is resolved on no pod and left out). The slices
//! are written when the Service is, and removed with it.

use std::collections::BTreeMap;
use std::path::Path;

use serde_json::{Value, json};

use crate::datastore::{self, DatastoreError};
use crate::family::family_of;
use crate::state::LabState;
use gingham_crds::api::IpFamily;
use gingham_crds::manifest::read_manifest_file;

/// A pod as a Service's selector sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LabPod {
    /// Its namespace.
    pub namespace: String,
    /// Its labels.
    pub labels: BTreeMap<String, String>,
    /// Its addresses (without prefix length), of each family it has.
    pub addresses: Vec<String>,
}

/// Whether a manifest is a v1 Service.
pub fn is_service(object: &Value) -> bool {
    object.get("apiVersion").and_then(Value::as_str) == Some("v1")
        && object.get("kind").and_then(Value::as_str) == Some("Service")
}

/// The lab's pods as their Pod objects in the datastore say (a pod whose object is missing is
/// left out).
pub fn lab_pods(state: &LabState) -> Result<Vec<LabPod>, DatastoreError> {
    let dir = state.datastore();
    let mut pods = Vec::new();
    for record in &state.pods {
        let reference = json!({"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": record.name, "namespace": record.namespace}});
        let path = datastore::object_path(&dir, &reference);
        if let Some(pod) = read_pod(&path)? {
            pods.push(pod);
        }
    }
    Ok(pods)
}

fn read_pod(path: &Path) -> Result<Option<LabPod>, DatastoreError> {
    let text = match read_manifest_file(path) {
        Ok(text) => text,
        Err(e) if e.is_not_found() => return Ok(None),
        Err(e) => return Err(e.into()),
    };
    let object: Value = serde_saphyr::from_str(&text)
        .map_err(|e| DatastoreError::Invalid { file: path.display().to_string(), message: e.to_string() })?;
    let labels = object
        .pointer("/metadata/labels")
        .and_then(Value::as_object)
        .into_iter()
        .flatten()
        .filter_map(|(k, v)| Some((k.clone(), v.as_str()?.to_string())))
        .collect();
    let addresses = object
        .pointer("/status/podIPs")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|ip| ip.get("ip")?.as_str().map(str::to_string))
        .collect();
    let namespace = object.pointer("/metadata/namespace").and_then(Value::as_str).unwrap_or("default").to_string();
    Ok(Some(LabPod { namespace, labels, addresses }))
}

/// The objects the lab derives from one it is given: a Service's EndpointSlices over its pods.
pub fn derived(state: &LabState, object: &Value) -> Result<Vec<Value>, DatastoreError> {
    if !is_service(object) {
        return Ok(Vec::new());
    }
    Ok(endpoint_slices(object, &lab_pods(state)?))
}

/// The EndpointSlices of a Service over `pods`: one per family the service has endpoints in. A
/// Service without a selector gets none (as in Kubernetes).
pub fn endpoint_slices(service: &Value, pods: &[LabPod]) -> Vec<Value> {
    let Some(selector) = service.pointer("/spec/selector").and_then(Value::as_object) else { return Vec::new() };
    let name = service.pointer("/metadata/name").and_then(Value::as_str).unwrap_or_default();
    let namespace = service.pointer("/metadata/namespace").and_then(Value::as_str).unwrap_or("default");
    let selected: Vec<&LabPod> = pods
        .iter()
        .filter(|pod| pod.namespace == namespace)
        .filter(|pod| selector.iter().all(|(k, v)| v.as_str() == pod.labels.get(k).map(String::as_str)))
        .collect();
    let ports: Vec<Value> = service
        .pointer("/spec/ports")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|port| {
            let number = port.get("targetPort").and_then(Value::as_u64).or_else(|| port.get("port")?.as_u64())?;
            let protocol = port.get("protocol").and_then(Value::as_str).unwrap_or("TCP");
            Some(json!({"port": number, "protocol": protocol}))
        })
        .collect();
    [(IpFamily::IPv4, "IPv4", "ipv4"), (IpFamily::IPv6, "IPv6", "ipv6")]
        .into_iter()
        .filter_map(|(family, address_type, suffix)| {
            let endpoints: Vec<Value> = selected
                .iter()
                .flat_map(|pod| pod.addresses.iter())
                .filter(|a| family_of(a) == family)
                .collect::<std::collections::BTreeSet<_>>()
                .into_iter()
                .map(|ip| json!({"addresses": [ip], "conditions": {"ready": true}}))
                .collect();
            (!endpoints.is_empty()).then(|| {
                json!({
                    "apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
                    "metadata": {"name": format!("{name}-{suffix}"), "namespace": namespace,
                                 "labels": {"kubernetes.io/service-name": name}},
                    "addressType": address_type, "endpoints": endpoints, "ports": ports,
                })
            })
        })
        .collect()
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;

    fn pod(namespace: &str, app: &str, addresses: &[&str]) -> LabPod {
        LabPod {
            namespace: namespace.into(),
            labels: BTreeMap::from([("app".to_string(), app.to_string())]),
            addresses: addresses.iter().map(|a| (*a).to_string()).collect(),
        }
    }

    #[test]
    fn a_service_selects_its_namespaces_pods_per_family_with_its_target_ports() {
        let refs = [
            pod("prod", "web", &["10.232.0.5", "fd00:232::5"]),
            pod("prod", "db", &["10.232.0.6"]),
            pod("dev", "web", &["10.232.0.7"]),
        ];
        let service = json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "front", "namespace": "prod"},
            "spec": {"selector": {"app": "web"}, "ports": [{"port": 8080, "targetPort": 80}, {"port": 53, "protocol": "UDP"}]}});
        assert!(is_service(&service));
        let slices = endpoint_slices(&service, &refs);
        let summary: Vec<(String, Value)> = slices
            .iter()
            .map(|s| (s["metadata"]["name"].as_str().unwrap().to_string(), s["endpoints"].clone()))
            .collect();
        assert_eq!(
            summary,
            [
                ("front-ipv4".to_string(), json!([{"addresses": ["10.232.0.5"], "conditions": {"ready": true}}])),
                ("front-ipv6".to_string(), json!([{"addresses": ["fd00:232::5"], "conditions": {"ready": true}}])),
            ]
        );
        assert_eq!(slices[0]["ports"], json!([{"port": 80, "protocol": "TCP"}, {"port": 53, "protocol": "UDP"}]));
        assert_eq!(slices[0]["metadata"]["labels"]["kubernetes.io/service-name"], "front");
        let headless =
            json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "x", "namespace": "prod"}, "spec": {}});
        assert!(endpoint_slices(&headless, &refs).is_empty(), "no selector: no slice");
    }
}
