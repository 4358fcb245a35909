//! What `cairn build` writes about the image once it is published:
//! `--metadata-file` (buildx's keys) and `--iidfile`.

use super::BuildArgs;
use crate::publish::Subject;
use anyhow::Context as _;

/// Write `--metadata-file` and `--iidfile` for `subject` (the image as the
/// outputs wrote it, or the index).
pub(super) fn metadata(args: &BuildArgs, subject: Subject<'_>) -> anyhow::Result<()> {
    if let Some(f) = &args.metadata_file {
        let meta = match subject {
            Subject::Image(r) => serde_json::json!({
                "containerimage.digest": r.manifest_digest.to_string(),
                "containerimage.config.digest": r.config_digest.to_string(),
                "containerimage.descriptor": r.descriptor(),
                "image.name": args.tags.join(","),
            }),
            Subject::Index(ix) => serde_json::json!({
                "containerimage.digest": ix.index_digest.to_string(),
                "containerimage.descriptor": ix.descriptor(),
                "containerimage.platforms": ix.images.iter().map(|r| r.descriptor()).collect::<Vec<_>>(),
                "image.name": args.tags.join(","),
            }),
        };
        std::fs::write(f, serde_json::to_vec_pretty(&meta)?)
            .with_context(|| format!("writing {}", f.display()))?;
    }
    if let Some(f) = &args.iidfile {
        // As buildx: the image ID of a multi-platform build is the index digest.
        let id = match subject {
            Subject::Image(r) => &r.config_digest,
            Subject::Index(ix) => &ix.index_digest,
        };
        std::fs::write(f, id.to_string()).with_context(|| format!("writing {}", f.display()))?;
    }
    Ok(())
}
