//! The network configuration on stdin: CNI's common fields plus gingham's (`socketPath`, `mtu`,
//! `timeoutSeconds`) and Calico's IPAM options `ipam.assign_ipv4` and `ipam.assign_ipv6`. Each
//! problem names its field.

use std::io::Read;
use std::path::PathBuf;

use serde_json::Value;

use super::{CniError, CniResult, CniVersion, codes};
use crate::ipam::{Assign, Attachment};

/// The agent's socket when `socketPath` is not set.
pub const DEFAULT_SOCKET: &str = "/run/gingham/cni.sock";
/// The pod MTU when `mtu` is not set: fits VXLAN (50 bytes) on a 1500-byte underlay.
pub const DEFAULT_MTU: u32 = 1450;
/// How long ADD waits for programming when `timeoutSeconds` is not set.
pub const DEFAULT_TIMEOUT_SECONDS: u32 = 30;

/// Reads the network configuration from stdin: an I/O failure is code 5, text that is not UTF-8
/// is the spec's decoding failure, code 6.
pub fn read_stdin(mut input: impl Read) -> Result<String, CniError> {
    let mut bytes = Vec::new();
    input
        .read_to_end(&mut bytes)
        .map_err(|e| CniError::new(codes::IO, format!("cannot read the network configuration on stdin: {e}")))?;
    String::from_utf8(bytes).map_err(|e| {
        CniError::new(codes::DECODE, "the network configuration on stdin is not UTF-8 text; check the conflist")
            .details(e.to_string())
    })
}

/// The parsed network configuration.
#[derive(Clone, Debug, PartialEq)]
pub struct NetConf {
    /// `cniVersion`: results are written in its shape.
    pub cni_version: CniVersion,
    /// `name`.
    pub name: String,
    /// `socketPath`: the agent's socket.
    pub socket_path: PathBuf,
    /// `mtu`: the pod interface MTU.
    pub mtu: u32,
    /// `timeoutSeconds`: how long ADD waits for the agent.
    pub timeout_seconds: u32,
    /// `ipam.assign_ipv4` and `ipam.assign_ipv6`: which families the pod gets.
    pub assign: Assign,
    /// `prevResult` (CHECK), read from any supported version.
    pub prev_result: Option<CniResult>,
    /// `cni.dev/valid-attachments` (GC); `None` when the field is absent.
    pub valid_attachments: Option<Vec<Attachment>>,
}

impl NetConf {
    /// Parses and checks the configuration.
    pub fn parse(text: &str) -> Result<Self, CniError> {
        let value: Value = serde_json::from_str(text).map_err(|e| {
            CniError::new(codes::DECODE, "the network configuration on stdin is not JSON; check the conflist")
                .details(e.to_string())
        })?;
        let text = string(&value, "cniVersion")?.ok_or_else(|| missing("cniVersion", "set it to 1.0.0"))?;
        let cni_version = CniVersion::parse(&text).ok_or_else(|| {
            CniError::new(
                codes::INCOMPATIBLE_VERSION,
                format!("cniVersion {text:?} is not supported; gingham speaks {}", CniVersion::supported().join(", ")),
            )
        })?;
        let name = string(&value, "name")?.ok_or_else(|| missing("name", "name the network, e.g. gingham"))?;
        match string(&value, "type")?.as_deref() {
            Some("gingham") => {}
            other => return Err(invalid("type", &format!("{other:?}"), "this plugin is type \"gingham\"")),
        }
        let socket_path = PathBuf::from(string(&value, "socketPath")?.unwrap_or_else(|| DEFAULT_SOCKET.to_string()));
        if !socket_path.is_absolute() {
            return Err(invalid("socketPath", &socket_path.display().to_string(), "use an absolute path"));
        }
        let mtu = number(&value, "mtu", 68, 65535)?.unwrap_or(DEFAULT_MTU);
        let timeout_seconds = number(&value, "timeoutSeconds", 1, 600)?.unwrap_or(DEFAULT_TIMEOUT_SECONDS);
        let assign = assign(&value)?;
        let valid_attachments = match value.get("cni.dev/valid-attachments") {
            None | Some(Value::Null) => None,
            Some(list) => Some(serde_json::from_value(list.clone()).map_err(|e| {
                invalid("cni.dev/valid-attachments", &e.to_string(), "a list of {containerID, ifname} objects")
            })?),
        };
        let prev_result = match value.get("prevResult") {
            None | Some(Value::Null) => None,
            Some(prev) => Some(CniResult::decode(prev)?),
        };
        Ok(Self { cni_version, name, socket_path, mtu, timeout_seconds, assign, prev_result, valid_attachments })
    }
}

/// Calico's `ipam.assign_ipv4` and `ipam.assign_ipv6`: the strings `"true"` and `"false"` (as
/// Calico writes them) or JSON booleans; other `ipam` fields (Calico's `type`, ...) are ignored.
fn assign(value: &Value) -> Result<Assign, CniError> {
    let ipam = match value.get("ipam") {
        None | Some(Value::Null) => return Ok(Assign::default()),
        Some(Value::Object(ipam)) => ipam,
        Some(other) => return Err(invalid("ipam", &other.to_string(), "it must be an object")),
    };
    let flag = |field: &str| -> Result<Option<bool>, CniError> {
        match ipam.get(field) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::Bool(flag)) => Ok(Some(*flag)),
            Some(Value::String(text)) if text == "true" => Ok(Some(true)),
            Some(Value::String(text)) if text == "false" => Ok(Some(false)),
            Some(other) => Err(invalid(&format!("ipam.{field}"), &other.to_string(), "use \"true\" or \"false\"")),
        }
    };
    let assign = Assign { ipv4: flag("assign_ipv4")?, ipv6: flag("assign_ipv6")? };
    if assign.ipv4 == Some(false) && assign.ipv6 != Some(true) {
        return Err(invalid(
            "ipam.assign_ipv4",
            "\"false\"",
            "with it, set ipam.assign_ipv6 to \"true\": a pod needs an address of some family",
        ));
    }
    Ok(assign)
}

fn string(value: &Value, field: &str) -> Result<Option<String>, CniError> {
    match value.get(field) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(text)) => Ok(Some(text.clone())),
        Some(other) => Err(invalid(field, &other.to_string(), "it must be a string")),
    }
}

fn number(value: &Value, field: &str, min: u32, max: u32) -> Result<Option<u32>, CniError> {
    match value.get(field) {
        None | Some(Value::Null) => Ok(None),
        Some(found) => found
            .as_u64()
            .and_then(|n| u32::try_from(n).ok())
            .filter(|n| (min..=max).contains(n))
            .map(Some)
            .ok_or_else(|| invalid(field, &found.to_string(), &format!("use an integer from {min} to {max}"))),
    }
}

fn missing(field: &str, hint: &str) -> CniError {
    CniError::new(codes::INVALID_CONFIG, format!("network configuration field {field} is missing; {hint}"))
}

fn invalid(field: &str, found: &str, hint: &str) -> CniError {
    CniError::new(codes::INVALID_CONFIG, format!("network configuration field {field} is invalid ({found}); {hint}"))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn defaults_apply() {
        let conf = NetConf::parse(r#"{"cniVersion":"1.1.0","name":"k8s","type":"gingham"}"#).unwrap();
        assert_eq!(conf.socket_path, PathBuf::from(DEFAULT_SOCKET));
        assert_eq!((conf.mtu, conf.timeout_seconds), (DEFAULT_MTU, DEFAULT_TIMEOUT_SECONDS));
    }

    #[test]
    fn every_supported_version_parses() {
        for version in CniVersion::ALL {
            let text = format!(r#"{{"cniVersion":"{version}","name":"k","type":"gingham"}}"#);
            assert_eq!(NetConf::parse(&text).unwrap().cni_version, version);
        }
    }

    #[test]
    fn stdin_that_is_not_utf8_is_a_decoding_failure() {
        let error = read_stdin(&b"{\"cniVersion\":\"1.0.0\xff\"}"[..]).unwrap_err();
        assert_eq!(error.code, codes::DECODE, "{error}");
        assert!(error.msg.contains("UTF-8"), "{}", error.msg);
        assert_eq!(read_stdin(&b"{}"[..]).unwrap(), "{}");
    }

    #[test]
    fn an_absent_valid_attachments_list_is_not_an_empty_one() {
        let base = r#"{"cniVersion":"1.1.0","name":"k","type":"gingham""#;
        assert_eq!(NetConf::parse(&format!("{base}}}")).unwrap().valid_attachments, None);
        let empty = NetConf::parse(&format!(r#"{base},"cni.dev/valid-attachments":[]}}"#)).unwrap();
        assert_eq!(empty.valid_attachments, Some(Vec::new()));
    }

    /// `ipam.assign_ipv4`/`assign_ipv6`: Calico's strings, JSON booleans, absent (the node's
    /// families decide), and what is refused.
    #[test]
    fn the_ipam_options_choose_the_families() {
        let conf = |ipam: &str| format!(r#"{{"cniVersion":"1.1.0","name":"k","type":"gingham","ipam":{ipam}}}"#);
        let ok = [
            ("null", Assign::default()),
            ("{}", Assign::default()),
            (r#"{"type":"calico-ipam"}"#, Assign::default()),
            (r#"{"assign_ipv4":"true","assign_ipv6":"false"}"#, Assign { ipv4: Some(true), ipv6: Some(false) }),
            (r#"{"assign_ipv4":"false","assign_ipv6":"true"}"#, Assign { ipv4: Some(false), ipv6: Some(true) }),
            (r#"{"assign_ipv6":"true"}"#, Assign { ipv4: None, ipv6: Some(true) }),
            (r#"{"assign_ipv4":true,"assign_ipv6":true}"#, Assign { ipv4: Some(true), ipv6: Some(true) }),
        ];
        for (ipam, assign) in ok {
            assert_eq!(NetConf::parse(&conf(ipam)).unwrap().assign, assign, "{ipam}");
        }
        let bad = [
            (r#"{"assign_ipv4":"yes"}"#, "ipam.assign_ipv4"),
            (r#"{"assign_ipv6":"True"}"#, "ipam.assign_ipv6"),
            (r#"{"assign_ipv6":1}"#, "ipam.assign_ipv6"),
            (r#"{"assign_ipv4":"false"}"#, "ipam.assign_ipv4"),
            (r#"{"assign_ipv4":"false","assign_ipv6":"false"}"#, "ipam.assign_ipv6"),
            (r#""calico-ipam""#, "ipam"),
        ];
        for (ipam, field) in bad {
            let error = NetConf::parse(&conf(ipam)).unwrap_err();
            assert_eq!(error.code, codes::INVALID_CONFIG, "{ipam}: {error}");
            assert!(error.msg.contains(field), "{ipam}: {}", error.msg);
        }
    }

    #[test]
    fn every_problem_names_its_field() {
        let cases = [
            (r#"{"cniVersion":"0.2.0","name":"k","type":"gingham"}"#, codes::INCOMPATIBLE_VERSION, "cniVersion"),
            (r#"{"name":"k","type":"gingham"}"#, codes::INVALID_CONFIG, "cniVersion"),
            (r#"{"cniVersion":"1.0.0","type":"gingham"}"#, codes::INVALID_CONFIG, "name"),
            (r#"{"cniVersion":"1.0.0","name":"k","type":"calico"}"#, codes::INVALID_CONFIG, "type"),
            (r#"{"cniVersion":"1.0.0","name":"k","type":"gingham","mtu":"big"}"#, codes::INVALID_CONFIG, "mtu"),
            (r#"{"cniVersion":"1.0.0","name":"k","type":"gingham","mtu":20}"#, codes::INVALID_CONFIG, "mtu"),
            (
                r#"{"cniVersion":"1.0.0","name":"k","type":"gingham","timeoutSeconds":0}"#,
                codes::INVALID_CONFIG,
                "timeoutSeconds",
            ),
            (
                r#"{"cniVersion":"1.0.0","name":"k","type":"gingham","socketPath":"rel"}"#,
                codes::INVALID_CONFIG,
                "socketPath",
            ),
            ("not json", codes::DECODE, "JSON"),
            (
                r#"{"cniVersion":"1.0.0","name":"k","type":"gingham","prevResult":{"ips":7}}"#,
                codes::DECODE,
                "prevResult",
            ),
            (
                r#"{"cniVersion":"1.0.0","name":"k","type":"gingham","cni.dev/valid-attachments":{}}"#,
                codes::INVALID_CONFIG,
                "cni.dev/valid-attachments",
            ),
        ];
        for (text, code, field) in cases {
            let error = NetConf::parse(text).unwrap_err();
            assert_eq!(error.code, code, "{text}: {error}");
            assert!(error.msg.contains(field), "{text}: {}", error.msg);
        }
    }
}
