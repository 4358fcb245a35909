//! One way to read and write the small JSON memos cairn keeps beside its
//! cache (context digests, immutable-file digests, where pushed blobs went):
//! written to a temporary file in the same directory, renamed over the old
//! one, so a reader never sees half a file; read leniently, since a memo only
//! saves time (not fsynced either).

use std::io::{self, Write};
use std::path::Path;

/// The memo at `file`, or an empty one when it is missing, unreadable or of
/// another format.
pub fn read_json<T: serde::de::DeserializeOwned + Default>(file: &Path) -> T {
    std::fs::read(file)
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok())
        .unwrap_or_default()
}

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
