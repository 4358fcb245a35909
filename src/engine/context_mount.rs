//! `RUN --mount=type=bind` of the main build context (no `from=`). As
//! BuildKit: the mount shows the context as `.dockerignore` filters it, and
//! the step is keyed by the content of the mounted subtree only, so editing
//! a mounted file re-runs the step and editing anything else does not.
//!
//! `source=` resolves inside the context as a COPY source does (`..`,
//! absolute paths and symlinks never leave it). The kept files of the
//! subtree are hard-linked into the step's scratch directory only when the
//! step runs; a cache hit reads their memoized digests and nothing else.

use super::ctx::BuildCtx;
use super::fs::SourceFs as _;
use super::step::error::{Error, Result};
use cairn_layers::{Digest, Entry};
use std::path::PathBuf;

/// The mounted part of the context.
pub struct ContextBind {
    /// Where [`ContextBind::entries`] are written when the step runs.
    pub dir: PathBuf,
    /// The kept entries of the subtree (paths relative to the context).
    pub entries: Vec<Entry>,
    /// The mount's source inside `dir`: `source=` with symlinks resolved.
    pub source: String,
    /// Digest of the subtree's paths, modes, file contents and link targets.
    pub digest: Digest,
}

/// The subtree of the filtered context at `source`, to be written to `dir`.
pub fn plan(ctx: &BuildCtx, source: &str, dir: PathBuf) -> Result<ContextBind> {
    let fs = ctx.context_fs()?;
    let resolved = super::fs::resolve(fs, source, true).map_err(|reason| Error::BindSource {
        path: source.to_owned(),
        reason,
    })?;
    if fs.lstat(&resolved)?.is_none() {
        return Err(Error::BindNotInContext {
            path: source.to_owned(),
            context: ctx.req.context.clone(),
        });
    }
    let entries: Vec<Entry> = ctx
        .context_entries()?
        .iter()
        .filter(|e| in_subtree(&e.path, &resolved))
        .cloned()
        .collect();
    let hashes = ctx.context_hashes();
    let described = entries
        .iter()
        .map(|e| {
            let rel = e.path[resolved.len()..].trim_start_matches('/');
            Ok((
                rel.to_owned(),
                super::named_context::describe_entry(e, hashes)?,
            ))
        })
        .collect::<std::result::Result<Vec<_>, crate::engine::Error>>()?;
    let digest = Digest::of(serde_json::to_string(&described)?.as_bytes());
    Ok(ContextBind {
        dir,
        entries,
        source: resolved,
        digest,
    })
}

/// `path` is `root` or below it (`""` is the whole context).
fn in_subtree(path: &str, root: &str) -> bool {
    root.is_empty()
        || path
            .strip_prefix(root)
            .is_some_and(|rest| rest.is_empty() || rest.starts_with('/'))
}

#[cfg(test)]
mod tests {
    use super::in_subtree;

    #[test]
    fn a_subtree_is_its_root_and_what_is_below_it() {
        assert!(in_subtree("src", "src"));
        assert!(in_subtree("src/a.js", "src"));
        assert!(!in_subtree("srcx/a.js", "src"));
        assert!(!in_subtree("lib/a.js", "src"));
        assert!(in_subtree("lib/a.js", ""));
    }
}
