//! The lab's stand-in for Kubernetes' EndpointSlice controller: a Service the lab is given
//! (`apply`, or a scenario's `objects:`) with a `selector` gets one EndpointSlice per family,
//! `<service>-ipv4` and `<service>-ipv6`, labelled `kubernetes.io/service-name`, holding the
//! addresses of the lab's pods in its namespace whose labels match, and the service's ports as
//! target ports (a numeric `targetPort`, else `port`; a named `targetPort` is resolved on no pod
//! and left out). The slices are written when the Service is, and removed with it.

use serde_json::{Value, json};

use crate::family::family_of;
use crate::scenario::PodSpec;
use crate::state::PodRecord;
use gingham_crds::api::IpFamily;

/// Whether a manifest is a v1 Service.
pub fn is_service(object: &Value) -> bool {
    object.get("apiVersion").and_then(Value::as_str) == Some("v1")
        && object.get("kind").and_then(Value::as_str) == Some("Service")
}

/// The EndpointSlices of a Service over the lab's pods (`(spec, record)` of each): one per family
/// the service has endpoints in. A Service without a selector gets none (as in Kubernetes).
pub fn endpoint_slices(service: &Value, pods: &[(&PodSpec, &PodRecord)]) -> Vec<Value> {
    let Some(selector) = service.pointer("/spec/selector").and_then(Value::as_object) else { return Vec::new() };
    let name = service.pointer("/metadata/name").and_then(Value::as_str).unwrap_or_default();
    let namespace = service.pointer("/metadata/namespace").and_then(Value::as_str).unwrap_or("default");
    let selected: Vec<&PodRecord> = pods
        .iter()
        .filter(|(spec, _)| spec.namespace == namespace)
        .filter(|(spec, _)| selector.iter().all(|(k, v)| v.as_str() == spec.labels.get(k).map(String::as_str)))
        .map(|(_, record)| *record)
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
                .flat_map(|record| record.addresses.iter().chain(record.address.iter()))
                .filter(|a| family_of(a) == family)
                .filter_map(|a| a.split('/').next())
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
    use std::collections::BTreeMap;

    use super::*;

    fn pod(namespace: &str, name: &str, app: &str, addresses: &[&str]) -> (PodSpec, PodRecord) {
        let spec = PodSpec {
            name: name.into(),
            namespace: namespace.into(),
            node: "n1".into(),
            labels: BTreeMap::from([("app".to_string(), app.to_string())]),
            ports: Vec::new(),
            service_account: None,
        };
        let record = PodRecord {
            name: name.into(),
            namespace: namespace.into(),
            node: "n1".into(),
            netns: String::new(),
            container_id: String::new(),
            uid: String::new(),
            address: addresses.first().map(|a| (*a).to_string()),
            addresses: addresses.iter().map(|a| (*a).to_string()).collect(),
        };
        (spec, record)
    }

    #[test]
    fn a_service_selects_its_namespaces_pods_per_family_with_its_target_ports() {
        let pods = [
            pod("prod", "web", "web", &["10.232.0.5/32", "fd00:232::5/128"]),
            pod("prod", "db", "db", &["10.232.0.6/32"]),
            pod("dev", "web", "web", &["10.232.0.7/32"]),
        ];
        let refs: Vec<(&PodSpec, &PodRecord)> = pods.iter().map(|(s, r)| (s, r)).collect();
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
