#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
//! The real `gingham-cni` binary per the CNI spec, against real network namespaces and an in-test
//! agent API server.

mod cni_support;

use std::collections::BTreeSet;

use cni_support::{Invoke, Netns, TestAgent, config, require_root};
use gingham_crds::naming::endpoint_interface_name;
use serde_json::{Value, json};

fn invoke<'a>(
    node: &'a Netns,
    command: &'a str,
    container: &'a str,
    pod: &'a Netns,
    name: &'a str,
    config: Value,
) -> Invoke<'a> {
    Invoke { node, command, container, netns: pod.path(), pod: name, config }
}

/// The pods of each family: (label, the node's blocks, the addresses the first pod gets).
const FAMILIES: [(&str, &[&str], &[&str]); 3] = [
    ("v4", &["10.66.0.0/26"], &["10.66.0.0"]),
    ("dual", &["10.66.0.64/26", "fd00:66::/122"], &["10.66.0.64", "fd00:66::"]),
    ("v6", &["fd00:66:1::/122"], &["fd00:66:1::"]),
];

/// The gateway of an address's family.
fn gateway(address: &str) -> &'static str {
    if address.contains(':') { "fe80::ecee:eeff:feee:eeee" } else { "169.254.1.1" }
}

/// ADD, CHECK and DEL (twice) of a pod of each family: the result lists every address with a
/// default route per family; the pod holds each address as /32 or /128 with its routes to and via
/// the family's gateway; the host side answers for the IPv6 gateway at once (no DAD pending); a
/// missing default route of either family fails CHECK naming that gateway.
#[test]
fn add_check_del_twice() {
    require_root();
    for (family, blocks, addresses) in FAMILIES {
        let agent = TestAgent::start(blocks);
        let (node, pod) = (Netns::new(&format!("acd-node-{family}")), Netns::new(&format!("acd-pod-{family}")));
        let (output, result) = invoke(&node, "ADD", "c1", &pod, "web", config(&agent.socket)).run();
        assert!(output.status.success(), "{family} ADD: {result} {}", String::from_utf8_lossy(&output.stderr));
        assert_eq!(result["cniVersion"], "1.1.0");
        let listed: Vec<&str> =
            result["ips"].as_array().unwrap().iter().map(|ip| ip["address"].as_str().unwrap()).collect();
        let wanted: Vec<String> =
            addresses.iter().map(|a| format!("{a}/{}", if a.contains(':') { 128 } else { 32 })).collect();
        assert_eq!(listed, wanted, "{family}: {result}");
        let defaults: Vec<(&str, &str)> = result["routes"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| (r["dst"].as_str().unwrap(), r["gw"].as_str().unwrap()))
            .collect();
        let wanted: Vec<(&str, &str)> =
            addresses.iter().map(|a| (if a.contains(':') { "::/0" } else { "0.0.0.0/0" }, gateway(a))).collect();
        assert_eq!(defaults, wanted, "{family}: {result}");
        let host = endpoint_interface_name("default", "web");
        assert_eq!(result["interfaces"][0]["name"], host.as_str());

        let link = node.json(&["ip", "-j", "link", "show", "dev", &host]);
        assert_eq!(link[0]["address"], "ee:ee:ee:ee:ee:ee");
        assert!(link[0]["flags"].as_array().unwrap().contains(&json!("UP")), "{link}");
        assert_eq!(node.run(&["cat", &format!("/proc/sys/net/ipv4/conf/{host}/proxy_arp")]).trim(), "1");
        assert_eq!(node.run(&["cat", &format!("/proc/sys/net/ipv4/neigh/{host}/proxy_delay")]).trim(), "0");
        let eth0 = pod.json(&["ip", "-j", "addr", "show", "dev", "eth0"]);
        assert_eq!(eth0[0]["mtu"], 1400);
        for address in addresses {
            let (flag, length) = if address.contains(':') { ("-6", 128) } else { ("-4", 32) };
            let held = pod.json(&["ip", "-j", flag, "addr", "show", "dev", "eth0", "scope", "global"]);
            let info = &held[0]["addr_info"][0];
            assert_eq!((info["local"].as_str(), info["prefixlen"].as_u64()), (Some(*address), Some(length)), "{held}");
            assert!(info.get("tentative").is_none(), "{family}: the pod's address is usable at once: {held}");
            let routes = pod.run(&["ip", flag, "route", "show"]);
            assert!(routes.contains(&format!("default via {} dev eth0", gateway(address))), "{routes}");
            assert!(routes.contains(&format!("{} dev eth0", gateway(address))), "{routes}");
            let host_routes = node.run(&["ip", flag, "route", "show", "proto", "249"]);
            assert!(
                host_routes.contains(&format!("{address} dev {host}")),
                "{family}: the agent's route to the pod: {host_routes}"
            );
        }
        if addresses.iter().any(|a| a.contains(':')) {
            let held = node.json(&["ip", "-j", "-6", "addr", "show", "dev", &host]);
            let info = &held[0]["addr_info"][0];
            assert_eq!(info["local"], "fe80::ecee:eeff:feee:eeee", "{held}");
            assert!(info.get("tentative").is_none(), "the gateway is not waiting for DAD: {held}");
            assert_eq!(node.run(&["cat", &format!("/proc/sys/net/ipv6/conf/{host}/accept_dad")]).trim(), "0");
            // The host side answers neighbour solicitations for the gateway.
            pod.run(&["ping", "-6", "-c", "1", "-W", "2", "fe80::ecee:eeff:feee:eeee%eth0"]);
        }

        let mut check = config(&agent.socket);
        check["prevResult"] = result.clone();
        let (output, error) = invoke(&node, "CHECK", "c1", &pod, "web", check.clone()).run();
        assert!(output.status.success(), "{family} CHECK after ADD: {error}");
        for address in addresses.iter().rev() {
            let flag = if address.contains(':') { "-6" } else { "-4" };
            pod.run(&["ip", flag, "route", "del", "default"]);
            let (output, error) = invoke(&node, "CHECK", "c1", &pod, "web", check.clone()).run();
            assert!(!output.status.success(), "{family}: CHECK without the {flag} default route");
            assert_eq!(error["code"], 50, "{error}");
            assert!(error["msg"].as_str().unwrap().contains(gateway(address)), "{error}");
            pod.run(&["ip", flag, "route", "add", "default", "via", gateway(address), "dev", "eth0"]);
        }

        for round in 0..2 {
            let (output, out) = invoke(&node, "DEL", "c1", &pod, "web", config(&agent.socket)).run();
            assert!(output.status.success(), "{family} DEL round {round}: {out}");
            assert!(!node.has_link(&host), "the host veth is gone");
            assert!(!pod.has_link("eth0"), "the pod veth is gone");
        }
        assert!(agent.ipam.list().unwrap().is_empty(), "{family}: every address was released");
    }
}

#[test]
fn add_replaces_a_stale_host_veth_and_a_stale_pod_eth0() {
    require_root();
    let agent = TestAgent::start(&["10.66.8.0/26"]);
    let (node, pod) = (Netns::new("stale-node"), Netns::new("stale-pod"));
    let host = endpoint_interface_name("default", "stale");
    node.run(&["ip", "link", "add", &host, "type", "veth", "peer", "name", "stale-peer"]);
    pod.run(&["ip", "link", "add", "eth0", "type", "veth", "peer", "name", "stale-peer"]);

    let (output, result) = invoke(&node, "ADD", "c1", &pod, "stale", config(&agent.socket)).run();
    assert!(output.status.success(), "ADD: {result} {}", String::from_utf8_lossy(&output.stderr));
    assert!(!node.has_link("stale-peer") && !pod.has_link("stale-peer"), "the stale pairs were deleted");
    let eth0 = pod.json(&["ip", "-j", "link", "show", "dev", "eth0"]);
    assert_eq!(result["interfaces"][1]["mac"], eth0[0]["address"]);
    let link = node.json(&["ip", "-j", "link", "show", "dev", &host]);
    assert_eq!(link[0]["address"], "ee:ee:ee:ee:ee:ee");
    let mut check = config(&agent.socket);
    check["prevResult"] = result;
    let (output, error) = invoke(&node, "CHECK", "c1", &pod, "stale", check).run();
    assert!(output.status.success(), "CHECK: {error}");
}

#[test]
fn del_succeeds_when_the_netns_is_already_gone() {
    require_root();
    let agent = TestAgent::start(&["10.66.1.0/26"]);
    let node = Netns::new("gone-node");
    let pod = Netns::new("gone-pod");
    let (output, result) = invoke(&node, "ADD", "c1", &pod, "gone", config(&agent.socket)).run();
    assert!(output.status.success(), "{result}");
    let path = pod.path();
    drop(pod);
    let del = Invoke {
        node: &node,
        command: "DEL",
        container: "c1",
        netns: path,
        pod: "gone",
        config: config(&agent.socket),
    };
    let (output, out) = del.run();
    assert!(output.status.success(), "{out}");
    assert!(agent.ipam.list().unwrap().is_empty());
}

#[test]
fn gc_releases_allocations_not_in_valid_attachments() {
    require_root();
    let agent = TestAgent::start(&["10.66.2.0/26"]);
    let node = Netns::new("gc-node");
    let pods: Vec<Netns> = (0..3).map(|i| Netns::new(&format!("gc-pod{i}"))).collect();
    for (index, pod) in pods.iter().enumerate() {
        let (output, result) =
            invoke(&node, "ADD", &format!("c{index}"), pod, &format!("p{index}"), config(&agent.socket)).run();
        assert!(output.status.success(), "{result}");
    }
    let mut gc = config(&agent.socket);
    gc["cni.dev/valid-attachments"] = json!([{ "containerID": "c1", "ifname": "eth0" }]);
    let (output, out) = invoke(&node, "GC", "", &pods[0], "", gc).run();
    assert!(output.status.success(), "{out}");
    let left: Vec<_> = agent.ipam.list().unwrap().into_iter().map(|a| a.container_id).collect();
    assert_eq!(left, vec!["c1"]);
    assert!(node.has_link(&endpoint_interface_name("default", "p1")), "the valid pod keeps its veth");
    for gone in ["p0", "p2"] {
        assert!(!node.has_link(&endpoint_interface_name("default", gone)), "the leaked veth of {gone} is removed");
    }
}

#[test]
fn version_lists_the_supported_versions() {
    require_root();
    let node = Netns::new("version");
    let pod = Netns::new("version-pod");
    let (output, result) = invoke(&node, "VERSION", "", &pod, "", json!({ "cniVersion": "1.0.0" })).run();
    assert!(output.status.success());
    let all = ["0.3.0", "0.3.1", "0.4.0", "1.0.0", "1.1.0"];
    assert_eq!(result, json!({ "cniVersion": "1.0.0", "supportedVersions": all }));
}

/// Each version a runtime may write: ADD answers in that version's shape, CHECK exists from
/// 0.4.0, GC and STATUS from 1.1.0; a command the version lacks is code 1 naming it.
#[test]
fn every_version_adds_in_its_shape_and_has_only_its_commands() {
    require_root();
    let agent = TestAgent::start(&["10.66.9.0/26"]);
    let node = Netns::new("vers-node");
    // (cniVersion, ips[].version written, has CHECK, has GC and STATUS)
    let table = [
        ("0.3.0", true, false, false),
        ("0.3.1", true, false, false),
        ("0.4.0", true, true, false),
        ("1.0.0", false, true, false),
        ("1.1.0", false, true, true),
    ];
    for (index, (version, ip_version, has_check, has_gc)) in table.into_iter().enumerate() {
        let pod = Netns::new(&format!("vers-pod{index}"));
        let (container, name) = (format!("c{index}"), format!("v{index}"));
        let mut conf = config(&agent.socket);
        conf["cniVersion"] = json!(version);
        let (output, result) = invoke(&node, "ADD", &container, &pod, &name, conf.clone()).run();
        assert!(output.status.success(), "{version} ADD: {result} {}", String::from_utf8_lossy(&output.stderr));
        assert_eq!(result["cniVersion"], version);
        let ip = &result["ips"][0];
        assert_eq!(ip["version"], if ip_version { json!("4") } else { Value::Null }, "{version}: {result}");
        assert_eq!(ip["interface"], 1, "{version}: {result}");
        assert_eq!(result["interfaces"][1]["name"], "eth0", "{version}: {result}");

        let mut check = conf.clone();
        check["prevResult"] = result.clone();
        let mut gc = conf.clone();
        gc["cni.dev/valid-attachments"] = json!([{ "containerID": container, "ifname": "eth0" }]);
        for (command, body, allowed) in
            [("CHECK", check, has_check), ("GC", gc, has_gc), ("STATUS", conf.clone(), has_gc)]
        {
            let (output, out) = invoke(&node, command, &container, &pod, &name, body).run();
            assert_eq!(output.status.success(), allowed, "{version} {command}: {out}");
            if !allowed {
                assert_eq!(out["code"], 1, "{version} {command}: {out}");
                assert_eq!(out["cniVersion"], version, "{version} {command}: {out}");
                assert!(out["msg"].as_str().unwrap().contains(command), "{version} {command}: {out}");
            }
        }
        assert!(pod.has_link("eth0"), "{version}: nothing the checks did removed the pod's interface");
        let (output, out) = invoke(&node, "DEL", &container, &pod, &name, conf).run();
        assert!(output.status.success(), "{version} DEL: {out}");
    }
    assert!(agent.ipam.list().unwrap().is_empty(), "every version's DEL released its address");
}

/// The spec requires `cni.dev/valid-attachments` for GC; without it nothing may be released.
#[test]
fn gc_without_valid_attachments_is_code_4_and_removes_nothing() {
    require_root();
    let agent = TestAgent::start(&["10.66.10.0/26"]);
    let (node, pod) = (Netns::new("gcnone-node"), Netns::new("gcnone-pod"));
    let (output, result) = invoke(&node, "ADD", "c1", &pod, "kept", config(&agent.socket)).run();
    assert!(output.status.success(), "{result}");
    let (output, error) = invoke(&node, "GC", "", &pod, "", config(&agent.socket)).run();
    assert!(!output.status.success(), "{error}");
    assert_eq!(error["code"], 4, "{error}");
    assert!(error["msg"].as_str().unwrap().contains("cni.dev/valid-attachments"), "{error}");
    assert_eq!(agent.ipam.list().unwrap().len(), 1, "the allocation stays");
    assert!(node.has_link(&endpoint_interface_name("default", "kept")), "the veth stays");
}

/// Stdin the plugin cannot decode (not UTF-8, not JSON) is the spec's code 6, not an I/O error.
#[test]
fn stdin_that_does_not_decode_is_code_6() {
    use std::io::Write;
    use std::process::{Command, Stdio};
    let cases: [(&str, &[u8]); 3] = [
        ("not UTF-8", b"{\"cniVersion\":\"1.0.0\",\"name\":\"\xff\xfe\"}"),
        ("not JSON", b"cniVersion: 1.0.0"),
        ("empty", b""),
    ];
    for (what, stdin) in cases {
        let mut child = Command::new(env!("CARGO_BIN_EXE_gingham-cni"))
            .env("CNI_COMMAND", "ADD")
            .env("CNI_CONTAINERID", "c1")
            .env("CNI_NETNS", "/run/netns/none")
            .env("CNI_IFNAME", "eth0")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        child.stdin.take().unwrap().write_all(stdin).unwrap();
        let output = child.wait_with_output().unwrap();
        assert!(!output.status.success(), "{what}");
        let error: Value = serde_json::from_slice(&output.stdout).unwrap();
        assert_eq!(error["code"], 6, "{what}: {error}");
    }
}

#[test]
fn status_reports_whether_the_agent_is_reachable() {
    require_root();
    let mut agent = TestAgent::start(&["10.66.3.0/26"]);
    let node = Netns::new("status");
    let pod = Netns::new("status-pod");
    let (output, out) = invoke(&node, "STATUS", "", &pod, "", config(&agent.socket)).run();
    assert!(output.status.success(), "{out}");
    agent.stop();
    let (output, error) = invoke(&node, "STATUS", "", &pod, "", config(&agent.socket)).run();
    assert!(!output.status.success());
    assert_eq!(error["code"], 50, "{error}");
    assert!(error["msg"].as_str().unwrap().contains("gingham-node-agent"), "{error}");
}

#[test]
fn add_with_the_agent_down_says_try_again_and_del_still_cleans_up() {
    require_root();
    let mut agent = TestAgent::start(&["10.66.4.0/26"]);
    let node = Netns::new("down-node");
    let pod = Netns::new("down-pod");
    let (output, result) = invoke(&node, "ADD", "c1", &pod, "down", config(&agent.socket)).run();
    assert!(output.status.success(), "{result}");
    agent.stop();
    let (output, error) = invoke(&node, "ADD", "c2", &pod, "other", config(&agent.socket)).run();
    assert!(!output.status.success());
    assert_eq!(error["code"], 11, "{error}");
    assert!(!node.has_link(&endpoint_interface_name("default", "other")), "a failed ADD leaves no veth");
    let (output, out) = invoke(&node, "DEL", "c1", &pod, "down", config(&agent.socket)).run();
    assert!(output.status.success(), "DEL with the agent down: {out}");
    assert!(!node.has_link(&endpoint_interface_name("default", "down")));
    assert!(String::from_utf8_lossy(&output.stderr).contains("GC"), "a warning says who releases the address");
}

#[test]
fn invalid_config_is_code_4_naming_the_field() {
    require_root();
    let agent = TestAgent::start(&["10.66.5.0/26"]);
    let node = Netns::new("badconf");
    let pod = Netns::new("badconf-pod");
    let mut bad = config(&agent.socket);
    bad["mtu"] = json!("jumbo");
    let (output, error) = invoke(&node, "ADD", "c1", &pod, "bad", bad).run();
    assert!(!output.status.success());
    assert_eq!(error["code"], 4, "{error}");
    assert!(error["msg"].as_str().unwrap().contains("mtu"), "{error}");
    assert!(agent.ipam.list().unwrap().is_empty(), "nothing was allocated");
}

#[test]
fn a_missing_netns_is_a_clear_error() {
    require_root();
    let agent = TestAgent::start(&["10.66.6.0/26"]);
    let node = Netns::new("nonetns");
    let missing = format!("/run/netns/gc-missing-{}", std::process::id());
    let add = Invoke {
        node: &node,
        command: "ADD",
        container: "c1",
        netns: missing.clone(),
        pod: "p",
        config: config(&agent.socket),
    };
    let (output, error) = add.run();
    assert!(!output.status.success());
    assert_eq!(error["code"], 7, "{error}");
    assert!(error["msg"].as_str().unwrap().contains(&missing), "{error}");
    assert!(agent.ipam.list().unwrap().is_empty());
}

#[test]
fn ten_concurrent_adds_get_distinct_addresses() {
    require_root();
    let agent = TestAgent::start(&["10.66.7.0/26"]);
    let node = Netns::new("conc-node");
    let pods: Vec<Netns> = (0..10).map(|i| Netns::new(&format!("conc{i}"))).collect();
    let addresses: BTreeSet<String> = std::thread::scope(|scope| {
        let handles: Vec<_> = pods
            .iter()
            .enumerate()
            .map(|(index, pod)| {
                let (node, socket) = (&node, &agent.socket);
                scope.spawn(move || {
                    let (output, result) =
                        invoke(node, "ADD", &format!("c{index}"), pod, &format!("p{index}"), config(socket)).run();
                    assert!(output.status.success(), "{result}");
                    result["ips"][0]["address"].as_str().unwrap().to_string()
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    assert_eq!(addresses.len(), 10, "{addresses:?}");
    for pod in &pods {
        assert!(pod.has_link("eth0"));
    }
}

/// How long after ADD returns the pod's first IPv6 ping to its gateway is answered by the host
/// side, and the same with the host side's DAD left on (a pair made by hand as the plugin makes
/// it, but brought up with `accept_dad` at its default). Asserts that both are answered, and (a
/// ratio in the same run, not a timed goal) that the plugin's pod waits far less than DAD's;
/// prints both times (net of a warm ping's own start-up) for docs/node-agent.md.
#[test]
fn the_first_ipv6_ping_is_answered_without_waiting_for_dad() {
    require_root();
    let ping = |pod: &Netns| {
        let started = std::time::Instant::now();
        pod.run(&["ping", "-6", "-c", "1", "-i", "0.002", "-w", "5", "fe80::ecee:eeff:feee:eeee%eth0"]);
        started.elapsed()
    };
    let agent = TestAgent::start(&["fd00:66:2::/122"]);
    let (node, pod) = (Netns::new("dad-node"), Netns::new("dad-pod"));
    let (output, result) = invoke(&node, "ADD", "c1", &pod, "dad", config(&agent.socket)).run();
    assert!(output.status.success(), "ADD: {result}");
    let first = ping(&pod);
    let warm = ping(&pod);

    // DAD left on: the same pair by hand, the host side up with accept_dad at its default (1).
    let (node2, pod2) = (Netns::new("dad-on-node"), Netns::new("dad-on-pod"));
    let host = "dad-on-host";
    node2.run(&[
        "ip",
        "link",
        "add",
        host,
        "address",
        "ee:ee:ee:ee:ee:ee",
        "type",
        "veth",
        "peer",
        "name",
        "eth0",
        "netns",
        &pod2.name,
    ]);
    node2.run(&["ip", "link", "set", host, "up"]);
    pod2.run(&["ip", "link", "set", "eth0", "up"]);
    pod2.run(&["ip", "-6", "addr", "add", "fd00:66:2::1/128", "dev", "eth0", "nodad"]);
    pod2.run(&["ip", "-6", "route", "add", "fe80::ecee:eeff:feee:eeee", "dev", "eth0"]);
    pod2.run(&["ip", "-6", "route", "add", "default", "via", "fe80::ecee:eeff:feee:eeee", "dev", "eth0"]);
    let dad_on = ping(&pod2);
    let dad_on_warm = ping(&pod2);

    let net = |elapsed: std::time::Duration, warm: std::time::Duration| elapsed.saturating_sub(warm);
    eprintln!(
        "first IPv6 ping reply after ADD: {:?} (a warm ping: {:?}, net {:?}); with DAD left on: {:?} (warm {:?}, net {:?})",
        first,
        warm,
        net(first, warm),
        dad_on,
        dad_on_warm,
        net(dad_on, dad_on_warm)
    );
    assert!(first * 10 < dad_on, "DAD held up the first ping: {first:?}, with DAD on {dad_on:?}");
}
