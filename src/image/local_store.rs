//! The local image store: the OCI layout in the cache directory
//! (`cache::Bucket::Images`) where `cairn build` puts images when no output
//! is given. A name is looked up here before a registry; the CLI finds the
//! directory and tells the user when the store answered.

use crate::image::oci_layout::OciLayout;
use std::path::Path;

/// The tags under which the store may hold `name`: as given, with `:latest`
/// when it has no tag, `sha256-HEX` for `sha256:HEX`.
fn candidates(name: &str) -> Vec<String> {
    if let Some(hex) = name.strip_prefix("sha256:") {
        return vec![format!("sha256-{hex}")];
    }
    let last = name.rsplit('/').next().unwrap_or(name);
    if last.contains(':') || name.contains('@') {
        vec![name.to_owned()]
    } else {
        vec![name.to_owned(), format!("{name}:latest")]
    }
}

/// The tag under which the store at `store` holds `name`, if it does.
pub fn find(name: &str, store: &Path) -> Option<String> {
    if name.starts_with("oci:") || name.starts_with("docker-archive:") {
        return None;
    }
    let tags = OciLayout::open(store).ok()?.tags().ok()?;
    candidates(name).into_iter().find(|t| tags.contains(t))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::image::manifest::{Descriptor, OCI_MANIFEST};

    #[test]
    fn names_resolve_with_latest_and_digest_forms() {
        let t = tempfile::tempdir().unwrap();
        let l = OciLayout::create(t.path()).unwrap();
        let d = l.store().put_bytes(b"{}").unwrap();
        let desc = Descriptor::new(OCI_MANIFEST, d.clone(), 2);
        for tag in [
            "app:latest",
            "ghcr.io/acme/app:1",
            &format!("sha256-{}", d.hex()),
        ] {
            l.tag(&desc, Some(tag)).unwrap();
        }
        assert_eq!(find("app", t.path()).as_deref(), Some("app:latest"));
        assert_eq!(
            find("ghcr.io/acme/app:1", t.path()).as_deref(),
            Some("ghcr.io/acme/app:1")
        );
        assert!(find(&d.to_string(), t.path()).is_some());
        assert_eq!(find("app:2", t.path()), None);
        assert_eq!(find("oci:x", t.path()), None);
    }
}
