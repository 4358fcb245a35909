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
    /// The inputs of the key. (Whether the step was a cache hit is not
    /// recorded: it depends on the cache, not on the inputs, and would make a
    /// warm build's record, pushed beside the image, differ from a cold one's.)
    pub inputs: Inputs,
}

/// The record of one build.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct BuildRecord {
    /// Steps by stage name, then step index (see [`BuildRecord::normalize`]).
    pub steps: Vec<StepEntry>,
}

impl BuildRecord {
    /// Put the steps in one order whatever the thread timing: independent
    /// stages run in parallel and append as they go, but the record is stored
    /// as a JSON document whose digest must not depend on that. The sort is
    /// stable, and steps of one stage are appended by one thread in order.
    pub fn normalize(&mut self) {
        self.steps
            .sort_by(|a, b| (a.stage.as_str(), a.index).cmp(&(b.stage.as_str(), b.index)));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn step(stage: &str, index: usize) -> StepEntry {
        StepEntry {
            stage: stage.into(),
            index,
            instruction: format!("{stage} {index}"),
            key: None,
            inputs: Inputs::default(),
        }
    }

    #[test]
    fn interleaved_stages_normalize_to_one_order() {
        let mut a = BuildRecord {
            steps: vec![
                step("deps", 1),
                step("assets", 1),
                step("deps", 2),
                step("assets", 2),
            ],
        };
        let mut b = BuildRecord {
            steps: vec![
                step("assets", 1),
                step("assets", 2),
                step("deps", 1),
                step("deps", 2),
            ],
        };
        a.normalize();
        b.normalize();
        assert_eq!(a, b);
        assert_eq!(a.steps[0].stage, "assets");
    }
}
