//! Layer compression and media types per output (`--output
//! compression=gzip|zstd|uncompressed,compression-level=N,force-compression=,
//! oci-mediatypes=`), as BuildKit's image exporters apply them: the layers
//! this build made are written in the asked compression; the base image's
//! keep theirs unless `force-compression=true`. The config is unchanged (the
//! diff_ids do not depend on compression); the manifest is new, and so is the
//! image digest.
//!
//! Determinism: zstd comes from libzstd 1.5.7 (crate `zstd-sys`
//! 2.1.3+zstd.1.5.7, pinned in Cargo.lock; `zstd` pinned `=0.13.3` in
//! Cargo.toml) at [`ZSTD_LEVEL`] unless `compression-level=` says otherwise,
//! single-threaded, no checksum, no dictionary, content size unknown
//! (streamed): the same bytes on every machine. The golden test below pins a
//! digest; upgrading libzstd may change it (then the test says so). Gzip at
//! another level uses cairn's own deterministic gzip (`cairn_layers::pgzip`).

use super::build::BuildResult;
use super::step::error::{Error, Result};
use crate::image::media_type::LayerCompression;
use crate::image::mutate;
use crate::image::{Layer, MediaType};
use cairn_layers::blob_store::BlobStore;
use cairn_layers::compress::GZIP_LEVEL;
use cairn_layers::pgzip::ParallelGzip;
use cairn_layers::{DiffId, Digest};
use std::io::{Read, Write};

/// zstd level when `compression-level=` is not given: libzstd's default, as
/// BuildKit's (`zstd.SpeedDefault` ≈ level 3).
pub const ZSTD_LEVEL: i32 = 3;

/// How one output writes the image.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ExportOptions {
    /// `compression=` (`None`: as built, gzip).
    pub compression: Option<LayerCompression>,
    /// `compression-level=`.
    pub level: Option<i32>,
    /// `force-compression=true`: recompress the base image's layers too.
    pub force: bool,
    /// `oci-mediatypes=` (default true): OCI or Docker schema 2 media types.
    pub oci_media_types: bool,
}

impl Default for ExportOptions {
    fn default() -> Self {
        ExportOptions {
            compression: None,
            level: None,
            force: false,
            oci_media_types: true,
        }
    }
}

impl ExportOptions {
    /// Whether the image is written exactly as built.
    pub fn is_default(&self) -> bool {
        *self == ExportOptions::default()
    }
}

pub use super::step::error::OpenLayerError;

/// A reader of a layer's uncompressed tar, whatever its compression (sniffed
/// by the layers crate's one sniffer, as every tar reader does).
pub fn open_uncompressed(
    store: &BlobStore,
    digest: &Digest,
) -> Result<Box<dyn Read>, OpenLayerError> {
    let f = std::io::BufReader::new(store.open_blob(digest).map_err(|source| {
        OpenLayerError::Open {
            digest: digest.clone(),
            source,
        }
    })?);
    let (_, plain) =
        cairn_layers::tar_read::decompress(f).map_err(|source| OpenLayerError::Read {
            digest: digest.clone(),
            source,
        })?;
    Ok(plain)
}

/// Write `layer` in compression `to` (at `level`) into `store`; its new descriptor.
fn recompress(
    store: &BlobStore,
    layer: &Layer,
    to: LayerCompression,
    level: Option<i32>,
    oci: bool,
) -> Result<Layer> {
    let mut input = open_uncompressed(store, &layer.digest)?;
    let out = store.writer()?;
    let (out, diff_id) = match to {
        LayerCompression::Uncompressed => {
            let mut h = cairn_layers::digest::HashingWriter::new(out);
            std::io::copy(&mut input, &mut h)?;
            let (d, _, out) = h.finish();
            (out, d)
        }
        LayerCompression::Gzip => {
            let level = level.map_or(GZIP_LEVEL, |l| l.clamp(0, 9) as u32);
            let mut gz = ParallelGzip::new(out, level, 0);
            std::io::copy(&mut input, &mut gz)?;
            let done = gz.finish()?;
            (done.inner, done.uncompressed_digest)
        }
        LayerCompression::Zstd => {
            let mut h = cairn_layers::digest::HashingWriter::new(std::io::sink());
            let mut enc = zstd::stream::write::Encoder::new(out, level.unwrap_or(ZSTD_LEVEL))?;
            enc.include_checksum(false)?;
            enc.include_contentsize(false)?;
            let mut buf = vec![0u8; 1 << 20];
            loop {
                let n = input.read(&mut buf)?;
                if n == 0 {
                    break;
                }
                h.write_all(&buf[..n])?;
                enc.write_all(&buf[..n])?;
            }
            let (d, _, _) = h.finish();
            (enc.finish()?, d)
        }
    };
    if diff_id != layer.diff_id.0 {
        return Err(Error::DiffIdMismatch {
            layer: layer.digest.clone(),
            got: diff_id,
            want: layer.diff_id.0.clone(),
        });
    }
    let (digest, size) = out.commit(None)?;
    Ok(Layer {
        digest,
        diff_id: DiffId(diff_id),
        size,
        media_type: MediaType::layer(to, oci),
    })
}

/// The image as an output with `opts` writes it (the result itself when
/// nothing changes). New blobs go into `store`.
pub fn convert(r: &BuildResult, store: &BlobStore, opts: &ExportOptions) -> Result<BuildResult> {
    if opts.is_default() {
        return Ok(r.clone());
    }
    let own_from = r.base.as_ref().map_or(0, |b| b.layers.min(r.layers.len()));
    let mut layers = Vec::with_capacity(r.layers.len());
    for (i, l) in r.layers.iter().enumerate() {
        let now = l.media_type.compression();
        let wanted = match opts.compression {
            Some(c) if i >= own_from || opts.force => c,
            _ => now,
        };
        // A level asks for recompression only of layers this build made (or all, forced).
        let relevel = opts.level.is_some() && (i >= own_from || opts.force);
        let l = if wanted != now || relevel {
            recompress(store, l, wanted, opts.level, opts.oci_media_types).map_err(|source| {
                Error::Recompress {
                    digest: l.digest.clone(),
                    source: Box::new(source),
                }
            })?
        } else {
            Layer {
                media_type: MediaType::layer(now, opts.oci_media_types),
                ..l.clone()
            }
        };
        layers.push(l);
    }
    let (manifest_type, config_type) = if opts.oci_media_types {
        (MediaType::OciManifest, MediaType::OciConfig)
    } else {
        (MediaType::DockerManifest, MediaType::DockerConfig)
    };
    let config = mutate::config_descriptor(config_type, r.config_digest.clone(), &r.config_raw);
    let manifest = mutate::manifest(manifest_type, config, &layers, &r.annotations)?;
    let manifest_digest = store.put_bytes(&manifest.bytes)?;
    let manifest_raw = manifest.bytes;
    Ok(BuildResult {
        manifest_raw,
        manifest_media_type: manifest.media_type,
        manifest_digest,
        layers,
        ..r.clone()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A small deterministic tar (the same bytes on every machine).
    fn tar_bytes() -> Vec<u8> {
        let mut b = tar::Builder::new(Vec::new());
        for i in 0..50u32 {
            let data = format!("file {i}\n").repeat(100 + i as usize);
            let mut h = tar::Header::new_ustar();
            h.set_size(data.len() as u64);
            h.set_mode(0o644);
            h.set_mtime(0);
            h.set_cksum();
            b.append_data(&mut h, format!("dir/f{i}.txt"), data.as_bytes())
                .unwrap();
        }
        b.into_inner().unwrap()
    }

    #[test]
    fn zstd_layers_are_pinned_and_read_back() {
        let t = tempfile::tempdir().unwrap();
        let store = BlobStore::open(t.path()).unwrap();
        let plain = tar_bytes();
        let d = store.put_bytes(&plain).unwrap();
        let layer = Layer {
            digest: d.clone(),
            diff_id: DiffId(d.clone()),
            size: plain.len() as u64,
            media_type: "application/vnd.oci.image.layer.v1.tar".into(),
        };
        let z = recompress(&store, &layer, LayerCompression::Zstd, None, true).unwrap();
        assert_eq!(z.media_type, "application/vnd.oci.image.layer.v1.tar+zstd");
        assert_eq!(z.diff_id.0, d);
        // Pinned: libzstd 1.5.7 at level 3. A change here changes every zstd layer digest.
        assert_eq!(
            z.digest.to_string(),
            "sha256:dba1cd22c30eba68361afbe259844eff8f14f049c65beb36bd894a69704b4290"
        );
        let mut back = Vec::new();
        open_uncompressed(&store, &z.digest)
            .unwrap()
            .read_to_end(&mut back)
            .unwrap();
        assert_eq!(back, plain);
        // And back to gzip, then plain: the diff_id holds throughout.
        let g = recompress(&store, &z, LayerCompression::Gzip, None, false).unwrap();
        assert_eq!(
            g.media_type,
            "application/vnd.docker.image.rootfs.diff.tar.gzip"
        );
        let p = recompress(&store, &g, LayerCompression::Uncompressed, None, true).unwrap();
        assert_eq!(p.digest, d, "an uncompressed layer's digest is its diff_id");
    }
}
