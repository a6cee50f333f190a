#![allow(clippy::unwrap_used)]

use std::net::Ipv4Addr;

use serde_json::json;

use super::*;

const GW: Ipv4Addr = Ipv4Addr::new(169, 254, 1, 1);

fn added() -> CniResult {
    let pod =
        Interface { name: "eth0".into(), mac: Some("02:00:00:00:00:01".into()), sandbox: Some("/run/netns/p".into()) };
    CniResult::attached("gh0123456789a", pod, Ipv4Addr::new(10, 0, 0, 5), GW)
}

/// The ADD result as each version writes it: `ips[].version` before 1.0.0 only, the interface
/// index always, the same interfaces and routes.
#[test]
fn the_add_result_takes_each_versions_shape() {
    let ip_without_version = json!({ "address": "10.0.0.5/32", "interface": 1 });
    let ip_with_version = json!({ "version": "4", "address": "10.0.0.5/32", "interface": 1 });
    let table = [
        (CniVersion::V0_3_0, &ip_with_version),
        (CniVersion::V0_3_1, &ip_with_version),
        (CniVersion::V0_4_0, &ip_with_version),
        (CniVersion::V1_0_0, &ip_without_version),
        (CniVersion::V1_1_0, &ip_without_version),
    ];
    assert_eq!(table.len(), CniVersion::ALL.len(), "every version is in the table");
    for (version, ip) in table {
        let expected = json!({
            "cniVersion": version.as_str(),
            "interfaces": [
                { "name": "gh0123456789a", "mac": "ee:ee:ee:ee:ee:ee" },
                { "name": "eth0", "mac": "02:00:00:00:00:01", "sandbox": "/run/netns/p" },
            ],
            "ips": [ip],
            "routes": [{ "dst": "0.0.0.0/0", "gw": "169.254.1.1" }],
            "dns": {},
        });
        assert_eq!(added().to_json(version), expected, "{version}");
    }
}

/// A prevResult in any version reads as the same 1.x result, and writes back as it came.
#[test]
fn a_prev_result_in_any_version_decodes_to_the_same_result() {
    for version in CniVersion::ALL {
        let written = added().to_json(version);
        let read = CniResult::decode(&written).unwrap();
        assert_eq!(read, added(), "{version}");
        assert_eq!(read.to_json(version), written, "{version}");
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
