//! Content-addressed blob store (`blobs/sha256/<hex>`): temp file, verify, fsync, rename.
