#![allow(clippy::unwrap_used)]

use std::net::IpAddr;

use serde_json::{Value, json};

use super::*;

fn gateway(address: IpAddr) -> IpAddr {
    match address {
        IpAddr::V4(_) => "169.254.1.1".parse().unwrap(),
        IpAddr::V6(_) => "fe80::ecee:eeff:feee:eeee".parse().unwrap(),
    }
}

fn added(addresses: &[&str]) -> CniResult {
    let pod =
        Interface { name: "eth0".into(), mac: Some("02:00:00:00:00:01".into()), sandbox: Some("/run/netns/p".into()) };
    let addresses: Vec<IpAddr> = addresses.iter().map(|a| a.parse().unwrap()).collect();
    CniResult::attached("gh0123456789a", pod, &addresses, gateway)
}

/// The pods of each family: (addresses, `ips` without `version`, with it, routes).
fn pods() -> [(&'static [&'static str], Value, Value, Value); 3] {
    let v4 = json!({ "address": "10.0.0.5/32", "interface": 1 });
    let v6 = json!({ "address": "fd00::5/128", "interface": 1 });
    let tagged = |ip: &Value, version: &str| {
        let mut ip = ip.clone();
        ip["version"] = json!(version);
        ip
    };
    let route4 = json!({ "dst": "0.0.0.0/0", "gw": "169.254.1.1" });
    let route6 = json!({ "dst": "::/0", "gw": "fe80::ecee:eeff:feee:eeee" });
    [
        (&["10.0.0.5"], json!([v4]), json!([tagged(&v4, "4")]), json!([route4])),
        (&["fd00::5"], json!([v6]), json!([tagged(&v6, "6")]), json!([route6])),
        (
            &["10.0.0.5", "fd00::5"],
            json!([v4, v6]),
            json!([tagged(&v4, "4"), tagged(&v6, "6")]),
            json!([route4, route6]),
        ),
    ]
}

/// The ADD result as each version writes it, for IPv4, IPv6 and dual-stack pods: `ips[].version`
/// before 1.0.0 only, the interface index always, a default route per family.
#[test]
fn the_add_result_takes_each_versions_shape_in_each_family() {
    let carries_version = [
        (CniVersion::V0_3_0, true),
        (CniVersion::V0_3_1, true),
        (CniVersion::V0_4_0, true),
        (CniVersion::V1_0_0, false),
        (CniVersion::V1_1_0, false),
    ];
    assert_eq!(carries_version.len(), CniVersion::ALL.len(), "every version is in the table");
    for (addresses, ips, tagged, routes) in pods() {
        for (version, with_version) in carries_version {
            let expected = json!({
                "cniVersion": version.as_str(),
                "interfaces": [
                    { "name": "gh0123456789a", "mac": "ee:ee:ee:ee:ee:ee" },
                    { "name": "eth0", "mac": "02:00:00:00:00:01", "sandbox": "/run/netns/p" },
                ],
                "ips": if with_version { tagged.clone() } else { ips.clone() },
                "routes": routes,
                "dns": {},
            });
            assert_eq!(added(addresses).to_json(version), expected, "{addresses:?} {version}");
        }
    }
}

/// A prevResult in any version reads as the same 1.x result, and writes back as it came.
#[test]
fn a_prev_result_in_any_version_decodes_to_the_same_result() {
    for (addresses, ..) in pods() {
        for version in CniVersion::ALL {
            let written = added(addresses).to_json(version);
            let read = CniResult::decode(&written).unwrap();
            assert_eq!(read, added(addresses), "{addresses:?} {version}");
            assert_eq!(read.to_json(version), written, "{addresses:?} {version}");
        }
    }
    // A chained plugin's IPv6 entry in a 0.4.0 result, and 1.1.0 route fields gingham ignores.
    let other = json!({
        "cniVersion": "0.4.0",
        "ips": [{ "version": "6", "address": "fd00::5/128", "gateway": "fd00::1" }],
        "routes": [{ "dst": "::/0", "mtu": 1400 }],
    });
    let read = CniResult::decode(&other).unwrap();
    assert_eq!(read.ips[0].version, None);
    assert_eq!(read.to_json(CniVersion::V0_3_1)["ips"][0]["version"], "6");
}

#[test]
fn a_prev_result_that_is_not_a_result_is_a_decoding_failure() {
    for bad in [json!("text"), json!({ "ips": [{ "address": "not-an-address" }] }), json!({ "ips": {} })] {
        let error = CniResult::decode(&bad).unwrap_err();
        assert_eq!(error.code, codes::DECODE, "{bad}");
        assert!(error.msg.contains("prevResult"), "{}", error.msg);
    }
}
