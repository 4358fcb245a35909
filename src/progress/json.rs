//! `--progress=json`: one JSON object per line on stderr, one per event.
//! The schema is documented in `docs/progress-json.md`: the first line is
//! `{"type":"progress","version":2}`; fields may be added within a version,
//! none renamed or removed; a failed command ends with an `error` line.

use super::{lock, Clock, Lines, Sink};
use crate::report::{Event, Reporter};
use serde::Serialize;
use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

/// Minimum time between two `blob_progress` lines of one blob.
const PROGRESS_INTERVAL: Duration = Duration::from_millis(100);

/// The JSON-lines renderer.
pub struct Json {
    state: Mutex<State>,
    clock: Clock,
}

struct State {
    out: Lines,
    /// When each blob's last `blob_progress` line was written.
    last_progress: HashMap<String, Duration>,
}

/// The wire form; field order is the output order.
#[derive(Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum Line<'a> {
    StepStart {
        id: usize,
        stage: &'a str,
        index: usize,
        total: usize,
        text: &'a str,
    },
    StepCached {
        id: usize,
    },
    StepMiss {
        id: usize,
        reason: &'a str,
    },
    StepOutput {
        id: usize,
        line: &'a str,
    },
    StepDone {
        id: usize,
        elapsed_ms: u64,
    },
    RunTimes {
        id: usize,
        command_ms: u64,
        capture_ms: u64,
        write_ms: u64,
        /// The layer stayed a snapshot directory (`write_ms` made it).
        snapshot: bool,
        setup_ms: u64,
        lowers_ms: u64,
    },
    BlobStart {
        digest: &'a str,
        size: Option<u64>,
        action: &'a str,
    },
    BlobProgress {
        digest: &'a str,
        done: u64,
    },
    BlobDone {
        digest: &'a str,
    },
    Warning {
        message: &'a str,
    },
    Info {
        message: &'a str,
    },
    Transfer(&'a crate::report::Transfer),
    Error {
        message: &'a str,
    },
}

fn millis(d: &Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

/// The schema version in the first line (`docs/progress-json.md`).
pub const SCHEMA_VERSION: u32 = 2;

impl Json {
    /// Render to `out` (stderr in production); `clock` throttles `blob_progress`.
    pub fn new(out: Sink, clock: Clock) -> Self {
        let mut out = Lines::new(out);
        out.write(format!("{{\"type\":\"progress\",\"version\":{SCHEMA_VERSION}}}\n").as_bytes());
        Json {
            state: Mutex::new(State {
                out,
                last_progress: HashMap::new(),
            }),
            clock,
        }
    }

    /// Flush the sink.
    pub fn flush(&self) {
        lock(&self.state).out.flush();
    }
}

impl Reporter for Json {
    fn event(&self, event: Event) {
        let now = (self.clock)();
        let mut s = lock(&self.state);
        let line = match &event {
            Event::StepStart {
                id,
                stage,
                index,
                total,
                text,
            } => Line::StepStart {
                id: *id,
                stage,
                index: *index,
                total: *total,
                text,
            },
            Event::StepCached { id } => Line::StepCached { id: *id },
            Event::StepMiss { id, reason } => Line::StepMiss { id: *id, reason },
            Event::StepOutput { id, line } => Line::StepOutput { id: *id, line },
            Event::StepDone { id, elapsed } => Line::StepDone {
                id: *id,
                elapsed_ms: millis(elapsed),
            },
            Event::RunTimes { id, times: t } => Line::RunTimes {
                id: *id,
                command_ms: millis(&t.command),
                capture_ms: millis(&t.capture),
                write_ms: millis(&t.write),
                snapshot: t.snapshot,
                setup_ms: millis(&t.setup),
                lowers_ms: millis(&t.lowers),
            },
            Event::BlobStart {
                digest,
                size,
                action,
            } => Line::BlobStart {
                digest,
                size: *size,
                action,
            },
            Event::BlobProgress { digest, done } => {
                let due = s
                    .last_progress
                    .get(digest)
                    .is_none_or(|&last| now.saturating_sub(last) >= PROGRESS_INTERVAL);
                if !due {
                    return;
                }
                s.last_progress.insert(digest.clone(), now);
                Line::BlobProgress {
                    digest,
                    done: *done,
                }
            }
            Event::BlobDone { digest } => {
                s.last_progress.remove(digest);
                Line::BlobDone { digest }
            }
            Event::Warning(message) => Line::Warning { message },
            Event::Info(message) => Line::Info { message },
            Event::Transfer(t) => Line::Transfer(t),
            Event::Failed(message) => Line::Error { message },
        };
        // Serializing these plain structs cannot fail; skip the line if it ever did.
        let Ok(mut bytes) = serde_json::to_vec(&line) else {
            return;
        };
        bytes.push(b'\n');
        s.out.write(&bytes);
    }
}

#[cfg(test)]
mod tests {
    use super::super::testing::{Script, SharedBuf};
    use super::*;

    #[test]
    fn scripted_events_give_the_documented_schema() {
        let buf = SharedBuf::default();
        let clock = Script::default();
        let j = Json::new(Box::new(buf.clone()), clock.clock());
        let d = format!("sha256:{}", "0f".repeat(32));
        j.event(Event::StepStart {
            id: 5,
            stage: "builder".into(),
            index: 3,
            total: 7,
            text: "COPY . .".into(),
        });
        j.event(Event::StepMiss {
            id: 5,
            reason: "file \"a\" changed".into(),
        });
        j.event(Event::StepOutput {
            id: 5,
            line: "tab\there \u{1b}[1m".into(),
        });
        j.event(Event::StepCached { id: 6 });
        j.event(Event::RunTimes {
            id: 5,
            times: crate::report::RunTimes {
                command: Duration::from_millis(300),
                capture: Duration::from_millis(40),
                setup: Duration::from_millis(12),
                write: Duration::from_millis(60),
                snapshot: false,
                lowers: Duration::from_millis(7),
            },
        });
        j.event(Event::StepDone {
            id: 5,
            elapsed: Duration::from_micros(412_900),
        });
        j.event(Event::BlobStart {
            digest: d.clone(),
            size: None,
            action: "push",
        });
        for (ms, done) in [(0, 10), (50, 20), (100, 30), (150, 40), (250, 50)] {
            clock.set_ms(ms);
            j.event(Event::BlobProgress {
                digest: d.clone(),
                done,
            });
        }
        j.event(Event::BlobDone { digest: d.clone() });
        j.event(Event::Warning("w".into()));
        j.event(Event::Info("i".into()));
        j.event(Event::Transfer(crate::report::Transfer {
            registry: "r:5000".into(),
            mounted: crate::report::Moved {
                blobs: 2,
                bytes: 9,
                layer_bytes: 9,
            },
            ..Default::default()
        }));
        j.event(Event::Failed("boom".into()));
        let want = [
            r#"{"type":"progress","version":2}"#.to_string(),
            r#"{"type":"step_start","id":5,"stage":"builder","index":3,"total":7,"text":"COPY . ."}"#
                .to_string(),
            r#"{"type":"step_miss","id":5,"reason":"file \"a\" changed"}"#.into(),
            r#"{"type":"step_output","id":5,"line":"tab\there \u001b[1m"}"#.into(),
            r#"{"type":"step_cached","id":6}"#.into(),
            r#"{"type":"run_times","id":5,"command_ms":300,"capture_ms":40,"write_ms":60,"snapshot":false,"setup_ms":12,"lowers_ms":7}"#
                .into(),
            r#"{"type":"step_done","id":5,"elapsed_ms":412}"#.into(),
            format!(r#"{{"type":"blob_start","digest":"{d}","size":null,"action":"push"}}"#),
            format!(r#"{{"type":"blob_progress","digest":"{d}","done":10}}"#),
            format!(r#"{{"type":"blob_progress","digest":"{d}","done":30}}"#),
            format!(r#"{{"type":"blob_progress","digest":"{d}","done":50}}"#),
            format!(r#"{{"type":"blob_done","digest":"{d}"}}"#),
            r#"{"type":"warning","message":"w"}"#.into(),
            r#"{"type":"info","message":"i"}"#.into(),
            r#"{"type":"transfer","registry":"r:5000","downloaded":{"blobs":0,"bytes":0,"layer_bytes":0},"uploaded":{"blobs":0,"bytes":0,"layer_bytes":0},"mounted":{"blobs":2,"bytes":9,"layer_bytes":9},"present":{"blobs":0,"bytes":0,"layer_bytes":0}}"#.into(),
            r#"{"type":"error","message":"boom"}"#.into(),
        ];
        let text = buf.text();
        let got: Vec<&str> = text.lines().collect();
        assert_eq!(got, want);
        for l in got {
            serde_json::from_str::<serde_json::Value>(l).expect("every line is JSON");
        }
    }

    #[test]
    fn concurrent_emitters_write_whole_objects() {
        let buf = SharedBuf::default();
        let j = Json::new(Box::new(buf.clone()), Script::default().clock());
        std::thread::scope(|s| {
            for t in 0..6 {
                let j = &j;
                s.spawn(move || {
                    for i in 0..300 {
                        j.event(Event::StepOutput {
                            id: t,
                            line: format!("{t}:{i}:{}", "y".repeat(300)),
                        });
                    }
                });
            }
        });
        let text = buf.text();
        let mut count = 0;
        for l in text.lines().skip(1) {
            let v: serde_json::Value = serde_json::from_str(l).expect("intact JSON line");
            assert_eq!(v["type"], "step_output");
            count += 1;
        }
        assert_eq!(count, 6 * 300);
    }
}
