//! Build engine: runs the stage graph, one instruction at a time, with a content-addressed cache.
