//! The engine's side of `--cache-from`: a step the local cache misses is
//! looked up in the imported caches ([`crate::cache::remote::Imports`]);
//! a hit is stored in the local cache (record and slot) and served like a
//! local one, its blob fetched only when a later step or the output reads
//! it ([`materialize`]). A miss is explained against the nearest remote
//! record when the local cache knows no earlier run of the step. A `RUN`
//! about to run restores its cache mounts ([`before_run`]).

use super::cache::{Inputs, Lookup};
use super::ctx::BuildCtx;
use super::Error;
use crate::cache::remote;
use crate::image::Layer;
use crate::report::Event;

/// The local cache's answer `local` for step `inputs` (stage `name`, step
/// `index`, local slot `slot`), completed from the imported caches.
pub fn lookup(
    ctx: &BuildCtx,
    (name, index): (&str, usize),
    inputs: &Inputs,
    slot: &str,
    local: Lookup,
) -> Result<Lookup, Error> {
    let imports = &ctx.req.cache_from;
    let reason = match local {
        Lookup::Miss(reason) if !imports.is_empty() => reason,
        other => return Ok(other),
    };
    let slot_id = remote::slot_id(&ctx.req.dockerfile, name, index);
    let warn = |w: String| ctx.reporter.event(Event::Warning(w));
    if let Some(rec) = imports.lookup(&slot_id, inputs, &warn)? {
        // Kept locally: the next build on this machine hits without asking.
        if let Err(e) = ctx.cache.store(&rec, slot) {
            warn(format!(
                "keeping an imported step record in the local cache: {e}"
            ));
        }
        return Ok(Lookup::Hit(rec));
    }
    let unknown_locally = reason
        .as_deref()
        .is_none_or(|r| r.starts_with("no earlier run"));
    let reason = match unknown_locally {
        true => imports.explain(&slot_id, inputs).or(reason),
        false => reason,
    };
    Ok(Lookup::Miss(reason))
}

/// Fetch the blobs of `layers` that remote hits left behind.
pub fn materialize(ctx: &BuildCtx, layers: &[Layer]) -> Result<(), Error> {
    if ctx.req.cache_from.is_empty() {
        return Ok(());
    }
    ctx.req
        .cache_from
        .materialize(layers.iter().map(|l| &l.digest), &ctx.store)?;
    Ok(())
}

/// Before a `RUN` runs with the cache mounts `used` (id, host directory):
/// noted for `--cache-to ...,cache-mounts=`, restored from a
/// `--cache-from ...,cache-mounts=` when empty. Returns `mounts` with the
/// restored ones marked, so the sandbox gives their contents to the
/// mount's owner.
pub fn before_run(
    ctx: &BuildCtx,
    platform: &crate::frontend::Platform,
    used: &[(String, std::path::PathBuf)],
    mut mounts: Vec<crate::sandbox::Mount>,
) -> Result<Vec<crate::sandbox::Mount>, Error> {
    if used.is_empty() {
        return Ok(mounts);
    }
    let warn = |w: String| ctx.reporter.event(Event::Warning(w));
    let scratch = ctx.cache.layout().dir(crate::cache::Bucket::Tmp);
    let restored = ctx
        .req
        .cache_from
        .before_run(&platform.to_string(), used, &scratch, &warn)?;
    for m in &mut mounts {
        if let crate::sandbox::Mount::Cache {
            host, own_contents, ..
        } = m
        {
            *own_contents = restored.contains(host);
        }
    }
    Ok(mounts)
}
