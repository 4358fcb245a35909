//! COPY, and what ADD shares with it: the cache key from what the step
//! reads, and on a miss the planned entries written as one layer. ADD's
//! entry point is [`super::add`]; its archives and URLs are
//! [`crate::engine::add`].

use super::error::{Error, Result};
use crate::engine::add::{self, Download};
use crate::engine::cache::Inputs;
use crate::engine::chmod::Chmod;
use crate::engine::copy::{plan, plan_with, CopyError, CopySpec};
use crate::engine::ctx::BuildCtx;
use crate::engine::fs::EntryFs;
use crate::engine::fs::MergedView;
use crate::engine::layer_reuse::{make_or_reuse, Make};
use crate::engine::layer_write::Index;
use crate::engine::stage_run::{view_of, StageRun, StepAt, StepOutcome};
use crate::frontend::graph::Source;
use crate::frontend::instructions::{Copy, CopySource};
use crate::frontend::Scope;
use cairn_layers::dockerignore::Matcher;
use cairn_layers::{Entry, EntryKind, MtimePolicy};
use std::collections::BTreeMap;
use std::path::Path;

/// Where a COPY reads from.
enum From<'a> {
    Context,
    Heredocs(EntryFs),
    Stage(&'a crate::engine::stage_run::StageResult, String),
    Image(Box<crate::engine::bases::BaseImage>),
    /// `--build-context NAME=DIR`.
    Named(&'a crate::engine::named_context::LocalContext, String),
}

/// Destination with WORKDIR applied; `.`/trailing `/` keep "directory" meaning.
pub fn absolute_dest(workdir: &str, dest: &str) -> String {
    let dir_syntax = dest.ends_with('/') || dest == "." || dest.ends_with("/.");
    let joined = if dest.starts_with('/') {
        dest.to_owned()
    } else {
        format!("{}/{}", workdir.trim_end_matches('/'), dest)
    };
    let clean = format!("/{}", crate::engine::fs::clean(&joined));
    if dir_syntax && clean != "/" {
        format!("{clean}/")
    } else {
        clean
    }
}

fn parse_chmod(s: &str) -> Result<Chmod> {
    Chmod::parse(s).map_err(Error::Chmod)
}

fn describe(e: &Entry, digest: &str) -> String {
    match &e.kind {
        EntryKind::File { .. } => format!("file {:o} {digest}", e.mode),
        EntryKind::Dir => format!("dir {:o}", e.mode),
        EntryKind::Symlink { target } => format!("symlink -> {target}"),
        EntryKind::Hardlink { target } => format!("hardlink -> {target}"),
        other => format!("{other:?} {:o}", e.mode),
    }
}

/// COPY or ADD: ADD is COPY plus URL sources and archive unpacking.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Kind {
    /// `COPY`.
    Copy,
    /// `ADD`.
    Add,
}

impl Kind {
    fn keyword(self) -> &'static str {
        match self {
            Kind::Copy => "COPY",
            Kind::Add => "ADD",
        }
    }
}

/// Run a COPY step.
pub fn copy(run: &mut StageRun, scope: &Scope, at: StepAt, c: &Copy) -> Result<()> {
    transfer(run, scope, at, c, Kind::Copy)
}

/// A COPY or an ADD step: its key from what it reads, and on a miss the
/// planned entries written as one layer.
pub fn transfer(run: &mut StageRun, scope: &Scope, at: StepAt, c: &Copy, kind: Kind) -> Result<()> {
    let ctx = run.ctx;
    if kind == Kind::Copy {
        // A `--from` stage still running: its layer is made ahead meanwhile.
        let write =
            |run: &mut StageRun, scope: &Scope, at: StepAt, c: &Copy, source: &_, name: &str| {
                write_ahead(run, scope, at, c, source, name).ok()
            };
        let lookup =
            |run: &StageRun, scope: &Scope, at: StepAt, c: &Copy, source: &_, name: &str| {
                misses_ahead(run, scope, at, c, source, name).unwrap_or(false)
            };
        crate::engine::speculate::wait_ahead(run, scope, at.k, &write, &lookup);
    }
    let created_by = crate::engine::history::copy(kind.keyword(), c);
    // Downloads and extracted archive members live here until the layer is written.
    let scratch_dir = match kind {
        Kind::Add => Some(
            tempfile::Builder::new()
                .prefix("add-")
                .tempdir_in(ctx.cache.layout().dir(crate::cache::Bucket::Tmp))
                .map_err(Error::Scratch)?,
        ),
        Kind::Copy => None,
    };
    let scratch = scratch_dir.as_ref().map_or(Path::new(""), |d| d.path());
    let mut t = prepare(run, scope, at, c, kind, None, scratch)?;
    let inputs = t.inputs(run, at)?;
    let epoch = ctx.req.epoch;
    let planned = t.fingerprint(at);
    run.cached_step(
        at,
        inputs,
        crate::engine::stage_run::Chain::ByContent,
        created_by,
        |run| {
            if kind == Kind::Copy {
                if let Some(l) = crate::engine::speculate::take(run, at, &planned) {
                    return Ok(StepOutcome::Layer(l));
                }
            }
            t.write(run, at, epoch)
        },
    )?;
    Ok(())
}

/// The transfer a COPY/ADD step plans, before its key; `from` overrides
/// where it reads (a stage's state made ahead).
fn prepare<'s, 'c>(
    run: &StageRun<'c, '_>,
    scope: &Scope,
    at: StepAt,
    c: &'s Copy,
    kind: Kind,
    from: Option<From<'c>>,
    scratch: &'s Path,
) -> Result<Transfer<'s, 'c>> {
    let dest = absolute_dest(&run.workdir(), &c.dest);
    let chmod = c.chmod.as_deref().map(parse_chmod).transpose()?;
    let exclude = Matcher::from_patterns(&c.exclude).map_err(Error::Exclude)?;
    let Sources {
        paths,
        urls,
        heredocs,
    } = sources(c, scope, kind)?;
    if paths.len() + urls.len() > 1 && !(dest.ends_with('/')) {
        return Err(CopyError::DestNotDir.into());
    }
    let checksum = checksum(c, &urls)?;
    let from = match from {
        Some(f) => f,
        None => from_of(run, at.k, c, heredocs)?,
    };
    Ok(Transfer {
        c,
        kind,
        spec: CopySpec {
            sources: paths,
            dest,
            owner: None,
            chmod,
            parents: c.parents,
            link: c.link,
        },
        from,
        exclude,
        urls,
        checksum,
        downloads: Vec::new(),
        scratch,
    })
}

/// A `COPY --from` step's layer written against `source`, the state of
/// stage `name` before it finished ([`crate::engine::speculate`]), with
/// the fingerprint of what it planned.
pub fn write_ahead(
    run: &mut StageRun,
    scope: &Scope,
    at: StepAt,
    c: &Copy,
    source: &crate::engine::stage_run::StageResult,
    name: &str,
) -> Result<(crate::image::Layer, String)> {
    let from = From::Stage(source, name.to_owned());
    let mut t = prepare(run, scope, at, c, Kind::Copy, Some(from), Path::new(""))?;
    let planned = t.fingerprint(at);
    match t.write(run, at, run.ctx.req.epoch)? {
        StepOutcome::Layer(l) => Ok((l, planned)),
        StepOutcome::Empty => Err(Error::NoSource { what: "--from" }),
    }
}

/// Whether a `COPY --from` step misses the cache (local and imported
/// records; no blob is fetched) once its stage finished as `source`, whose
/// filesystem key is then final ([`crate::engine::speculate`]).
pub fn misses_ahead(
    run: &StageRun,
    scope: &Scope,
    at: StepAt,
    c: &Copy,
    source: &crate::engine::stage_run::StageResult,
    name: &str,
) -> Result<bool> {
    let from = From::Stage(source, name.to_owned());
    let mut t = prepare(run, scope, at, c, Kind::Copy, Some(from), Path::new(""))?;
    let inputs = t.inputs(run, at)?;
    Ok(matches!(
        run.lookup(at.index, &inputs)?,
        crate::engine::cache::Lookup::Miss(_)
    ))
}

/// A step's sources, sorted: paths (heredocs are files named after their
/// delimiter), URLs (ADD), and the heredoc bodies.
struct Sources {
    paths: Vec<String>,
    urls: Vec<String>,
    heredocs: Vec<Entry>,
}

fn sources(c: &Copy, scope: &Scope, kind: Kind) -> Result<Sources> {
    let keyword = kind.keyword();
    let mut out = Sources {
        paths: Vec::new(),
        urls: Vec::new(),
        heredocs: Vec::new(),
    };
    for s in &c.sources {
        match s {
            CopySource::Path(p) if add::is_git(p) => {
                return Err(Error::GitSource {
                    keyword,
                    url: add::display_url(p),
                })
            }
            CopySource::Path(p) if add::is_url(p) => {
                if kind != Kind::Add {
                    return Err(Error::UrlInCopy);
                }
                out.urls.push(p.clone());
            }
            CopySource::Path(p) => out.paths.push(p.clone()),
            CopySource::Heredoc(h) => {
                let body = if h.expand {
                    scope.expand_heredoc(&h.content)?
                } else {
                    h.content.clone()
                };
                out.heredocs
                    .push(Entry::file_bytes(h.name.clone(), body.into_bytes()));
                out.paths.push(h.name.clone());
            }
        }
    }
    Ok(out)
}

/// `--checksum`: only for exactly one URL source.
fn checksum(c: &Copy, urls: &[String]) -> Result<Option<cairn_layers::Digest>> {
    Ok(match &c.checksum {
        Some(_) if urls.is_empty() => return Err(Error::ChecksumWithoutUrl),
        Some(_) if urls.len() > 1 => return Err(Error::ChecksumUrls { count: urls.len() }),
        Some(s) => Some(add::parse_checksum(s)?),
        None => None,
    })
}

/// Where the step's paths are read from.
fn from_of<'c>(
    run: &StageRun<'c, '_>,
    k: usize,
    c: &Copy,
    heredocs: Vec<Entry>,
) -> Result<From<'c>> {
    let ctx = run.ctx;
    if !heredocs.is_empty() {
        return Ok(From::Heredocs(EntryFs::new(heredocs)));
    }
    if c.from.is_none() {
        return Ok(From::Context);
    }
    Ok(match run.stage.sources.get(&k).and_then(|v| v.first()) {
        Some(Source::Stage(i)) => {
            let r = run.done.get(i).ok_or(Error::StageNotBuilt { stage: *i })?;
            // Named as written in the Dockerfile, for miss explanations.
            let name = ctx
                .plan
                .stage(*i)
                .and_then(|s| s.name.clone())
                .unwrap_or_else(|| i.to_string());
            From::Stage(r, name)
        }
        Some(Source::Image(r)) => From::Image(Box::new(ctx.images.fetch(
            r,
            &run.stage.platform,
            &ctx.store,
            ctx.reporter,
        )?)),
        Some(Source::Local(name)) => {
            let local = crate::engine::ctx::named_dir(ctx, name)?;
            From::Named(local, name.clone())
        }
        None => return Err(Error::NoSource { what: "--from" }),
    })
}

/// A COPY/ADD step once its sources are known: what keys it, then what it writes.
struct Transfer<'s, 'c> {
    c: &'s Copy,
    kind: Kind,
    /// The paths to plan (owner resolved only on a miss).
    spec: CopySpec,
    from: From<'c>,
    exclude: Matcher,
    urls: Vec<String>,
    checksum: Option<cairn_layers::Digest>,
    /// URLs fetched so far.
    downloads: Vec<Download>,
    /// ADD's scratch directory (empty for COPY).
    scratch: &'s Path,
}

impl Transfer<'_, '_> {
    /// What the planned transfer is, for a layer made ahead to match.
    fn fingerprint(&self, at: StepAt) -> String {
        crate::engine::speculate::fingerprint(at.k, at.text, &(&self.spec, &self.c.exclude))
    }

    /// The step's cache inputs (a URL without a checksum is fetched here).
    fn inputs(&mut self, run: &StageRun, at: StepAt) -> Result<Inputs> {
        let c = self.c;
        let mut inputs = Inputs::default();
        inputs.push("parent", run.image.fs_key.to_string());
        inputs.push("instruction", at.text.to_owned());
        inputs.push("dest", self.spec.dest.clone());
        if let Some(o) = &c.chown {
            inputs.push("chown", o.clone());
        }
        if let Some(m) = &c.chmod {
            inputs.push("chmod", m.clone());
        }
        if self.kind == Kind::Add {
            inputs.push("unpack", format!("{:?}", c.unpack));
        }
        self.key_urls(&mut inputs)?;
        self.key_sources(run, &mut inputs)?;
        Ok(inputs)
    }

    fn is_excluded(&self, p: &str) -> bool {
        !self.exclude.is_empty() && self.exclude.is_excluded(p)
    }

    /// Without a checksum a URL's content is part of the key, so it is
    /// fetched now; with one, only on a miss.
    fn key_urls(&mut self, inputs: &mut Inputs) -> Result<()> {
        for u in &self.urls {
            let value = match &self.checksum {
                Some(d) => d.to_string(),
                None => {
                    let d = add::download(u, self.scratch, None)?;
                    let v = d.digest.to_string();
                    self.downloads.push(d);
                    v
                }
            };
            inputs.push(format!("url {}", add::display_url(u)), value);
        }
        Ok(())
    }

    /// What the paths read: each context file's content, each heredoc's
    /// body, a stage's or an image's filesystem key.
    fn key_sources(&self, run: &StageRun, inputs: &mut Inputs) -> Result<()> {
        let ctx = run.ctx;
        let spec = &self.spec;
        let is_excluded = |p: &str| self.is_excluded(p);
        let empty = EntryFs::new(Vec::new());
        match &self.from {
            From::Context | From::Named(..) if spec.sources.is_empty() => {}
            From::Context | From::Named(..) => {
                let (fs, context, dockerfile, label) = match &self.from {
                    From::Named(l, name) => (
                        l.fs()?,
                        &l.root,
                        l.root.join("Dockerfile"),
                        format!("build context {name} file"),
                    ),
                    _ => (
                        ctx.context_fs()?,
                        &ctx.req.context,
                        ctx.req.dockerfile.clone(),
                        "context file".to_owned(),
                    ),
                };
                let planned = plan(spec, fs, &empty, &is_excluded)
                    .map_err(|e| explain_missing(context, &dockerfile, e))?;
                let hashes = ctx.context_hashes();
                let root = context.canonicalize().unwrap_or_else(|_| context.clone());
                for e in &planned {
                    let (name, digest) = match &e.kind {
                        EntryKind::File {
                            source: cairn_layers::Source::Path(p),
                            ..
                        } => (
                            // The exact name bytes (`display` would blur names that are not UTF-8).
                            cairn_layers::raw_name::from_os(
                                p.strip_prefix(&root).unwrap_or(p).as_os_str(),
                            )
                            .into_owned(),
                            hashes.digest(p).map_err(|source| Error::ReadContextFile {
                                path: p.clone(),
                                source,
                            })?,
                        ),
                        _ => (e.path.clone(), String::new()),
                    };
                    inputs.push(
                        format!("{label} {name}"),
                        format!("{} {}", e.path, describe(e, &digest)),
                    );
                }
            }
            From::Heredocs(fs) => {
                for e in plan(spec, fs, &empty, &is_excluded)? {
                    let body = match &e.kind {
                        EntryKind::File {
                            source: cairn_layers::Source::Bytes(b),
                            ..
                        } => cairn_layers::Digest::of(b).to_string(),
                        _ => String::new(),
                    };
                    inputs.push(format!("heredoc {}", e.path), body);
                }
            }
            From::Stage(r, i) => inputs.push(format!("stage {i}"), r.image.fs_key.to_string()),
            From::Image(b) => inputs.push(format!("image {}", b.reference), b.digest.to_string()),
        }
        Ok(())
    }

    /// On a miss: plan the paths and the downloads onto the stage's
    /// filesystem and write them as one layer.
    fn write(&mut self, run: &mut StageRun, at: StepAt, epoch: u64) -> Result<StepOutcome> {
        let ctx = run.ctx;
        let dest_view = run.merged_view()?;
        let owner = match &self.c.chown {
            Some(spec) => Some(
                crate::engine::stage_run::user_db(&dest_view)?
                    .resolve_chown(spec)
                    .map_err(|source| Error::Chown {
                        spec: spec.clone(),
                        source,
                    })?,
            ),
            None => None,
        };
        let spec = CopySpec {
            owner,
            ..self.spec.clone()
        };
        let mut merged: BTreeMap<String, Entry> = BTreeMap::new();
        if !spec.sources.is_empty() {
            let planned = self.plan_paths(ctx, &spec, &dest_view)?;
            merged.extend(planned.into_iter().map(|e| (e.path.clone(), e)));
        }
        if let Some(sum) = &self.checksum {
            for u in &self.urls {
                self.downloads
                    .push(add::download(u, self.scratch, Some(sum))?);
            }
        }
        // URLs are unpacked only on request (`--unpack=true`), as BuildKit.
        let unpack_url = |e: &Entry| {
            if self.c.unpack != Some(true) {
                return Ok(None);
            }
            unpack_archive(e, self.scratch)
        };
        let is_excluded = |p: &str| self.is_excluded(p);
        for d in &self.downloads {
            let fs = EntryFs::new([add::download_entry(d)?]);
            let spec = CopySpec {
                sources: vec![d.name.clone()],
                ..spec.clone()
            };
            let planned = plan_with(&spec, &fs, &dest_view, &is_excluded, &unpack_url)?;
            merged.extend(planned.into_iter().map(|e| (e.path.clone(), e)));
        }
        let entries: Vec<Entry> = merged.into_values().collect();
        check_inside(&entries)?;
        let slot = run.slot(at.index);
        let step = crate::engine::layer_reuse::Step {
            id: at.id,
            slot: &slot,
            instruction: at.text,
            stage: run.stage.index,
        };
        // ADD's downloads and extracted archives live in a scratch directory
        // that is gone after this step.
        let keep = match self.kind {
            Kind::Add => Index::Drop,
            Kind::Copy => Index::Keep,
        };
        // In a stage no output exports, a layer a later RUN stacks as a
        // lower is made as its directory straight away: no blob, no unpack.
        let make = if !entries.is_empty() && crate::engine::snapshot::chosen(ctx, run.stage, at.k) {
            Make::Snapshot
        } else {
            Make::Blob
        };
        let layer = make_or_reuse(ctx, &step, entries, MtimePolicy::Set(epoch), keep, make)?;
        Ok(StepOutcome::Layer(layer))
    }

    /// The paths planned onto `dest_view`, ADD's local archives unpacked.
    fn plan_paths(
        &self,
        ctx: &BuildCtx,
        spec: &CopySpec,
        dest_view: &MergedView,
    ) -> Result<Vec<Entry>> {
        let unpack_local = |e: &Entry| {
            if self.kind != Kind::Add || self.c.unpack == Some(false) {
                return Ok(None);
            }
            unpack_archive(e, self.scratch)
        };
        let is_excluded = |p: &str| self.is_excluded(p);
        Ok(match &self.from {
            From::Context => plan_with(
                spec,
                ctx.context_fs()?,
                dest_view,
                &is_excluded,
                &unpack_local,
            )?,
            From::Heredocs(fs) => plan(spec, fs, dest_view, &is_excluded)?,
            From::Named(l, _) => plan_with(spec, l.fs()?, dest_view, &is_excluded, &unpack_local)?,
            From::Stage(r, _) => plan_with(
                spec,
                &view_of(ctx, &r.image.image.layers)?,
                dest_view,
                &is_excluded,
                &unpack_local,
            )?,
            From::Image(b) => plan_with(
                spec,
                &view_of(ctx, &b.layers)?,
                dest_view,
                &is_excluded,
                &unpack_local,
            )?,
        })
    }
}

/// ADD's archive hook: extract a file source whose content is a tar.
fn unpack_archive(e: &Entry, scratch: &Path) -> Result<Option<Vec<Entry>>, CopyError> {
    let EntryKind::File {
        source: cairn_layers::Source::Path(host),
        ..
    } = &e.kind
    else {
        return Ok(None);
    };
    let io = |source| CopyError::Io {
        path: e.path.clone(),
        source,
    };
    match add::sniff(host).map_err(io)? {
        None => Ok(None),
        Some(_) => {
            let dir = tempfile::Builder::new()
                .prefix("archive-")
                .tempdir_in(scratch)
                .map_err(io)?
                .keep();
            add::archive_entries(host, &dir, &e.path).map(Some)
        }
    }
}

/// A missing source that exists on disk was excluded by `.dockerignore`: say so.
fn explain_missing(context: &Path, dockerfile: &Path, e: CopyError) -> Error {
    let src = match &e {
        CopyError::NotFound(s) | CopyError::NoMatch(s) => crate::engine::fs::clean(s),
        _ => return e.into(),
    };
    let host = context.join(&src);
    let Ok(md) = std::fs::symlink_metadata(&host) else {
        return e.into();
    };
    if src.is_empty() {
        return e.into();
    }
    let Ok(bc) = cairn_layers::context::BuildContext::open(context, Some(dockerfile)) else {
        return e.into();
    };
    let ex = bc.explain(&src);
    if !ex.excluded {
        if !md.file_type().is_symlink() {
            return e.into();
        }
        let target = std::fs::read_link(&host)
            .map(|t| t.display().to_string())
            .unwrap_or_default();
        return Error::SymlinkOutside { src, target };
    }
    let why = ex
        .decided_by
        .and_then(|i| bc.matcher().patterns().get(i))
        .map(|p| format!(" (pattern `{}`)", p.raw()))
        .unwrap_or_default();
    Error::Excluded { src, pattern: why }
}

/// Every planned path is relative and normalized (defence in depth for the writer).
fn check_inside(entries: &[Entry]) -> Result<()> {
    for e in entries {
        cairn_layers::entry::check_path(&e.path).map_err(|source| Error::PlannedEntry {
            path: e.path.clone(),
            source,
        })?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::absolute_dest;

    #[test]
    fn dest_rules() {
        assert_eq!(absolute_dest("/app", "."), "/app/");
        assert_eq!(absolute_dest("/app", "./"), "/app/");
        assert_eq!(absolute_dest("/app", "x"), "/app/x");
        assert_eq!(absolute_dest("/", "/srv/app/"), "/srv/app/");
        assert_eq!(absolute_dest("/build", "../x/"), "/x/");
        assert_eq!(absolute_dest("/", "."), "/");
    }
}
