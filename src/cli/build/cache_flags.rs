//! `cairn build --cache-to/--cache-from`: parsed before any work, the
//! imports handed to the engine, the export run after the outputs (so a
//! pushed image's blobs are mounted, not sent again). See
//! `crate::cache::remote`.

use super::BuildArgs;
use crate::cache::remote::{self, CacheSpec, ExportEntry, Imports};
use crate::engine::BuildResult;
use crate::registry::{Registry, RegistryOptions};
use crate::report::{Event, Reporter};
use std::sync::Arc;

/// The parsed flags.
pub(super) struct CacheFlags {
    to: Vec<CacheSpec>,
    from: Vec<CacheSpec>,
    client: Option<remote::registry::Client>,
}

impl CacheFlags {
    /// Parse and open every `--cache-to/--cache-from` (nothing is read yet).
    pub(super) fn parse(
        args: &BuildArgs,
        global: &crate::cli::GlobalArgs,
        progress: Arc<crate::progress::Progress>,
        cache_dir: &std::path::Path,
    ) -> anyhow::Result<Self> {
        let parse = |flag: &str, v: &Vec<String>| -> anyhow::Result<Vec<CacheSpec>> {
            v.iter().map(|s| CacheSpec::parse(flag, s)).collect()
        };
        let to = parse("--cache-to", &args.cache_to)?;
        let from = parse("--cache-from", &args.cache_from)?;
        let client = if to.is_empty() && from.is_empty() {
            None
        } else {
            let mut opts = RegistryOptions::new(global.insecure_registries.clone(), progress);
            opts.blob_memo = Some(crate::cli::pull::blob_memo_file(cache_dir));
            // Blobs the image push sent are mounted from its repositories.
            let mount_from = args
                .tags
                .iter()
                .filter_map(|t| t.parse::<crate::registry::Reference>().ok())
                .map(|r| r.repository().clone())
                .collect();
            Some(remote::registry::Client::new(
                Registry::new(opts)?,
                mount_from,
            )?)
        };
        let flags = CacheFlags { to, from, client };
        // Refs are checked now, before any work.
        for s in flags.to.iter().chain(&flags.from) {
            flags.open(s)?;
        }
        Ok(flags)
    }

    fn open(&self, spec: &CacheSpec) -> anyhow::Result<Box<dyn remote::Remote>> {
        match &self.client {
            Some(c) => remote::open(spec, c),
            None => anyhow::bail!("internal error: no registry client for the cache flags"),
        }
    }

    /// The caches to import from.
    pub(super) fn imports(&self) -> anyhow::Result<Imports> {
        let sources = self
            .from
            .iter()
            .map(|s| Ok((s.clone(), self.open(s)?)))
            .collect::<anyhow::Result<_>>()?;
        Ok(Imports::new(sources))
    }

    /// Whether `--cache-to` was given.
    pub(super) fn exports(&self) -> bool {
        !self.to.is_empty()
    }

    /// Export the steps of `result` to every `--cache-to`.
    pub(super) fn export(
        &self,
        dockerfile: &std::path::Path,
        cache_dir: &std::path::Path,
        result: &BuildResult,
        imports: &Imports,
        reporter: &dyn Reporter,
    ) -> anyhow::Result<()> {
        if self.to.is_empty() {
            return Ok(());
        }
        let cache = crate::cache::Cache::open_as_is(cache_dir)?;
        let store = cairn_layers::blob_store::BlobStore::open(cache_dir)?;
        let entries: Vec<ExportEntry> = result
            .record
            .steps
            .iter()
            .filter_map(|s| {
                let key = s.key.as_ref()?.parse().ok()?;
                Some(ExportEntry {
                    slot: remote::slot_id(dockerfile, &s.stage, s.index),
                    record: cache.read_record(&key)?,
                })
            })
            .collect();
        let layers: Vec<_> = result.layers.iter().map(|l| l.digest.clone()).collect();
        for spec in &self.to {
            let t = std::time::Instant::now();
            let r = self.open(spec).and_then(|remote| {
                remote::export(spec, &*remote, &entries, &layers, &store, imports)
            });
            match r {
                Ok(done) => reporter.event(Event::Info(format!(
                    "cache export to the {}: {} entries added, {} already there ({:.2}s)",
                    spec.describe(),
                    done.added,
                    done.present,
                    t.elapsed().as_secs_f64()
                ))),
                Err(e) if spec.ignore_error => reporter.event(Event::Warning(format!(
                    "cache export to the {} failed: {e:#}; the build is not failed (ignore-error=true)",
                    spec.describe()
                ))),
                Err(e) => {
                    return Err(e.context(format!("exporting the cache to the {}", spec.describe())))
                }
            }
        }
        Ok(())
    }
}

/// Whether `e` is a refused cache blob: the build is then run again,
/// without that entry.
pub(super) fn refused(e: &anyhow::Error) -> bool {
    e.chain().any(|c| c.is::<remote::Refused>())
}
