//! BGP topologies on the lab beyond the full mesh. Runs as root, one lab at a time.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::{Stack, assert_full_mesh, routes_in, up};
use gingham_crds::api::IpFamily;
use gingham_e2e::datastore;
use gingham_e2e::family::family_of;

/// Three clients and a route reflector, without the mesh, in the families of `stack`.
fn route_reflector(stack: Stack) -> String {
    format!(
        "lab: {{prefix: tt}}
subnets:
{subnet}nodes:
  - {{name: rr1, subnet: a, labels: {{route-reflector: 'true', gingham.dev/route-reflector-cluster-id: 224.0.0.1}}}}
  - {{name: n1, subnet: a}}
  - {{name: n2, subnet: a}}
  - {{name: n3, subnet: a}}
pods:
  - {{name: p-n1, node: n1}}
  - {{name: p-n2, node: n2}}
  - {{name: p-n3, node: n3}}
objects:
{pools}  - apiVersion: gingham.dev/v1
    kind: BGPConfiguration
    metadata: {{name: default}}
    spec: {{asNumber: 64512, nodeToNodeMeshEnabled: false}}
  - apiVersion: gingham.dev/v1
    kind: BGPPeer
    metadata: {{name: peer-with-route-reflectors}}
    spec: {{nodeSelector: all(), peerSelector: route-reflector == 'true'}}
",
        subnet = stack.subnet("a"),
        pools = stack.pools("Never", false),
    )
}

fn a_route_reflector_replaces_the_mesh_in(stack: Stack, prefix: &str) {
    let lab = up(&route_reflector(stack), prefix);
    assert_full_mesh(&lab);
    let families = stack.families();
    let rr = lab.state.node("rr1").unwrap();
    for node in &lab.state.nodes {
        let status = datastore::node_status(&lab.datastore(), &node.name).unwrap().unwrap();
        let sessions = datastore::bgp_sessions(&status);
        let established = sessions.iter().filter(|s| s[3] == "Established").count();
        if node.name == "rr1" {
            assert_eq!(
                established,
                3 * families.len(),
                "the reflector peers with every client in each family: {sessions:?}"
            );
            continue;
        }
        assert_eq!(
            sessions.len(),
            families.len(),
            "{}: a client peers with the reflector only, once per family: {sessions:?}",
            node.name
        );
        assert_eq!(established, families.len(), "{}: {sessions:?}", node.name);
        for family in &families {
            let reflector = rr.ip(*family).unwrap();
            assert!(
                sessions.iter().any(|s| s[1] == reflector),
                "{} {family}: no session to {reflector}: {sessions:?}",
                node.name
            );
            // Reflected routes keep the originating node as next hop.
            let table = routes_in(&lab, &node.name, *family);
            for other in lab.state.nodes.iter().filter(|o| o.name != node.name && o.name != "rr1") {
                let via = format!("via {} dev eth0 proto bird", other.ip(*family).unwrap());
                assert!(table.contains(&via), "{} {family}: no reflected route {via}\n{table}", node.name);
            }
        }
    }
}

#[test]
fn a_route_reflector_replaces_the_mesh() {
    a_route_reflector_replaces_the_mesh_in(Stack::V4, "ghrr");
}

#[test]
fn a_route_reflector_reflects_ipv6_routes_on_ipv6_only() {
    a_route_reflector_replaces_the_mesh_in(Stack::V6, "ghrr6");
}

#[test]
fn a_route_reflector_reflects_both_families_on_dual_stack() {
    a_route_reflector_replaces_the_mesh_in(Stack::Dual, "ghrrd");
}

/// gobgpd (Debian's `gobgpd`) in a "top-of-rack" namespace, configured only through BGPPeer
/// resources on the gingham side (one per family, as Calico's `peerIP`), learns every node's
/// blocks with the node as next hop, each family over its own session.
fn an_external_router_learns_every_block_in(stack: Stack, prefix: &str) {
    if gingham_e2e::cmd::run("gobgpd", &["--version"]).is_err() {
        panic!("gobgpd is not installed: apt-get install -y gobgpd (the external BGP peer of this test)");
    }
    let mut lab = up(&common::scenario_in(stack, &[("n1", "a"), ("n2", "a"), ("n3", "a")], "Never"), prefix);
    let tor = gingham_e2e::topology::add_host(&mut lab.state, "tor", "a", 250).unwrap();
    let tor_ip = |family| match family {
        IpFamily::IPv4 => "10.231.1.250",
        IpFamily::IPv6 => "fd00:231:1::fa",
    };
    let locals: Vec<String> = stack.families().iter().map(|f| format!("\"{}\"", tor_ip(*f))).collect();
    // The router id is IPv4-shaped in every family, as BGP's.
    let mut config = format!(
        "[global.config]\n  as = 64513\n  router-id = \"10.231.1.250\"\n  local-address-list = [{}]\n",
        locals.join(", ")
    );
    for node in &lab.state.nodes {
        for family in stack.families() {
            let address = node.ip(family).unwrap();
            let afi = if family == IpFamily::IPv4 { "ipv4-unicast" } else { "ipv6-unicast" };
            config.push_str(&format!(
                "[[neighbors]]\n  [neighbors.config]\n    neighbor-address = \"{address}\"\n    peer-as = 64512\n  [[neighbors.afi-safis]]\n    [neighbors.afi-safis.config]\n      afi-safi-name = \"{afi}\"\n"
            ));
        }
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
    for family in stack.families() {
        let peer = tor_ip(family);
        let name = if family == IpFamily::IPv4 { "tor" } else { "tor6" };
        lab.apply(&format!(
            "apiVersion: gingham.dev/v1\nkind: BGPPeer\nmetadata: {{name: {name}}}\nspec: {{peerIP: \"{peer}\", asNumber: 64513}}\n"
        ))
        .unwrap();
    }
    let blocks = datastore::ipam_blocks(&lab.datastore());
    assert_eq!(blocks.len(), 3 * stack.families().len(), "{blocks:?}");
    let rib_of = |family: IpFamily| {
        let afi = if family == IpFamily::IPv4 { "ipv4" } else { "ipv6" };
        gingham_e2e::cmd::run_in(&tor, "gobgp", &["global", "rib", "-a", afi]).unwrap_or_default()
    };
    let mut ribs = String::new();
    for _ in 0..150 {
        ribs = stack.families().into_iter().map(rib_of).collect();
        if blocks.iter().all(|(cidr, _)| ribs.contains(cidr.as_str())) {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
    for (cidr, node) in &blocks {
        let next_hop = lab.state.node(node).unwrap().ip(family_of(cidr)).unwrap().to_string();
        let line = ribs.lines().find(|l| l.contains(cidr.as_str()));
        assert!(line.is_some_and(|l| l.contains(&next_hop)), "the router must learn {cidr} via {next_hop}:\n{ribs}");
    }
}

#[test]
fn an_external_router_learns_every_block_through_a_bgp_peer() {
    an_external_router_learns_every_block_in(Stack::V4, "ghtor");
}

#[test]
fn an_external_ipv6_router_learns_every_block_through_an_ipv6_bgp_peer_on_ipv6_only() {
    an_external_router_learns_every_block_in(Stack::V6, "ghtor6");
}

#[test]
fn an_external_router_learns_both_families_through_a_peer_each_on_dual_stack() {
    an_external_router_learns_every_block_in(Stack::Dual, "ghtord");
}
