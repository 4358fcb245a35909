//! `COPY --from=X` made ahead. A stage that reaches `COPY --from=X` while X
//! still runs would wait idle; instead it writes the COPY's layer (and those
//! of the `COPY --from=X` steps right after it) against X's state after its
//! last finished step, on a thread at low CPU priority, while X's remaining
//! steps run. The gzip of a runner's `node_modules` then overlaps the
//! builder's last RUN instead of following it.
//!
//! It never changes an image: once X finished, the real step computes its
//! key as always, and on a miss keeps the layer made ahead only when
//! nothing it depended on moved ([`Ahead::still_valid`]): the consumer's
//! layers below it, the expanded instruction, and every path of X it read —
//! none of the layers X added since touches a source path, anything under
//! it, or replaces, removes or hides (opaque) one of its ancestors; with
//! `--parents` no ancestor may change at all. A source path through a
//! symlink is not made ahead. The layer is a function of the planned
//! entries alone, so a kept one is byte for byte the layer the step would
//! write. `CAIRN_NO_SPECULATION=1` turns this off.

use super::ctx::BuildCtx;
use super::fs::{SourceFs, Touch};
use super::schedule::{MadeAhead as Ahead, Seen, Touches};
use super::stage_run::{view_of, StageResult, StageRun, StepAt};
use super::state::ImageState;
use crate::frontend::graph::Source;
use crate::frontend::instructions::{Copy, CopySource, Instruction};
use crate::frontend::Scope;
use crate::image::Layer;
use crate::report::Event;
use cairn_layers::Digest;

/// Whether making layers ahead is on (`CAIRN_NO_SPECULATION=1`: off).
pub fn enabled() -> bool {
    std::env::var_os(crate::env::CAIRN_NO_SPECULATION).is_none_or(|v| v != "1")
}

/// How a COPY step writes its layer against a stage's state
/// ([`super::step::copy::write_ahead`], passed in: the step files call
/// this module): the layer and the fingerprint of what it planned.
pub type WriteAhead = dyn Fn(&mut StageRun, &Scope, StepAt, &Copy, &StageResult, &str) -> Option<(Layer, String)>
    + Sync;

/// Whether a COPY step misses the cache once its `--from` stage finished
/// as the given result ([`super::step::copy::misses_ahead`]; records only,
/// no blob fetched).
pub type MissesAhead = dyn Fn(&StageRun, &Scope, StepAt, &Copy, &StageResult, &str) -> bool + Sync;

/// One `COPY --from=X` step of the chain made ahead.
struct Planned {
    k: usize,
    copy: Copy,
    text: String,
}

/// Before step `k` (a COPY) reads its `--from` stage: while that stage
/// runs, make this step's layer and those of the `COPY --from` of the same
/// stage right after it ahead; returns once the stage finished or failed.
pub fn wait_ahead(
    run: &StageRun,
    scope: &Scope,
    k: usize,
    write: &WriteAhead,
    misses: &MissesAhead,
) {
    if !enabled() {
        return;
    }
    let Some(Source::Stage(x)) = run.stage.sources.get(&k).and_then(|v| v.first()) else {
        return;
    };
    let x = *x;
    if !matches!(run.done.peek(x), Seen::Running(..)) {
        return;
    }
    let chain = chain(run, scope, k, x);
    if chain.is_empty() {
        return;
    }
    let made = std::thread::scope(|s| {
        let mut seen = 0;
        let mut worker: Option<std::thread::ScopedJoinHandle<'_, Vec<Ahead>>> = None;
        let mut made = Vec::new();
        while let Seen::Running(g, state) = run.done.wait_past(x, seen) {
            seen = g;
            if worker.as_ref().is_some_and(|w| !w.is_finished()) {
                continue;
            }
            if let Some(w) = worker.take() {
                made = w.join().unwrap_or_default();
                // A chain made ahead waits for X; one that failed at its
                // first step (a source X has not made yet) tries again.
                if !made.is_empty() {
                    break;
                }
            }
            if let Some(state) = state {
                let (chain, scope) = (&chain, &*scope);
                worker = Some(s.spawn(move || make(run, scope, chain, x, *state, (write, misses))));
            }
        }
        match worker {
            Some(w) => w.join().unwrap_or_default(),
            None => made,
        }
    });
    let mut ahead = run
        .done
        .table
        .ahead
        .lock()
        .unwrap_or_else(|p| p.into_inner());
    for a in made {
        ahead.insert((run.stage.index, a.k), a);
    }
}

/// The `COPY --from=x` steps from `k` on, expanded with `scope` (a COPY
/// changes no scope), up to the first other instruction.
fn chain(run: &StageRun, scope: &Scope, k: usize, x: usize) -> Vec<Planned> {
    let mut out = Vec::new();
    for (j, step) in run.stage.steps.iter().enumerate().skip(k) {
        let reads_x = matches!(
            run.stage.sources.get(&j).and_then(|v| v.first()),
            Some(Source::Stage(i)) if *i == x
        );
        let Ok(Instruction::Copy(c)) = step.instruction.expand(scope) else {
            break;
        };
        let heredoc = c
            .sources
            .iter()
            .any(|s| matches!(s, CopySource::Heredoc(_)));
        if !reads_x || c.from.is_none() || heredoc {
            break;
        }
        out.push(Planned {
            k: j,
            copy: c,
            text: step.original.clone(),
        });
    }
    out
}

/// The chain's layers against `state` of stage `x`, niced: stops at the
/// first step that cannot be made (a source X has not made yet).
///
/// With `--cache-from`, writing ahead reads the blobs below the step and
/// those of X, which a step that hits never needs (#16: lazy). The chain
/// is then made only when its first step is known to miss: X works on the
/// step that fixes its final filesystem key, and that key misses the
/// records (local and imported). Every step of the chain is keyed on that
/// same key, so one lookup answers for the chain.
fn make(
    run: &StageRun,
    scope: &Scope,
    chain: &[Planned],
    x: usize,
    state: ImageState,
    (write, misses): (&WriteAhead, &MissesAhead),
) -> Vec<Ahead> {
    // The thread and the gzip workers it spawns yield the CPU to the RUN
    // steps; losing the priority drop costs only speed.
    let _ = rustix::process::setpriority_process(Some(rustix::thread::gettid()), 10);
    let ctx = run.ctx;
    let read: Vec<Digest> = state
        .image
        .layers
        .iter()
        .map(|l| l.digest.clone())
        .collect();
    let source = StageResult {
        image: state,
        scope: scope.clone(),
    };
    let x_name = ctx
        .plan
        .stage(x)
        .and_then(|s| s.name.clone())
        .unwrap_or_else(|| x.to_string());
    let mut here = StageRun {
        ctx,
        stage: run.stage,
        name: run.name.clone(),
        image: run.image.clone(),
        done: run.done,
        cmd_set: false,
    };
    if !ctx.req.cache_from.is_empty() {
        let Some(first) = chain.first() else {
            return Vec::new();
        };
        let Some(key) = run.done.final_key(x) else {
            return Vec::new();
        };
        let mut finished = source.clone();
        finished.image.fs_key = key;
        let at = StepAt {
            k: first.k,
            index: first.k + 1,
            id: 0,
            text: &first.text,
        };
        if !misses(&here, scope, at, &first.copy, &finished, &x_name) {
            return Vec::new();
        }
    }
    let mut out = Vec::new();
    for p in chain {
        if matches!(run.done.peek(x), Seen::Failed) {
            break;
        }
        let Some(protected) = protected_paths(ctx, &source, &p.copy) else {
            break;
        };
        let below = digests(&here.image.image.layers);
        let at = StepAt {
            k: p.k,
            index: p.k + 1,
            id: 0,
            text: &p.text,
        };
        let Some((layer, fingerprint)) = write(&mut here, scope, at, &p.copy, &source, &x_name)
        else {
            break;
        };
        here.image.image.with_layer(layer.clone(), String::new());
        out.push(Ahead {
            k: p.k,
            stage: x,
            below,
            read: read.clone(),
            protected,
            parents: p.copy.parents,
            fingerprint,
            layer,
        });
    }
    out
}

fn digests(layers: &[Layer]) -> Vec<Digest> {
    layers.iter().map(|l| l.digest.clone()).collect()
}

/// What a step is keyed on besides its cache inputs: its position, the
/// instruction as written and the transfer it plans (expanded sources,
/// destination, owner spec, mode, flags, excludes).
pub fn fingerprint(k: usize, text: &str, planned: &impl std::fmt::Debug) -> String {
    format!("{k}|{text}|{planned:?}")
}

/// The paths of `source` the COPY reads (clean, relative): each source
/// path, or the directory of a glob; `None` when one goes through a
/// symlink in `source` (what it reads could then move unseen).
fn protected_paths(ctx: &BuildCtx, source: &StageResult, c: &Copy) -> Option<Vec<String>> {
    let view = view_of(ctx, &source.image.image.layers).ok()?;
    let mut out = Vec::new();
    for s in &c.sources {
        let CopySource::Path(p) = s else { return None };
        let clean = super::fs::clean(p);
        let mut prefix: Vec<&str> = Vec::new();
        for part in clean.split('/').filter(|c| !c.is_empty()) {
            if part.contains(['*', '?', '[', '\\']) {
                break;
            }
            prefix.push(part);
            let so_far = prefix.join("/");
            if let Ok(Some(e)) = view.lstat(&so_far) {
                if matches!(e.kind, cairn_layers::EntryKind::Symlink { .. }) {
                    return None;
                }
            }
        }
        out.push(prefix.join("/"));
    }
    Some(out)
}

/// The path and change of a layer member named `name` of `kind`
/// (whiteouts turned into the change they make).
pub fn touch_of(name: &str, is_dir: bool) -> (String, Touch) {
    let clean = super::fs::clean(name);
    let (dir, base) = match clean.rsplit_once('/') {
        Some((d, b)) => (d.to_owned(), b),
        None => (String::new(), clean.as_str()),
    };
    if base == cairn_layers::whiteout::OPAQUE {
        return (dir, Touch::Opaque);
    }
    if let Some(gone) = base.strip_prefix(cairn_layers::whiteout::PREFIX) {
        let path = if dir.is_empty() {
            gone.to_owned()
        } else {
            format!("{dir}/{gone}")
        };
        return (path, Touch::Removed);
    }
    let t = if is_dir { Touch::Dir } else { Touch::Other };
    (clean, t)
}

/// Whether a later layer changing `path` by `touch` changes what a COPY of
/// `protected` reads: anything at or under a protected path does; at an
/// ancestor, everything but a plain directory does (and that too with
/// `--parents`, which copies the ancestors' metadata).
pub fn invalidates(protected: &[String], parents: bool, path: &str, touch: Touch) -> bool {
    let under = |p: &str, root: &str| {
        root.is_empty() || p == root || p.strip_prefix(root).is_some_and(|r| r.starts_with('/'))
    };
    protected.iter().any(|q| {
        if under(path, q) {
            return true;
        }
        under(q, path) && (parents || touch != Touch::Dir)
    })
}

/// Whether layer `a` is the one the step would write now.
fn still_valid(a: &Ahead, run: &StageRun, fingerprint: &str) -> Result<(), String> {
    if a.fingerprint != fingerprint {
        return Err("the step changed".into());
    }
    if a.below != digests(&run.image.image.layers) {
        return Err("the layers below it changed".into());
    }
    let Some(x) = run.done.get(&a.stage) else {
        return Err("the stage failed".into());
    };
    let now = &x.image.image.layers;
    if now.len() < a.read.len() || digests(&now[..a.read.len()]) != a.read {
        return Err("the stage's layers changed".into());
    }
    for l in &now[a.read.len()..] {
        let members = touches(run, l).map_err(|e| format!("reading a layer: {e}"))?;
        if let Some(p) = members
            .iter()
            .find(|(p, t)| invalidates(&a.protected, a.parents, p, *t))
        {
            return Err(format!("a later step of the stage changed /{}", p.0));
        }
    }
    Ok(())
}

/// [`members`] of layer `l`, read once per build.
fn touches(run: &StageRun, l: &Layer) -> Result<std::sync::Arc<Touches>, String> {
    let memo = || {
        run.done
            .table
            .touches
            .lock()
            .unwrap_or_else(|p| p.into_inner())
    };
    if let Some(t) = memo().get(&l.digest) {
        return Ok(t.clone());
    }
    let t = std::sync::Arc::new(members(run.ctx, l)?);
    memo().insert(l.digest.clone(), t.clone());
    Ok(t)
}

/// Every member of layer `l` as the change it makes: from its blob, or
/// from its directory when it is a snapshot (no blob).
fn members(ctx: &BuildCtx, l: &Layer) -> Result<Touches, String> {
    let dir = ctx.layer_dirs.path(l);
    if !ctx.store.contains(&l.digest) && dir.is_dir() {
        return dir_members(&dir).map_err(|e| e.to_string());
    }
    super::cache_import::materialize(ctx, std::slice::from_ref(l)).map_err(|e| e.to_string())?;
    let blob = std::fs::File::open(ctx.store.path(&l.digest)).map_err(|e| e.to_string())?;
    let mut out = Vec::new();
    cairn_layers::tar_read::for_each_member(std::io::BufReader::new(blob), |m, _| {
        let is_dir = matches!(m.kind, cairn_layers::tar_read::MemberKind::Dir);
        out.push(touch_of(&m.path, is_dir));
        Ok::<(), std::convert::Infallible>(())
    })
    .map_err(|e| match e {
        cairn_layers::tar_read::WalkError::Read(e) => e.to_string(),
        cairn_layers::tar_read::WalkError::Visit(never) => match never {},
    })?;
    Ok(out)
}

/// The members of a layer directory in overlay lower form: a 0/0
/// character device is a whiteout, a directory with an overlay `opaque`
/// xattr hides what is below it.
fn dir_members(dir: &std::path::Path) -> std::io::Result<Vec<(String, Touch)>> {
    use std::os::unix::fs::FileTypeExt;
    let mut out = Vec::new();
    for e in walkdir::WalkDir::new(dir).min_depth(1) {
        let e = e.map_err(std::io::Error::other)?;
        let rel = e.path().strip_prefix(dir).map_err(std::io::Error::other)?;
        let path = super::fs::clean(&cairn_layers::raw_name::from_os(rel.as_os_str()));
        let t = e.file_type();
        let touch = if t.is_char_device() {
            // Only whiteouts are character devices here; any other one is
            // a change of its path all the same.
            Touch::Removed
        } else if t.is_dir() && super::fs::is_opaque(e.path()) {
            Touch::Opaque
        } else if t.is_dir() {
            Touch::Dir
        } else {
            Touch::Other
        };
        out.push((path, touch));
    }
    Ok(out)
}

/// On a miss of step `at` of `run`: the layer made ahead for it, if it is
/// still the one the step would write (the step log says so either way).
pub fn take(run: &StageRun, at: StepAt, fingerprint: &str) -> Option<Layer> {
    let ahead = run
        .done
        .table
        .ahead
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .remove(&(run.stage.index, at.k))?;
    let valid = still_valid(&ahead, run, fingerprint);
    let line = match &valid {
        Ok(()) => format!(
            "layer {} made ahead while the source stage ran",
            crate::progress::short_digest(&ahead.layer.digest.to_string())
        ),
        Err(why) => format!("layer made ahead discarded: {why}"),
    };
    run.ctx
        .reporter
        .event(Event::StepOutput { id: at.id, line });
    valid.ok().map(|()| ahead.layer)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn a_change_at_or_under_a_source_path_invalidates() {
        let q = p(&["build/node_modules"]);
        for t in [Touch::Dir, Touch::Other, Touch::Removed, Touch::Opaque] {
            assert!(invalidates(&q, false, "build/node_modules", t), "{t:?}");
            assert!(
                invalidates(&q, false, "build/node_modules/.cache/x", t),
                "{t:?}"
            );
        }
    }

    #[test]
    fn siblings_and_prefix_lookalikes_do_not() {
        let q = p(&["build/node_modules"]);
        assert!(!invalidates(
            &q,
            false,
            "build/.next/server/x.js",
            Touch::Other
        ));
        assert!(!invalidates(&q, false, "build/node_modules2", Touch::Other));
        assert!(!invalidates(&q, false, "build/node_module", Touch::Removed));
        assert!(!invalidates(&q, false, "srv", Touch::Opaque));
    }

    #[test]
    fn an_ancestor_invalidates_unless_it_stays_a_plain_directory() {
        let q = p(&["build/node_modules"]);
        assert!(!invalidates(&q, false, "build", Touch::Dir));
        assert!(!invalidates(&q, false, "", Touch::Dir));
        assert!(invalidates(&q, false, "build", Touch::Opaque));
        assert!(invalidates(&q, false, "build", Touch::Removed));
        // A directory replaced by a symlink or a file.
        assert!(invalidates(&q, false, "build", Touch::Other));
        // --parents copies the ancestors' own metadata.
        assert!(invalidates(&q, true, "build", Touch::Dir));
    }

    #[test]
    fn the_root_as_source_is_touched_by_anything() {
        assert!(invalidates(&p(&[""]), false, "tmp/x", Touch::Other));
    }

    #[test]
    fn whiteouts_name_the_path_they_remove_or_hide() {
        assert_eq!(
            touch_of("build/.wh.node_modules", false),
            ("build/node_modules".into(), Touch::Removed)
        );
        assert_eq!(
            touch_of("./build/.wh..wh..opq", false),
            ("build".into(), Touch::Opaque)
        );
        assert_eq!(
            touch_of(".wh.build", false),
            ("build".into(), Touch::Removed)
        );
        assert_eq!(touch_of("build/", true), ("build".into(), Touch::Dir));
        // Removing the copied directory's parent invalidates.
        let (path, t) = touch_of(".wh.build", false);
        assert!(invalidates(&p(&["build/node_modules"]), false, &path, t));
    }
}
