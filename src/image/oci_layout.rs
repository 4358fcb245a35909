//! OCI image layout directories (image-spec `image-layout.md`): an
//! `oci-layout` file, `index.json` whose entries carry tags as
//! `org.opencontainers.image.ref.name` annotations, and `blobs/sha256/…`
//! (a [`BlobStore`] rooted at the layout).

use super::manifest::{Descriptor, ImageIndex, OCI_INDEX, REF_NAME};
use cairn_layers::blob_store::{BlobError, BlobStore};
use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};

const LAYOUT_FILE: &str = "oci-layout";
const LAYOUT_CONTENT: &[u8] = br#"{"imageLayoutVersion":"1.0.0"}"#;

/// OCI layout errors.
#[derive(Debug, thiserror::Error)]
pub enum LayoutError {
    /// A file of the layout could not be read or written.
    #[error("OCI layout: cannot {action} `{}`", .path.display())]
    Io {
        /// What was being done.
        action: &'static str,
        /// The file.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// A layout file is malformed.
    #[error("OCI layout: `{}` is invalid: {reason}", .path.display())]
    Invalid {
        /// The file.
        path: PathBuf,
        /// Why.
        reason: String,
    },
    /// The tag is not in `index.json`.
    #[error("OCI layout `{}` has no image tagged `{tag}`; tags: {}", .dir.display(), .tags.join(", "))]
    NoSuchTag {
        /// The layout.
        dir: PathBuf,
        /// The tag asked for.
        tag: String,
        /// The tags present.
        tags: Vec<String>,
    },
    /// No tag was given and the layout does not hold exactly one image.
    #[error("OCI layout `{}` holds {count} images; name one with `oci:DIR:TAG` (tags: {})", .dir.display(), .tags.join(", "))]
    Ambiguous {
        /// The layout.
        dir: PathBuf,
        /// How many entries.
        count: usize,
        /// The tags present.
        tags: Vec<String>,
    },
    /// The blob store failed.
    #[error(transparent)]
    Blob(#[from] BlobError),
}

/// An OCI image layout directory.
#[derive(Debug, Clone)]
pub struct OciLayout {
    dir: PathBuf,
    store: BlobStore,
}

fn io<'a>(action: &'static str, path: &'a Path) -> impl FnOnce(std::io::Error) -> LayoutError + 'a {
    move |source| LayoutError::Io {
        action,
        path: path.to_owned(),
        source,
    }
}

impl OciLayout {
    /// Open an existing layout (it must have an `oci-layout` file).
    pub fn open(dir: impl Into<PathBuf>) -> Result<Self, LayoutError> {
        let dir = dir.into();
        let f = dir.join(LAYOUT_FILE);
        let bytes = std::fs::read(&f).map_err(io("read", &f))?;
        let v: serde_json::Value =
            serde_json::from_slice(&bytes).map_err(|e| LayoutError::Invalid {
                path: f.clone(),
                reason: e.to_string(),
            })?;
        if v.get("imageLayoutVersion")
            .and_then(|x| x.as_str())
            .is_none()
        {
            return Err(LayoutError::Invalid {
                path: f,
                reason: "no imageLayoutVersion".into(),
            });
        }
        let store = BlobStore::open(&dir)?;
        Ok(OciLayout { dir, store })
    }

    /// Open `dir` as a layout, creating an empty one if it does not exist yet.
    pub fn create(dir: impl Into<PathBuf>) -> Result<Self, LayoutError> {
        let dir = dir.into();
        if dir.join(LAYOUT_FILE).is_file() {
            return Self::open(dir);
        }
        std::fs::create_dir_all(&dir).map_err(io("create", &dir))?;
        let f = dir.join(LAYOUT_FILE);
        std::fs::write(&f, LAYOUT_CONTENT).map_err(io("write", &f))?;
        let layout = OciLayout {
            store: BlobStore::open(&dir)?,
            dir,
        };
        layout.write_index(&ImageIndex {
            schema_version: 2,
            media_type: Some(OCI_INDEX.into()),
            manifests: Vec::new(),
            annotations: None,
        })?;
        Ok(layout)
    }

    /// The layout directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The layout's blobs.
    pub fn store(&self) -> &BlobStore {
        &self.store
    }

    /// `index.json`.
    pub fn index(&self) -> Result<ImageIndex, LayoutError> {
        let f = self.dir.join("index.json");
        let bytes = std::fs::read(&f).map_err(io("read", &f))?;
        serde_json::from_slice(&bytes).map_err(|e| LayoutError::Invalid {
            path: f,
            reason: e.to_string(),
        })
    }

    /// The tags in `index.json`, in index order.
    pub fn tags(&self) -> Result<Vec<String>, LayoutError> {
        Ok(self
            .index()?
            .manifests
            .iter()
            .filter_map(|d| d.annotation(REF_NAME).map(str::to_owned))
            .collect())
    }

    /// The descriptor tagged `tag`, or the only entry when `tag` is `None`.
    pub fn resolve(&self, tag: Option<&str>) -> Result<Descriptor, LayoutError> {
        let index = self.index()?;
        let tags = || {
            index
                .manifests
                .iter()
                .filter_map(|d| d.annotation(REF_NAME).map(str::to_owned))
                .collect()
        };
        match tag {
            Some(t) => index
                .manifests
                .iter()
                .find(|d| d.annotation(REF_NAME) == Some(t))
                .cloned()
                .ok_or_else(|| LayoutError::NoSuchTag {
                    dir: self.dir.clone(),
                    tag: t.to_owned(),
                    tags: tags(),
                }),
            None if index.manifests.len() == 1 => Ok(index.manifests[0].clone()),
            None => Err(LayoutError::Ambiguous {
                dir: self.dir.clone(),
                count: index.manifests.len(),
                tags: tags(),
            }),
        }
    }

    /// Point `tag` at `desc` (replacing any entry with that tag), or add an untagged
    /// entry when `tag` is `None` (unless the same descriptor is already there).
    /// `desc`'s annotations other than the tag are kept.
    pub fn tag(&self, desc: &Descriptor, tag: Option<&str>) -> Result<(), LayoutError> {
        let mut index = self.index()?;
        let mut d = desc.clone();
        // Other annotations (e.g. cairn's build-record pointer) stay; the tag is this one.
        if let Some(a) = &mut d.annotations {
            a.remove(REF_NAME);
        }
        d.annotations = d.annotations.filter(|a| !a.is_empty());
        match tag {
            Some(t) => {
                index
                    .manifests
                    .retain(|e| e.annotation(REF_NAME) != Some(t));
                d.annotations
                    .get_or_insert_with(BTreeMap::new)
                    .insert(REF_NAME.to_owned(), t.to_owned());
                index.manifests.push(d);
            }
            None => {
                if !index
                    .manifests
                    .iter()
                    .any(|e| e.digest == d.digest && e.annotation(REF_NAME).is_none())
                {
                    index.manifests.push(d);
                }
            }
        }
        self.write_index(&index)
    }

    fn write_index(&self, index: &ImageIndex) -> Result<(), LayoutError> {
        let f = self.dir.join("index.json");
        let bytes = serde_json::to_vec(index).map_err(|e| LayoutError::Invalid {
            path: f.clone(),
            reason: e.to_string(),
        })?;
        let mut tmp = tempfile::NamedTempFile::new_in(&self.dir).map_err(io("write", &f))?;
        tmp.write_all(&bytes).map_err(io("write", &f))?;
        tmp.persist(&f).map_err(|e| io("write", &f)(e.error))?;
        Ok(())
    }
}

/// Split `oci:DIR[:TAG]` (the `oci:` prefix already removed) into directory and tag:
/// a `:` after the last `/` starts the tag, as skopeo reads it.
pub fn split_dir_tag(s: &str) -> (&str, Option<&str>) {
    let last_slash = s.rfind('/').map_or(0, |i| i + 1);
    match s[last_slash..].rfind(':') {
        Some(i) if last_slash + i > 0 => (
            &s[..last_slash + i],
            Some(&s[last_slash + i + 1..]).filter(|t| !t.is_empty()),
        ),
        _ => (s, None),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::image::manifest::OCI_MANIFEST;

    #[test]
    fn create_tag_resolve_retag() {
        let t = tempfile::tempdir().unwrap();
        let l = OciLayout::create(t.path().join("l")).unwrap();
        assert_eq!(
            std::fs::read(t.path().join("l/oci-layout")).unwrap(),
            LAYOUT_CONTENT
        );
        let d1 = l.store().put_bytes(b"{\"a\":1}").unwrap();
        let d2 = l.store().put_bytes(b"{\"a\":2}").unwrap();
        let desc1 = Descriptor::new(OCI_MANIFEST, d1.clone(), 7);
        let desc2 = Descriptor::new(OCI_MANIFEST, d2.clone(), 7);
        l.tag(&desc1, Some("one")).unwrap();
        assert_eq!(
            l.resolve(None).unwrap().digest,
            d1,
            "single entry needs no tag"
        );
        l.tag(&desc2, Some("two")).unwrap();
        l.tag(&desc2, Some("one")).unwrap();
        let l = OciLayout::open(t.path().join("l")).unwrap();
        assert_eq!(l.tags().unwrap(), ["two", "one"]);
        assert_eq!(l.resolve(Some("one")).unwrap().digest, d2);
        let e = l.resolve(Some("three")).unwrap_err().to_string();
        assert!(e.contains("no image tagged `three`; tags: two, one"), "{e}");
        assert!(matches!(
            l.resolve(None),
            Err(LayoutError::Ambiguous { count: 2, .. })
        ));
    }

    #[test]
    fn open_rejects_a_directory_without_oci_layout() {
        let t = tempfile::tempdir().unwrap();
        assert!(matches!(
            OciLayout::open(t.path()),
            Err(LayoutError::Io { .. })
        ));
    }

    #[test]
    fn split_dir_and_tag() {
        assert_eq!(split_dir_tag("out"), ("out", None));
        assert_eq!(split_dir_tag("out:22-alpine"), ("out", Some("22-alpine")));
        assert_eq!(split_dir_tag("a:b/out"), ("a:b/out", None));
        assert_eq!(split_dir_tag("/x/y:t"), ("/x/y", Some("t")));
    }
}
