//! The build record: every step's cache key and inputs, kept with the image
//! so that `cairn diff` can say which input of which step changed.

use super::cache::Inputs;
use serde::{Deserialize, Serialize};

/// The artifact type under which a build record is stored next to an image.
pub const ARTIFACT_TYPE: &str = "application/vnd.cairn.build-record.v1+json";

/// One step of the build.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct StepEntry {
    /// Stage name or index.
    pub stage: String,
    /// 1-based step number in the stage.
    pub index: usize,
    /// The instruction after expansion.
    pub instruction: String,
    /// The cache key (layer steps only).
    pub key: Option<String>,
    /// The inputs of the key.
    pub inputs: Inputs,
    /// Served from the cache.
    pub cached: bool,
}

/// The record of one build.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct BuildRecord {
    /// Steps in execution order (stages may interleave; sort by stage, index to read).
    pub steps: Vec<StepEntry>,
}

impl BuildRecord {
    /// Steps sorted by stage order of first appearance and step index.
    pub fn sorted(&self) -> Vec<&StepEntry> {
        let mut v: Vec<&StepEntry> = self.steps.iter().collect();
        v.sort_by(|a, b| (a.stage.as_str(), a.index).cmp(&(b.stage.as_str(), b.index)));
        v
    }
}
