//! Directory snapshots and tree diffs (changed entries plus whiteouts for deletions).
