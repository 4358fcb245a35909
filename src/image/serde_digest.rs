//! serde `with` modules writing [`Digest`] and [`DiffId`] as their
//! `sha256:…` strings and refusing anything else when reading.

use cairn_layers::Digest;
use serde::{Deserialize, Deserializer, Serializer};

/// `#[serde(with = "serde_digest")]` for a [`Digest`].
pub fn serialize<S: Serializer>(d: &Digest, s: S) -> Result<S::Ok, S::Error> {
    s.collect_str(d)
}

/// See [`serialize`].
pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Digest, D::Error> {
    let s = String::deserialize(d)?;
    s.parse().map_err(serde::de::Error::custom)
}

/// `#[serde(with = "serde_digest::diff_id")]` for a [`cairn_layers::DiffId`].
pub mod diff_id {
    use cairn_layers::DiffId;
    use serde::{Deserializer, Serializer};

    /// Write the digest string.
    pub fn serialize<S: Serializer>(d: &DiffId, s: S) -> Result<S::Ok, S::Error> {
        super::serialize(&d.0, s)
    }

    /// Read a digest string.
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<DiffId, D::Error> {
        super::deserialize(d).map(DiffId)
    }
}
