//! OCI whiteouts: `.wh.<name>` and `.wh..wh..opq` encoding and decoding.
