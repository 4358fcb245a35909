//! `cairn build --platform A,B,…`: one image per platform, one OCI index,
//! written where the single-platform build writes its image (the local
//! store, `type=oci,tar=false`, `type=image`/`type=registry` with push) and, as a
//! docker-archive holds one platform, one archive per platform
//! (`type=docker,dest=app.tar` → `app.linux-arm64.tar`). The platforms
//! build at the same time in one session ([`crate::engine::multi`]); the
//! index carries the `--annotation` levels only an index has.

use super::{OutputSpec, Sink};
use crate::cli::output_spec::Dest;
use crate::engine::multi::{IndexAnnotations, IndexResult};
use crate::engine::recompress::ExportOptions;
use crate::engine::request::BuildRequest;
use crate::engine::sources::Sources;
use crate::frontend::Platform;
use crate::report::{Event, Reporter};

/// Refuse, before any work, the outputs a multi-platform build does not write.
pub(super) fn check_outputs(outputs: &[OutputSpec]) -> anyhow::Result<()> {
    for o in outputs {
        let ok = match &o.sink {
            Sink::OciDir(_) | Sink::Image { .. } | Sink::Docker(Dest::File(_)) => {
                o.export == ExportOptions::default()
            }
            _ => false,
        };
        anyhow::ensure!(
            ok,
            crate::cli::hint::hint(
                anyhow::anyhow!(
                    "--output {:?}: not written for a multi-platform build (--platform with several platforms)",
                    o.sink
                ),
                "use type=oci,dest=DIR,tar=false (the index), type=docker,dest=FILE (one archive per platform) \
                 or type=image/registry (push), without compression or media-type options",
            )
        );
    }
    Ok(())
}

/// Build `req` for every platform into one index (its outputs are the
/// single build's publishers, handed the index).
pub(super) fn build(
    req: &BuildRequest,
    (platforms, annotations): (&[Platform], &IndexAnnotations),
    sources: &Sources,
    reporter: &dyn Reporter,
) -> anyhow::Result<IndexResult> {
    let started = std::time::Instant::now();
    let ix = crate::engine::multi::build_platforms(req, platforms, annotations, sources, reporter)?;
    reporter.event(Event::Info(ix.summary(started.elapsed())));
    Ok(ix)
}
