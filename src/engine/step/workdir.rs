//! WORKDIR: sets the config's working directory and creates it in the
//! rootfs (owned by the current USER, as BuildKit does) when missing.

use crate::engine::cache::Inputs;
use crate::engine::fs::{components, resolve, SourceFs};
use crate::engine::layer_write::Index;
use crate::engine::stage_run::{StageRun, StepAt, StepOutcome};
use cairn_layers::{Entry, MtimePolicy};

/// Join a WORKDIR with the previous one (`system.NormalizeWorkdir`).
pub fn normalize(prev: &str, path: &str) -> String {
    let joined = if path.starts_with('/') {
        path.to_owned()
    } else {
        format!("{}/{}", prev.trim_end_matches('/'), path)
    };
    format!("/{}", crate::engine::fs::clean(&joined))
}

/// Run a WORKDIR step.
pub fn workdir(run: &mut StageRun, at: StepAt, path: &str) -> super::error::Result<()> {
    let wd = normalize(&run.workdir(), path);
    run.image.image.config.run_config_mut().working_dir = Some(wd.clone());
    let created_by = format!("WORKDIR {wd}");
    if wd == "/" {
        run.image.image.with_history(created_by);
        return Ok(());
    }
    let user = run.user();
    let mut inputs = Inputs::default();
    inputs.push("parent", run.image.fs_key.to_string());
    inputs.push("instruction", created_by.clone());
    inputs.push("user", user.clone());
    let epoch = run.ctx.req.epoch;
    run.cached_step(
        at,
        inputs,
        crate::engine::stage_run::Chain::ByInputs,
        created_by,
        |run| make(run, &wd, &user, epoch),
    )?;
    Ok(())
}

/// On a miss: the missing directories of `wd`, owned by `user`, as one layer.
fn make(run: &mut StageRun, wd: &str, user: &str, epoch: u64) -> super::error::Result<StepOutcome> {
    let view = run.merged_view()?;
    let rel = crate::engine::fs::clean(wd);
    let resolved = resolve(&view, &rel, true)?;
    if matches!(view.lstat(&resolved)?, Some(e) if e.is_dir()) {
        return Ok(StepOutcome::Empty);
    }
    let owner = if user.is_empty() {
        None
    } else {
        Some(
            crate::engine::stage_run::user_db(&view)?
                .resolve_user(user)
                .map_err(super::error::Error::User)?,
        )
    };
    let mut entries = Vec::new();
    let mut acc = String::new();
    for c in components(&resolved) {
        acc = if acc.is_empty() {
            c
        } else {
            format!("{acc}/{c}")
        };
        match view.lstat(&acc)? {
            Some(e) if e.is_dir() => entries.push(Entry {
                path: acc.clone(),
                ..e
            }),
            _ => {
                let mut d = Entry::dir(acc.clone());
                if let Some(o) = owner {
                    d.uid = o.uid;
                    d.gid = o.gid;
                }
                entries.push(d);
            }
        }
    }
    let layer = crate::engine::layer_write::write(
        run.ctx,
        entries,
        MtimePolicy::Set(epoch),
        Index::Keep,
        run.stage.index,
    )?;
    Ok(StepOutcome::Layer(layer))
}

#[cfg(test)]
mod tests {
    use super::normalize;

    #[test]
    fn workdir_joins_and_cleans() {
        assert_eq!(normalize("/", "app"), "/app");
        assert_eq!(normalize("/srv", "app/../web/"), "/srv/web");
        assert_eq!(normalize("/srv", "/build"), "/build");
        assert_eq!(normalize("/", "/"), "/");
    }
}
