//! NetworkSet and GlobalNetworkSet: every net an address or CIDR, no Enterprise domains.

use super::{FieldError, Problems};
use crate::api::networkset::{EGRESS_DOMAINS_REFUSED, NetworkSetView};

/// Checks a network set of either kind.
pub fn validate_network_set(spec: NetworkSetView<'_>) -> Result<(), Vec<FieldError>> {
    let mut problems = Problems::default();
    for (index, net) in spec.nets.iter().enumerate() {
        problems.decoded(&format!("spec.nets[{index}]"), net);
    }
    if spec.allowed_egress_domains.is_some() {
        let (message, hint) = EGRESS_DOMAINS_REFUSED.split_once(": ").unwrap_or((EGRESS_DOMAINS_REFUSED, ""));
        problems.add("spec.allowedEgressDomains", message, hint);
    }
    problems.into_result()
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;
    use crate::api::networkset::NetworkSetSpec;

    #[test]
    fn nets_must_be_addresses_or_cidrs_and_domains_are_refused() {
        let spec = |nets: &[&str], domains: Option<Vec<String>>| NetworkSetSpec {
            nets: nets.iter().map(|n| (*n).into()).collect(),
            allowed_egress_domains: domains,
        };
        assert_eq!(validate_network_set(spec(&["10.0.0.0/8", "192.0.2.1", "fd00::/64"], None).view()), Ok(()));
        let errors = validate_network_set(spec(&["10.0.0.0/8", "10.0.0.300/32"], None).view()).unwrap_err();
        assert_eq!(errors.len(), 1);
        assert_eq!(errors[0].path, "spec.nets[1]");
        assert!(errors[0].message.contains("10.0.0.300/32"), "{errors:?}");
        let errors = validate_network_set(spec(&[], Some(vec!["db.com".into()])).view()).unwrap_err();
        assert_eq!(errors[0].path, "spec.allowedEgressDomains");
        assert!(errors[0].to_string().contains("fix: remove it"), "{errors:?}");
    }
}
