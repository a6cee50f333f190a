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

/// gobgpd (Debian's `gobgpd`) in a "top-of-rack" namespace, configured only through a BGPPeer
/// resource on the gingham side, learns every node's block with the node as next hop.
#[test]
fn an_external_router_learns_every_block_through_a_bgp_peer() {
    if gingham_e2e::cmd::run("gobgpd", &["--version"]).is_err() {
        panic!("gobgpd is not installed: apt-get install -y gobgpd (the external BGP peer of this test)");
    }
    let mut lab = up(&common::scenario(&[("n1", "a"), ("n2", "a"), ("n3", "a")], "Never"), "ghtor");
    let tor = gingham_e2e::topology::add_host(&mut lab.state, "tor", "a", 250).unwrap();
    let mut config = String::from(
        "[global.config]\n  as = 64513\n  router-id = \"10.231.1.250\"\n  local-address-list = [\"10.231.1.250\"]\n",
    );
    for node in &lab.state.nodes {
        let address = node.address.split('/').next().unwrap();
        config.push_str(&format!(
            "[[neighbors]]\n  [neighbors.config]\n    neighbor-address = \"{address}\"\n    peer-as = 64512\n"
        ));
    }
    // Under logs/, which `down` removes with the rest of the lab.
    let file = lab.state.logs().join("gobgpd.toml");
    std::fs::create_dir_all(lab.state.logs()).unwrap();
    std::fs::write(&file, config).unwrap();
    let mut gobgpd = std::process::Command::new("ip");
    gobgpd.args(["netns", "exec", &tor, "gobgpd", "-t", "toml", "-f"]).arg(&file);
    let record = gingham_e2e::process::spawn("gobgpd", &mut gobgpd, &lab.state.logs().join("gobgpd.log")).unwrap();
    lab.state.processes.push(record);
    lab.state.save().unwrap();
    lab.apply(
        "apiVersion: gingham.dev/v1\nkind: BGPPeer\nmetadata: {name: tor}\nspec: {peerIP: 10.231.1.250, asNumber: 64513}\n",
    )
    .unwrap();
    let blocks = datastore::ipam_blocks(&lab.datastore());
    assert_eq!(blocks.len(), 3, "{blocks:?}");
    let mut rib = String::new();
    for _ in 0..150 {
        rib = gingham_e2e::cmd::run_in(&tor, "gobgp", &["global", "rib", "-a", "ipv4"]).unwrap_or_default();
        if blocks.iter().all(|(cidr, _)| rib.contains(cidr.as_str())) {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
    for (cidr, node) in &blocks {
        let next_hop = lab.state.node(node).unwrap().address.split('/').next().unwrap().to_string();
        let line = rib.lines().find(|l| l.contains(cidr.as_str()));
        assert!(line.is_some_and(|l| l.contains(&next_hop)), "the router must learn {cidr} via {next_hop}:\n{rib}");
    }
}
