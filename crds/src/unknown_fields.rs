//! Unknown fields: keys of the written object that its typed form does not keep (a typo such as
//! `blokcs` would otherwise be dropped silently). The agent refuses a NodeNetwork with such a
//! field; `gingham convert` names every Calico field that does not carry over.

use serde_json::Value;

/// The paths (like `spec.bgp.peerz`) present in `written` but absent from `typed` (the written
/// object decoded and encoded again). Null values and empty lists or maps count as absent (the
/// types skip serializing them).
pub fn unknown_fields(written: &Value, typed: &Value, path: &str) -> Vec<String> {
    let mut found = Vec::new();
    walk(written, typed, path, &mut found);
    found
}

fn walk(written: &Value, typed: &Value, path: &str, found: &mut Vec<String>) {
    match (written, typed) {
        (Value::Object(written), Value::Object(typed)) => {
            for (key, value) in written {
                let child = if path.is_empty() { key.clone() } else { format!("{path}.{key}") };
                match typed.get(key) {
                    Some(kept) => walk(value, kept, &child, found),
                    None if is_empty(value) => {}
                    None => found.push(child),
                }
            }
        }
        (Value::Array(written), Value::Array(typed)) => {
            for (index, (value, kept)) in written.iter().zip(typed).enumerate() {
                walk(value, kept, &format!("{path}[{index}]"), found);
            }
        }
        _ => {}
    }
}

fn is_empty(value: &Value) -> bool {
    match value {
        Value::Null => true,
        Value::Array(list) => list.is_empty(),
        Value::Object(map) => map.is_empty(),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn finds_typos_at_any_depth_and_ignores_empty_values() {
        let written = json!({ "blokcs": ["x"], "bgp": { "peers": [{ "name": "a", "adress": "x", "nets": [] }] }, "tunnel": null });
        let typed = json!({ "blocks": [], "bgp": { "peers": [{ "name": "a", "address": "" }] } });
        assert_eq!(unknown_fields(&written, &typed, "spec"), vec!["spec.bgp.peers[0].adress", "spec.blokcs"]);
    }
}
