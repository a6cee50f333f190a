//! The lab's CNI chain, run as a runtime runs a conflist: gingham, then the reference `portmap`
//! (Debian's containernetworking-plugins), prevResult passed along. Runs as root, one lab at a time.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::{scenario, up};
use gingham_e2e::pods::{PROBE_PORT, portmap_installed, run_chain};
use gingham_e2e::probe::{self, Probe, Reach};
use serde_json::{Value, json};

const HOST_PORT: u16 = 18080;

#[test]
fn a_pod_added_through_the_chain_is_reachable_on_its_host_port() {
    assert!(portmap_installed(), "no /usr/lib/cni/portmap: apt-get install containernetworking-plugins");
    let lab = up(&scenario(&[("n1", "a")], "Never"), "ghpmap");
    // The lab's pods came up through the whole chain: gingham's address passed through portmap.
    let pod = lab.state.pods.iter().find(|p| p.key() == "default/p-n1").cloned().unwrap();
    assert!(pod.address.is_some(), "the chain's result carries gingham's address: {pod:?}");
    let node = lab.state.node("n1").unwrap();
    let node_address = node.address.split('/').next().unwrap().to_string();
    let reach = || probe::reach(&lab.state, &node.netns, &node_address, Probe::Tcp(HOST_PORT));
    assert_ne!(reach(), Reach::Ok, "nothing maps {HOST_PORT} before the pod asks for it");

    // Re-attach the pod as a runtime does for a container port with hostPort.
    let mappings = json!({"portMappings": [{"hostPort": HOST_PORT, "containerPort": PROBE_PORT, "protocol": "tcp"}]});
    run_chain(&lab.state, &pod, "DEL", &mappings).unwrap();
    let result: Value = serde_json::from_str(&run_chain(&lab.state, &pod, "ADD", &mappings).unwrap()).unwrap();
    assert_eq!(result["cniVersion"], "1.0.0", "{result}");
    assert!(result["ips"][0]["address"].as_str().is_some_and(|a| a.ends_with("/32")), "{result}");
    assert_eq!(reach(), Reach::Ok, "{node_address}:{HOST_PORT} on the node reaches the pod's port {PROBE_PORT}");

    run_chain(&lab.state, &pod, "DEL", &mappings).unwrap();
    assert_ne!(reach(), Reach::Ok, "DEL through the chain removed the mapping");
}
