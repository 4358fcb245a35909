//! The publish room: where a built image goes. The engine builds an image
//! (or, for several platforms, an index of images) into the cache's blob
//! store and knows nothing of outputs; the CLI turns `-o/--output`,
//! `--push` and `-t` into a list of [`Publisher`]s and hands each the
//! [`Built`] image, in the order given (as ko's `publish` package).
//!
//! | sink | file | needs the layers' bytes |
//! |---|---|---|
//! | the local image store (`CACHE/images`, no `-o`, `type=image`) | [`local_store`] | yes |
//! | an OCI layout directory or tarball (`type=oci`) | [`oci_layout`] | yes |
//! | a docker-archive (`type=docker`) | [`docker_archive`] | yes |
//! | a registry (`--push`, `type=registry`, `type=image,push=true`) | [`registry`] | only what the registry cannot mount |
//! | the filesystem as a directory or a tar (`type=local`, `type=tar`) | [`filesystem`] | yes |
//! | what travels with an image: the build record, SBOM and provenance | [`attachments`] | for an SBOM |
//!
//! **Lazy layers.** A step served by a `--cache-from` registry or
//! directory leaves its layer where it is ([`LazyBlobs`]); a sink that
//! writes bytes fetches them first ([`Built::fetch_layers`]), while a push
//! to a registry mounts them registry-side from the cache's repository and
//! downloads only what the registry cannot mount. What each registry moved
//! is counted ([`crate::registry::traffic`]) and shown in the build summary.
//!
//! **Adding a sink**: a type implementing [`Publisher`] in a file of its
//! own, and a line in the CLI's list (`cli/build/publishers.rs`).

pub mod attachments;
pub mod dest;
pub mod docker_archive;
pub mod error;
pub mod filesystem;
pub mod local_store;
pub mod oci_layout;
pub mod registry;

pub use dest::Dest;
pub use error::Error;

use crate::engine::multi::IndexResult;
use crate::engine::recompress::ExportOptions;
use crate::engine::BuildResult;
use crate::image::manifest::Descriptor;
use crate::report::Reporter;
use cairn_layers::blob_store::BlobStore;
use cairn_layers::Digest;
use std::path::Path;

/// What was built: one image, or the index of a multi-platform build.
#[derive(Clone, Copy, Debug)]
pub enum Subject<'a> {
    /// A single-platform image.
    Image(&'a BuildResult),
    /// A multi-platform index and its images.
    Index(&'a IndexResult),
}

impl<'a> Subject<'a> {
    /// The images (one, or one per platform).
    pub fn images(&self) -> Vec<&'a BuildResult> {
        match self {
            Subject::Image(r) => vec![r],
            Subject::Index(ix) => ix.images.iter().collect(),
        }
    }

    /// The digest pushed and printed: the manifest's or the index's.
    pub fn digest(&self) -> &'a Digest {
        match self {
            Subject::Image(r) => &r.manifest_digest,
            Subject::Index(ix) => &ix.index_digest,
        }
    }
}

/// Blobs of the built image that are not in the store yet: layers a
/// `--cache-from` hit left in the cache they came from.
pub trait LazyBlobs: Send + Sync {
    /// Fetch `digest` into `store` (verified); nothing when it is not lazy.
    fn fetch(&self, digest: &Digest, store: &BlobStore) -> Result<(), Error>;
    /// The registry repositories lazy blobs come from (where a push mounts them from).
    fn origins(&self) -> Vec<crate::registry::Repository>;
}

/// No lazy blobs: everything is in the store.
impl LazyBlobs for () {
    fn fetch(&self, _: &Digest, _: &BlobStore) -> Result<(), Error> {
        Ok(())
    }
    fn origins(&self) -> Vec<crate::registry::Repository> {
        Vec::new()
    }
}

impl LazyBlobs for crate::cache::remote::Imports {
    fn fetch(&self, digest: &Digest, store: &BlobStore) -> Result<(), Error> {
        Ok(self.materialize([digest], store)?)
    }
    fn origins(&self) -> Vec<crate::registry::Repository> {
        self.locations()
            .filter_map(|l| match l {
                crate::cache::remote::Location::Registry(r) => {
                    r.parse::<crate::registry::Reference>().ok()
                }
                crate::cache::remote::Location::Local(_) => None,
            })
            .map(|r| r.repository().clone())
            .collect()
    }
}

/// What a publisher is handed.
#[derive(Clone, Copy)]
pub struct Built<'a> {
    /// The image or index.
    pub subject: Subject<'a>,
    /// The cache's blob store, which holds its blobs (but the lazy ones).
    pub store: &'a BlobStore,
    /// Where the lazy blobs are.
    pub lazy: &'a dyn LazyBlobs,
    /// A directory on the cache's filesystem for temporaries.
    pub scratch: &'a Path,
    /// Progress and messages.
    pub reporter: &'a dyn Reporter,
    /// What to attest and attach (`--sbom`, `--provenance`), the same for
    /// every image of the subject; `None`: nothing.
    pub attest: Option<&'a crate::attest::Plan>,
}

/// What every publisher is handed besides the subject.
#[derive(Clone, Copy)]
pub struct Sinks<'a> {
    /// See [`Built::store`].
    pub store: &'a BlobStore,
    /// See [`Built::lazy`].
    pub lazy: &'a dyn LazyBlobs,
    /// See [`Built::scratch`].
    pub scratch: &'a Path,
    /// See [`Built::reporter`].
    pub reporter: &'a dyn Reporter,
    /// See [`Built::attest`].
    pub attest: Option<&'a crate::attest::Plan>,
}

impl<'a> Sinks<'a> {
    /// `subject`, ready to publish.
    pub fn built<'b>(&self, subject: Subject<'b>) -> Built<'b>
    where
        'a: 'b,
    {
        Built {
            subject,
            store: self.store,
            lazy: self.lazy,
            scratch: self.scratch,
            reporter: self.reporter,
            attest: self.attest,
        }
    }
}

impl<'a> Built<'a> {
    /// The same, about another subject (an output's recompressed image).
    pub fn with(&self, subject: Subject<'a>) -> Built<'a> {
        Built { subject, ..*self }
    }

    /// Fetch `digests` that are not in the store yet.
    pub fn fetch<'d>(&self, digests: impl IntoIterator<Item = &'d Digest>) -> Result<(), Error> {
        for d in digests {
            if !self.store.contains(d) {
                self.lazy.fetch(d, self.store)?;
            }
        }
        Ok(())
    }

    /// Fetch every layer of the subject's images that is not in the store
    /// yet: what a sink writing the layers' bytes calls first.
    pub fn fetch_layers(&self) -> Result<(), Error> {
        for r in self.subject.images() {
            self.fetch(r.layers.iter().map(|l| &l.digest))?;
        }
        Ok(())
    }
}

/// A place a built image goes.
pub trait Publisher {
    /// Write or send `built` (messages through `built.reporter`).
    fn publish(&self, built: &Built<'_>) -> Result<(), Error>;
}

/// One output: its publishers (`type=image,push=true` is the local store
/// and a push of the same image) and how their image's layers are
/// compressed (`None`: they write a filesystem, not layers).
pub struct Output {
    /// The sinks, in order.
    pub publishers: Vec<Box<dyn Publisher>>,
    /// `compression=`, `oci-mediatypes=`, … (image sinks).
    pub export: Option<ExportOptions>,
}

/// Publish `built` to every output in order. Returns the image as the last
/// output that rewrote it (another compression or media types) wrote it:
/// the digest the build then reports.
pub fn publish_all(outputs: &[Output], built: &Built<'_>) -> Result<Option<BuildResult>, Error> {
    let mut rewritten = None;
    for o in outputs {
        let converted = match (&o.export, built.subject) {
            (Some(export), Subject::Image(r)) if !export.is_default() => {
                // Recompression reads every layer.
                built.fetch_layers()?;
                Some(crate::engine::recompress::convert(r, built.store, export)?)
            }
            _ => None,
        };
        let b = match &converted {
            Some(img) => built.with(Subject::Image(img)),
            None => *built,
        };
        for p in &o.publishers {
            p.publish(&b)?;
        }
        if converted.is_some() {
            rewritten = converted;
        }
    }
    Ok(rewritten)
}

/// The names an output uses: its own `name=`, else the `-t` tags.
pub fn names_or_tags(names: &[String], tags: &[String]) -> Vec<String> {
    if names.is_empty() { tags } else { names }.to_vec()
}

/// The descriptor of what `subject` names at the top of a layout or a push.
pub fn descriptor(subject: Subject<'_>) -> Descriptor {
    match subject {
        Subject::Image(r) => r.descriptor(),
        Subject::Index(ix) => ix.descriptor(),
    }
}
