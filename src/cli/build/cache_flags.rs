//! `cairn build --cache-to/--cache-from`: parsed before any work, the
//! imports handed to the engine, the export run after the outputs (so a
//! pushed image's blobs are mounted, not sent again). See
//! `crate::cache::remote`.

use super::BuildArgs;
use crate::cache::remote::{self, CacheSpec, ExportEntry, Imports};
use crate::engine::BuildResult;
use crate::registry::{Registry, RegistryOptions};
use crate::report::{Event, Reporter};

/// The parsed flags.
pub(super) struct CacheFlags {
    to: Vec<CacheSpec>,
    from: Vec<CacheSpec>,
    client: Option<remote::registry::Client>,
}

impl CacheFlags {
    /// Parse and open every `--cache-to/--cache-from` (nothing is read yet).
    pub(super) fn parse(args: &BuildArgs, opts: RegistryOptions) -> anyhow::Result<Self> {
        let parse = |flag: &str, v: &Vec<String>| -> anyhow::Result<Vec<CacheSpec>> {
            Ok(v.iter()
                .map(|s| CacheSpec::parse(flag, s))
                .collect::<Result<_, _>>()?)
        };
        let to = parse("--cache-to", &args.cache_to)?;
        let from = parse("--cache-from", &args.cache_from)?;
        let client = if to.is_empty() && from.is_empty() {
            None
        } else {
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

    /// Whether a `--cache-to` exports every stage's steps (`mode=max`).
    pub(super) fn exports_every_stage(&self) -> bool {
        self.to.iter().any(|s| s.mode == remote::Mode::Max)
    }

    fn open(&self, spec: &CacheSpec) -> anyhow::Result<Box<dyn remote::Remote>> {
        match &self.client {
            Some(c) => Ok(remote::open(spec, c)?),
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

    /// Export the steps of `results` (one per platform) to every
    /// `--cache-to`, and the cache mounts their `RUN` steps used to those
    /// with `cache-mounts=`.
    pub(super) fn export(
        &self,
        dockerfile: &std::path::Path,
        cache_dir: &std::path::Path,
        results: &[&BuildResult],
        imports: &Imports,
        reporter: &dyn Reporter,
    ) -> anyhow::Result<()> {
        if self.to.is_empty() {
            return Ok(());
        }
        let cache = crate::cache::Cache::open_as_is(cache_dir)?;
        let store = cairn_layers::blob_store::BlobStore::open(cache_dir)?;
        let scratch = cache.layout().dir(crate::cache::Bucket::Tmp);
        let entries: Vec<ExportEntry> = results
            .iter()
            .flat_map(|r| &r.record.steps)
            .filter_map(|s| {
                let key = s.key.as_ref()?.parse().ok()?;
                let record = cache.read_record(&key)?;
                // The layer-by-content record of the same step (a COPY's),
                // as the engine's slot names it: the layer's file index.
                let local = format!("{}|{}|{}#content", dockerfile.display(), s.stage, s.index);
                let content = cache
                    .slot_key(&local)
                    .and_then(|k| cache.read_record(&k))
                    .filter(|c| {
                        c.is_content() && record.layer.is_some() && c.layer == record.layer
                    });
                Some(ExportEntry {
                    slot: remote::slot_id(dockerfile, &s.stage, s.index),
                    record,
                    content,
                })
            })
            .collect();
        let layers: Vec<_> = results
            .iter()
            .flat_map(|r| r.layers.iter().map(|l| l.digest.clone()))
            .collect();
        let mounts = imports.mounts_ran();
        let warn = |w: String| reporter.event(Event::Warning(w));
        for spec in &self.to {
            let t = std::time::Instant::now();
            let r = self.open(spec).and_then(|remote| {
                let steps = remote::export(spec, &*remote, &entries, &layers, &store, imports)?;
                let m = remote::mounts::export(spec, &*remote, &mounts, &scratch, &warn)?;
                if let Some(note) = remote.degraded() {
                    warn(note);
                }
                Ok((steps, m))
            });
            match r {
                Ok((done, m)) => reporter.event(Event::Info(format!(
                    "cache export to the {}: {} entries added, {} already there{}{} ({:.2}s)",
                    spec.describe(),
                    done.added,
                    done.present,
                    match done.indexes {
                        0 => String::new(),
                        n => format!(", {n} file indexes"),
                    },
                    match (m.written, m.unchanged) {
                        (0, 0) => String::new(),
                        (w, u) => format!("; cache mounts: {w} written, {u} unchanged"),
                    },
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
fn refused(e: &anyhow::Error) -> bool {
    // A typed room error holding the refusal shows in the chain as itself;
    // one held by a transparent wrapper is reached through `links`.
    crate::error::links(e.as_ref()).any(|c| {
        c.is::<remote::Refused>()
            || c.downcast_ref::<crate::cache::Error>()
                .is_some_and(|e| e.refused().is_some())
            || c.downcast_ref::<crate::publish::Error>()
                .is_some_and(|p| p.refused().is_some())
    })
}

/// Run `build` again while it fails on a refused cache blob, the refused
/// entry's step rebuilt (each run refuses one more key, and a build has
/// finitely many: the bound is only a backstop).
pub(super) fn retrying_refused<T>(
    reporter: &dyn Reporter,
    mut build: impl FnMut() -> anyhow::Result<T>,
) -> anyhow::Result<T> {
    let mut result = build();
    for _ in 0..256 {
        match &result {
            Err(e) if refused(e) => {
                reporter.event(Event::Warning(format!("{e:#}; building that step instead")));
                result = build();
            }
            _ => break,
        }
    }
    result
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_refused_blob_is_seen_under_the_engines_transparent_wrappers() {
        let refused_blob = || remote::Refused {
            source_name: "cache".into(),
            digest: "sha256:00".into(),
            key: "k".into(),
            why: "digest mismatch".into(),
        };
        // As a step's error reaches the CLI: held by the engine's error, at its Dockerfile place.
        let step = crate::engine::Error::from(crate::cache::Error::from(refused_blob()));
        let at = crate::frontend::Diagnostic::error(
            std::path::Path::new("Dockerfile"),
            "RUN x\n",
            crate::frontend::Pos { line: 1, col: 1 },
            "[build 2/3] RUN x",
        );
        let e = anyhow::Error::new(crate::engine::Error::in_step(at, step));
        assert!(refused(&e));
        assert!(!refused(&anyhow::anyhow!("{}", refused_blob())));
    }
}
