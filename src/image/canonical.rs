//! Canonical JSON: keys sorted, no insignificant whitespace.
//!
//! `serde_json::Value`'s map is a `BTreeMap` as long as no dependency enables
//! serde_json's `preserve_order` feature (checked with
//! `cargo tree -e features -i serde_json`), so going through a `Value` sorts
//! every object's keys, including those of `HashMap` fields.

use serde::Serialize;

/// Serialize `value` canonically.
pub fn to_vec<T: Serialize>(value: &T) -> Result<Vec<u8>, serde_json::Error> {
    serde_json::to_vec(&serde_json::to_value(value)?)
}

#[cfg(test)]
mod tests {
    #[test]
    fn keys_are_sorted_at_every_level() {
        let mut m = std::collections::HashMap::new();
        for k in ["zeta", "alpha", "mid", "beta"] {
            m.insert(k, serde_json::json!({"z": 1, "a": [ {"y": 2, "b": 3} ]}));
        }
        let s = String::from_utf8(super::to_vec(&m).unwrap()).unwrap();
        assert_eq!(
            s,
            r#"{"alpha":{"a":[{"b":3,"y":2}],"z":1},"beta":{"a":[{"b":3,"y":2}],"z":1},"mid":{"a":[{"b":3,"y":2}],"z":1},"zeta":{"a":[{"b":3,"y":2}],"z":1}}"#
        );
    }
}
