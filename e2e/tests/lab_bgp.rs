//! BGP topologies on the lab beyond the full mesh. Runs as root, one lab at a time.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::{assert_full_mesh, routes, up};
use gingham_e2e::datastore;

const ROUTE_REFLECTOR: &str = "lab: {prefix: tt}
subnets:
  - {name: a, cidr: 10.231.1.0/24}
nodes:
  - {name: rr1, subnet: a, labels: {route-reflector: 'true', gingham.dev/route-reflector-cluster-id: 224.0.0.1}}
  - {name: n1, subnet: a}
  - {name: n2, subnet: a}
  - {name: n3, subnet: a}
pods:
  - {name: p-n1, node: n1}
  - {name: p-n2, node: n2}
  - {name: p-n3, node: n3}
objects:
  - apiVersion: gingham.dev/v1
    kind: IPPool
    metadata: {name: pool}
    spec: {cidr: 10.232.0.0/16, blockSize: 26, vxlanMode: Never}
  - apiVersion: gingham.dev/v1
    kind: BGPConfiguration
    metadata: {name: default}
    spec: {asNumber: 64512, nodeToNodeMeshEnabled: false}
  - apiVersion: gingham.dev/v1
    kind: BGPPeer
    metadata: {name: peer-with-route-reflectors}
    spec: {nodeSelector: all(), peerSelector: route-reflector == 'true'}
";

#[test]
fn a_route_reflector_replaces_the_mesh() {
    let lab = up(ROUTE_REFLECTOR, "ghrr");
    assert_full_mesh(&lab);
    let rr = lab.state.node("rr1").unwrap().address.split('/').next().unwrap().to_string();
    for node in &lab.state.nodes {
        let status = datastore::node_status(&lab.datastore(), &node.name).unwrap().unwrap();
        let sessions = datastore::bgp_sessions(&status);
        let established = sessions.iter().filter(|s| s[3] == "Established").count();
        if node.name == "rr1" {
            assert_eq!(established, 3, "the reflector peers with every client: {sessions:?}");
        } else {
            assert_eq!(sessions.len(), 1, "{}: a client peers with the reflector only: {sessions:?}", node.name);
            assert_eq!((sessions[0][1].as_str(), established), (rr.as_str(), 1), "{}: {sessions:?}", node.name);
            // Reflected routes keep the originating node as next hop.
            let table = routes(&lab, &node.name);
            for other in lab.state.nodes.iter().filter(|o| o.name != node.name && o.name != "rr1") {
                let via = format!("via {} dev eth0 proto bird", other.address.split('/').next().unwrap());
                assert!(table.contains(&via), "{}: no reflected route {via}\n{table}", node.name);
            }
        }
    }
}
