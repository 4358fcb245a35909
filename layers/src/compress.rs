//! One streaming pass: tar bytes → diff_id hash → gzip → digest hash → blob file.
