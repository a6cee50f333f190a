//! The Rust validators never panic, whatever the input.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use gingham_crds::api::common::{AsNumber, IntOrString, Port};
use gingham_crds::api::ippool::IPPoolSpec;
use gingham_crds::validate::{parse_cidr, parse_duration_seconds, parse_peer_address, validate_ippool};
use proptest::prelude::*;

fn cidr_like() -> impl Strategy<Value = String> {
    prop_oneof![
        any::<String>(),
        "[0-9a-f:./]{0,45}",
        (any::<[u8; 4]>(), 0u8..40).prop_map(|(a, p)| format!("{}.{}.{}.{}/{p}", a[0], a[1], a[2], a[3])),
    ]
}

proptest! {
    #[test]
    fn pool_validation_never_panics(cidr in cidr_like(), block_size in proptest::option::of(any::<u8>()), selector in any::<String>()) {
        let spec = IPPoolSpec { cidr, block_size, node_selector: selector, ..IPPoolSpec::default() };
        let _ = validate_ippool(&spec);
    }

    #[test]
    fn parsers_never_panic(text in any::<String>()) {
        let _ = parse_cidr(&text);
        let _ = parse_peer_address(&text);
        let _ = parse_duration_seconds(&text);
        let _ = AsNumber::parse(&text);
        let _ = Port(IntOrString::String(text)).spec();
    }

    #[test]
    fn masked_cidrs_of_sane_pools_validate(a in any::<[u8; 2]>(), prefix in 8u8..=26) {
        let net: ipnet::Ipv4Net = format!("10.{}.{}.0/{prefix}", a[0], a[1]).parse().unwrap();
        let spec = IPPoolSpec { cidr: net.trunc().to_string(), ..IPPoolSpec::default() };
        prop_assert!(validate_ippool(&spec).is_ok(), "{}", spec.cidr);
    }
}
