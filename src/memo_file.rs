//! One way to write the small JSON memos cairn keeps beside its cache
//! (context digests, immutable-file digests, where pushed blobs went): to a
//! temporary file in the same directory, renamed over the old one, so a
//! reader never sees half a file. Memos only save time, so they are not
//! fsynced.

use std::io::{self, Write};
use std::path::Path;

/// Replace `file` with `value` serialized as JSON.
pub fn write_json(file: &Path, value: &impl serde::Serialize) -> io::Result<()> {
    let bytes = serde_json::to_vec(value).map_err(io::Error::other)?;
    let dir = file.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir)?;
    let mut tmp = tempfile::NamedTempFile::new_in(dir)?;
    tmp.write_all(&bytes)?;
    tmp.persist(file).map_err(|e| e.error)?;
    Ok(())
}
