//! COPY and ADD steps: the cache key from what the step reads, and on a miss
//! the planned entries written as one layer.

use super::cache::Inputs;
use super::copy::{plan, CopySpec};
use super::fs::EntryFs;
use super::stage::{view_of, StageRun, StepOutcome};
use crate::frontend::graph::Source;
use crate::frontend::instructions::{Copy, CopySource};
use crate::frontend::Scope;
use anyhow::Context as _;
use cairn_layers::dockerignore::Matcher;
use cairn_layers::{Entry, EntryKind, MtimePolicy};
use std::path::Path;

/// Where a COPY reads from.
enum From<'a> {
    Context,
    Heredocs(EntryFs),
    Stage(&'a super::stage::StageResult, String),
    Image(Box<super::bases::BaseImage>),
}

/// Destination with WORKDIR applied; `.`/trailing `/` keep "directory" meaning.
pub fn absolute_dest(workdir: &str, dest: &str) -> String {
    let dir_syntax = dest.ends_with('/') || dest == "." || dest.ends_with("/.");
    let joined = if dest.starts_with('/') {
        dest.to_owned()
    } else {
        format!("{}/{}", workdir.trim_end_matches('/'), dest)
    };
    let clean = format!("/{}", super::fs::clean(&joined));
    if dir_syntax && clean != "/" {
        format!("{clean}/")
    } else {
        clean
    }
}

fn parse_chmod(s: &str) -> anyhow::Result<u32> {
    u32::from_str_radix(s, 8)
        .ok()
        .filter(|m| *m <= 0o7777)
        .ok_or_else(|| {
            crate::error::hint(
                anyhow::anyhow!("invalid chmod parameter: '{s}'. it should be octal string and between 0 and 07777"),
                "use an octal mode such as --chmod=755",
            )
        })
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

/// Run a COPY/ADD step.
#[allow(clippy::too_many_arguments)]
pub fn copy(
    run: &mut StageRun,
    scope: &Scope,
    k: usize,
    index: usize,
    id: usize,
    c: &Copy,
    keyword: &str,
    text: &str,
) -> anyhow::Result<()> {
    let ctx = run.ctx;
    let dest = absolute_dest(&run.workdir(), &c.dest);
    let chmod = c.chmod.as_deref().map(parse_chmod).transpose()?;
    let exclude = Matcher::from_patterns(&c.exclude).context("invalid --exclude pattern")?;
    let created_by = super::history::copy(keyword, c);

    // Sources: paths or heredocs (heredoc bodies are files named after the delimiter).
    let mut paths = Vec::new();
    let mut heredocs = Vec::new();
    for s in &c.sources {
        match s {
            CopySource::Path(p) => paths.push(p.clone()),
            CopySource::Heredoc(h) => {
                let body = if h.expand {
                    scope.expand_heredoc(&h.content)?
                } else {
                    h.content.clone()
                };
                heredocs.push(Entry::file_bytes(h.name.clone(), body.into_bytes()));
                paths.push(h.name.clone());
            }
        }
    }
    if keyword == "ADD" {
        for p in &paths {
            anyhow::ensure!(
                !(p.starts_with("http://") || p.starts_with("https://") || p.starts_with("git@")),
                "ADD from a URL or git repository is not supported by cairn yet: download it in a RUN step or COPY a local file"
            );
        }
    }
    let from = if !heredocs.is_empty() {
        From::Heredocs(EntryFs::new(heredocs))
    } else if c.from.is_none() {
        From::Context
    } else {
        match run.stage.sources.get(&k).and_then(|v| v.first()) {
            Some(Source::Stage(i)) => {
                let r = run
                    .done
                    .get(i)
                    .ok_or_else(|| anyhow::anyhow!("internal error: stage {i} is not built yet"))?;
                From::Stage(r, i.to_string())
            }
            Some(Source::Image(r)) => From::Image(Box::new(ctx.images.fetch(
                r,
                &run.stage.platform,
                &ctx.store,
                ctx.reporter,
            )?)),
            None => anyhow::bail!("internal error: no source recorded for --from"),
        }
    };

    let mut inputs = Inputs::default();
    inputs.push("parent", run.image.fs_key.to_string());
    inputs.push("instruction", text.to_owned());
    inputs.push("dest", dest.clone());
    if let Some(o) = &c.chown {
        inputs.push("chown", o.clone());
    }
    if let Some(m) = chmod {
        inputs.push("chmod", format!("{m:o}"));
    }
    let spec = CopySpec {
        sources: paths,
        dest: dest.clone(),
        owner: None,
        chmod,
        parents: c.parents,
        link: c.link,
    };
    let is_excluded = |p: &str| !exclude.is_empty() && exclude.is_excluded(p);
    let empty = EntryFs::new(Vec::new());
    match &from {
        From::Context => {
            let entries = ctx.context_entries()?;
            let fs = EntryFs::new(entries.iter().cloned());
            let planned = plan(&spec, &fs, &empty, &is_excluded)?;
            let hashes =
                super::hash_cache::HashCache::load(ctx.cache.root().join("context-hashes.json"));
            let root = ctx
                .req
                .context
                .canonicalize()
                .unwrap_or_else(|_| ctx.req.context.clone());
            for e in &planned {
                let (name, digest) = match &e.kind {
                    EntryKind::File {
                        source: cairn_layers::Source::Path(p),
                        ..
                    } => (
                        p.strip_prefix(&root).unwrap_or(p).display().to_string(),
                        hashes
                            .digest(p)
                            .with_context(|| format!("reading context file {}", p.display()))?,
                    ),
                    _ => (e.path.clone(), String::new()),
                };
                inputs.push(
                    format!("context file {name}"),
                    format!("{} {}", e.path, describe(e, &digest)),
                );
            }
            hashes.save();
        }
        From::Heredocs(fs) => {
            for e in plan(&spec, fs, &empty, &is_excluded)? {
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

    let epoch = ctx.req.epoch;
    run.cached_step(id, index, text, inputs, created_by, |run| {
        let dest_view = run.merged_view()?;
        let owner = match &c.chown {
            Some(spec) => Some(
                run.user_db()?
                    .resolve_chown(spec)
                    .with_context(|| format!("--chown={spec}"))?,
            ),
            None => None,
        };
        let spec = CopySpec { owner, ..spec };
        let entries = match &from {
            From::Context => {
                let fs = EntryFs::new(ctx.context_entries()?.iter().cloned());
                plan(&spec, &fs, &dest_view, &is_excluded)?
            }
            From::Heredocs(fs) => plan(&spec, fs, &dest_view, &is_excluded)?,
            From::Stage(r, _) => plan(
                &spec,
                &view_of(ctx, &r.image.layers)?,
                &dest_view,
                &is_excluded,
            )?,
            From::Image(b) => plan(&spec, &view_of(ctx, &b.layers)?, &dest_view, &is_excluded)?,
        };
        check_inside(&entries)?;
        let layer = super::layer_write::write(ctx, entries, MtimePolicy::Set(epoch))?;
        Ok(StepOutcome::Layer(layer))
    })
}

/// Every planned path is relative and normalized (defence in depth for the writer).
fn check_inside(entries: &[Entry]) -> anyhow::Result<()> {
    for e in entries {
        cairn_layers::entry::check_path(&e.path)
            .with_context(|| format!("planned entry {}", Path::new(&e.path).display()))?;
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
