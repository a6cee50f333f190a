#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use super::v1alpha1::{self, AdminNetworkPolicy, BaselineAdminNetworkPolicy};
use super::v1alpha2::{self, ClusterNetworkPolicy, Tier};

#[test]
fn a_cluster_network_policy_in_the_published_shape_decodes() {
    let text = r#"
apiVersion: policy.networking.k8s.io/v1alpha2
kind: ClusterNetworkPolicy
metadata: {name: gress-rules}
spec:
  tier: Baseline
  priority: 15
  subject: {pods: {namespaceSelector: {matchLabels: {house: gryffindor}}, podSelector: {}}}
  ingress:
  - name: from-slytherin
    action: Pass
    from: [{namespaces: {matchLabels: {house: slytherin}}}]
    protocols: [{tcp: {destinationPort: {number: 80}}}, {udp: {destinationPort: {range: {start: 5000, end: 5353}}}}, {destinationNamedPort: web}]
  egress:
  - action: Deny
    to: [{networks: [10.0.0.0/8, "fd00::/8"]}, {nodes: {matchLabels: {role: infra}}}, {domainNames: ["*.example.com"]}]
"#;
    let cnp: ClusterNetworkPolicy = serde_saphyr::from_str(text).unwrap();
    assert_eq!(cnp.spec.tier, Tier::Baseline);
    assert_eq!(cnp.spec.priority, 15);
    assert!(cnp.spec.subject.pods.is_some() && cnp.spec.subject.namespaces.is_none());
    let ingress = &cnp.spec.ingress[0];
    assert_eq!(ingress.action, v1alpha2::Action::Pass);
    let protocols = ingress.protocols.as_ref().unwrap();
    assert_eq!(protocols[0].tcp.as_ref().unwrap().destination_port.as_ref().unwrap().number, Some(80));
    let range = protocols[1].udp.as_ref().unwrap().destination_port.as_ref().unwrap().range.as_ref().unwrap();
    assert_eq!((range.start, range.end), (5000, 5353));
    assert_eq!(protocols[2].destination_named_port.as_deref(), Some("web"));
    let to = &cnp.spec.egress[0].to;
    assert_eq!(to[0].networks.as_ref().unwrap().len(), 2);
    assert!(to[1].nodes.is_some());
    assert_eq!(to[2].domain_names.as_ref().unwrap()[0], "*.example.com");
}

#[test]
fn admin_and_baseline_admin_network_policies_decode_with_the_tcp_default_left_to_the_reader() {
    let anp: AdminNetworkPolicy = serde_saphyr::from_str(
        r#"
apiVersion: policy.networking.k8s.io/v1alpha1
kind: AdminNetworkPolicy
metadata: {name: a}
spec:
  priority: 3
  subject: {namespaces: {}}
  egress:
  - action: Allow
    to: [{pods: {namespaceSelector: {}, podSelector: {matchLabels: {app: db}}}}]
    ports: [{portNumber: {port: 5432}}, {portRange: {protocol: UDP, start: 1, end: 9}}, {namedPort: pg}]
"#,
    )
    .unwrap();
    assert_eq!(anp.spec.priority, 3);
    let rule = &anp.spec.egress[0];
    assert_eq!(rule.action, v1alpha1::Action::Allow);
    let ports = rule.ports.as_ref().unwrap();
    assert_eq!(ports[0].port_number.as_ref().unwrap().protocol, None);
    assert_eq!(ports[1].port_range.as_ref().unwrap().protocol.as_deref(), Some("UDP"));
    assert_eq!(ports[2].named_port.as_deref(), Some("pg"));

    let banp: BaselineAdminNetworkPolicy = serde_saphyr::from_str(
        "apiVersion: policy.networking.k8s.io/v1alpha1\nkind: BaselineAdminNetworkPolicy\nmetadata: {name: default}\n\
         spec: {subject: {namespaces: {}}, ingress: [{action: Deny, from: [{namespaces: {}}]}]}\n",
    )
    .unwrap();
    assert_eq!(banp.spec.ingress[0].action, v1alpha1::Action::Deny);
    assert_eq!(banp.spec.ingress[0].from.len(), 1);
}
