//! Plain progress lines in BuildKit's `--progress=plain` shape, for logs and CI:
//!
//! ```text
//! #5 [builder 3/7] RUN yarn build
//! #5 cache miss: file src/index.ts changed
//! #5 0.412 yarn run v1.22.22
//! #5 DONE 12.3s
//! #6 [builder 4/7] COPY . .
//! #6 CACHED
//! pulling sha256:4abcf2066143… 3.6MB
//! pulled sha256:4abcf2066143… 3.6MB 0.8s
//! WARNING: …
//! ```
//!
//! Steps of independent stages interleave; each line is formatted first and
//! written with a single `write_all` under one lock, so lines never tear.

use super::{blob_verbs, human_bytes, lock, sanitize_line, secs, short_digest, Clock, Lines, Sink};
use crate::report::{Event, Reporter};
use std::collections::HashMap;
use std::fmt::Write as _;
use std::sync::Mutex;
use std::time::Duration;

/// The plain-line renderer.
pub struct Plain {
    state: Mutex<State>,
    clock: Clock,
}

struct State {
    out: Lines,
    /// Running steps: start time, and whether the step was served from cache.
    steps: HashMap<usize, (Duration, bool)>,
    blobs: HashMap<String, Blob>,
}

struct Blob {
    action: &'static str,
    size: Option<u64>,
    done: u64,
    start: Duration,
}

impl Plain {
    /// Render to `out` (stderr in production), timing with `clock`.
    pub fn new(out: Sink, clock: Clock) -> Self {
        Plain {
            state: Mutex::new(State {
                out: Lines::new(out),
                steps: HashMap::new(),
                blobs: HashMap::new(),
            }),
            clock,
        }
    }

    /// Flush the sink.
    pub fn flush(&self) {
        lock(&self.state).out.flush();
    }
}

impl State {
    /// Format the lines for one event (empty when the event shows nothing).
    fn render(&mut self, event: Event, now: Duration) -> String {
        let mut out = String::new();
        match event {
            Event::StepStart {
                id,
                stage,
                index,
                total,
                text,
            } => {
                self.steps.insert(id, (now, false));
                let _ = writeln!(
                    out,
                    "#{id} [{} {index}/{total}] {}",
                    sanitize_line(&stage),
                    sanitize_line(&text)
                );
            }
            Event::StepCached { id } => {
                if let Some(step) = self.steps.get_mut(&id) {
                    step.1 = true;
                }
                let _ = writeln!(out, "#{id} CACHED");
            }
            Event::StepMiss { id, reason } => {
                let _ = writeln!(out, "#{id} cache miss: {}", sanitize_line(&reason));
            }
            Event::StepOutput { id, line } => {
                let since = self
                    .steps
                    .get(&id)
                    .map_or(Duration::ZERO, |s| now.saturating_sub(s.0));
                let _ = writeln!(
                    out,
                    "#{id} {:.3} {}",
                    since.as_secs_f64(),
                    sanitize_line(&line)
                );
            }
            Event::StepDone { id, elapsed } => {
                // BuildKit ends a cached step with `CACHED` alone.
                let cached = self.steps.remove(&id).is_some_and(|s| s.1);
                if !cached {
                    let _ = writeln!(out, "#{id} DONE {}", secs(elapsed));
                }
            }
            Event::RunTimes { id, times: t } => {
                // A snapshot is not a layer write: said so, with its time.
                let write = if t.snapshot {
                    "snapshot"
                } else {
                    "layer write"
                };
                let _ = writeln!(
                    out,
                    "#{id} RUN command {:.2}s, capture {:.2}s, {write} {:.2}s, sandbox setup {:.2}s, \
                     lower layers {:.2}s",
                    t.command.as_secs_f64(),
                    t.capture.as_secs_f64(),
                    t.write.as_secs_f64(),
                    t.setup.as_secs_f64(),
                    t.lowers.as_secs_f64()
                );
            }
            Event::BlobStart {
                digest,
                size,
                action,
            } => {
                let (doing, _) = blob_verbs(action);
                let _ = write!(out, "{doing} {}", short_digest(&sanitize_line(&digest)));
                if let Some(n) = size {
                    let _ = write!(out, " {}", human_bytes(n));
                }
                out.push('\n');
                self.blobs.insert(
                    digest,
                    Blob {
                        action,
                        size,
                        done: 0,
                        start: now,
                    },
                );
            }
            Event::BlobProgress { digest, done } => {
                if let Some(b) = self.blobs.get_mut(&digest) {
                    b.done = b.done.max(done);
                }
            }
            Event::BlobDone { digest } => {
                let blob = self.blobs.remove(&digest);
                let (_, done) = blob_verbs(blob.as_ref().map_or("", |b| b.action));
                let _ = write!(out, "{done} {}", short_digest(&sanitize_line(&digest)));
                if let Some(b) = blob {
                    if let Some(n) = b.size.or((b.done > 0).then_some(b.done)) {
                        let _ = write!(out, " {}", human_bytes(n));
                    }
                    let _ = write!(out, " {}", secs(now.saturating_sub(b.start)));
                }
                out.push('\n');
            }
            Event::Warning(msg) => {
                for line in msg.lines() {
                    let _ = writeln!(out, "WARNING: {}", sanitize_line(line));
                }
            }
            Event::Info(msg) => {
                for line in msg.lines() {
                    let _ = writeln!(out, "{}", sanitize_line(line));
                }
            }
            Event::Transfer(t) => {
                let _ = writeln!(out, "bytes moved: {}", sanitize_line(&t.to_string()));
            }
            // The error is printed after the progress, once.
            Event::Failed(_) => {}
        }
        out
    }
}

impl Reporter for Plain {
    fn event(&self, event: Event) {
        let now = (self.clock)();
        let mut s = lock(&self.state);
        let text = s.render(event, now);
        s.out.write(text.as_bytes());
    }
}

#[cfg(test)]
mod tests {
    use super::super::testing::{Script, SharedBuf};
    use super::*;

    fn step_start(id: usize, stage: &str, index: usize, total: usize, text: &str) -> Event {
        Event::StepStart {
            id,
            stage: stage.into(),
            index,
            total,
            text: text.into(),
        }
    }

    #[test]
    fn scripted_build_renders_buildkit_lines() {
        let buf = SharedBuf::default();
        let clock = Script::default();
        let p = Plain::new(Box::new(buf.clone()), clock.clock());
        let digest = format!("sha256:{}", "4a".repeat(32));
        clock.set_ms(1_000);
        p.event(Event::BlobStart {
            digest: digest.clone(),
            size: Some(3_623_807),
            action: "pull",
        });
        p.event(Event::BlobProgress {
            digest: digest.clone(),
            done: 1_000_000,
        });
        clock.set_ms(1_800);
        p.event(Event::BlobDone {
            digest: digest.clone(),
        });
        p.event(step_start(5, "builder", 3, 7, "RUN yarn build"));
        p.event(Event::StepMiss {
            id: 5,
            reason: "file src/index.ts changed".into(),
        });
        clock.set_ms(2_212);
        p.event(Event::StepOutput {
            id: 5,
            line: "yarn run v1.22.22\r".into(),
        });
        p.event(step_start(6, "deps", 2, 3, "COPY package.json ."));
        p.event(Event::StepCached { id: 6 });
        p.event(Event::StepDone {
            id: 6,
            elapsed: Duration::from_millis(3),
        });
        p.event(Event::RunTimes {
            id: 5,
            times: crate::report::RunTimes {
                command: Duration::from_millis(10_004),
                capture: Duration::from_millis(815),
                setup: Duration::from_millis(120),
                write: Duration::from_millis(1_406),
                snapshot: false,
                lowers: Duration::from_millis(2_650),
            },
        });
        p.event(Event::StepDone {
            id: 5,
            elapsed: Duration::from_millis(12_345),
        });
        p.event(Event::BlobStart {
            digest: "layer 5".into(),
            size: None,
            action: "write",
        });
        p.event(Event::BlobProgress {
            digest: "layer 5".into(),
            done: 2_048,
        });
        clock.set_ms(2_312);
        p.event(Event::BlobDone {
            digest: "layer 5".into(),
        });
        p.event(Event::Warning("no .dockerignore\nsecond line".into()));
        p.event(Event::Info("pushed 127.0.0.1:5000/app:1".into()));
        assert_eq!(
            buf.text(),
            "pulling sha256:4a4a4a4a4a4a… 3.6MB\n\
             pulled sha256:4a4a4a4a4a4a… 3.6MB 0.8s\n\
             #5 [builder 3/7] RUN yarn build\n\
             #5 cache miss: file src/index.ts changed\n\
             #5 0.412 yarn run v1.22.22\n\
             #6 [deps 2/3] COPY package.json .\n\
             #6 CACHED\n\
             #5 RUN command 10.00s, capture 0.81s, layer write 1.41s, sandbox setup 0.12s, lower layers 2.65s\n\
             #5 DONE 12.3s\n\
             writing layer 5\n\
             wrote layer 5 2.0kB 0.1s\n\
             WARNING: no .dockerignore\n\
             WARNING: second line\n\
             pushed 127.0.0.1:5000/app:1\n"
        );
    }

    #[test]
    fn output_cannot_forge_lines() {
        let buf = SharedBuf::default();
        let p = Plain::new(Box::new(buf.clone()), Script::default().clock());
        p.event(step_start(1, "0", 1, 1, "RUN <<EOF\necho hi\nEOF"));
        p.event(Event::StepOutput {
            id: 1,
            line: "evil\n#1 DONE 0.0s\x1b[2K".into(),
        });
        assert_eq!(
            buf.text(),
            "#1 [0 1/1] RUN <<EOF\\necho hi\\nEOF\n\
             #1 0.000 evil\\n#1 DONE 0.0s\\u{1b}[2K\n"
        );
    }

    #[test]
    fn concurrent_emitters_never_tear_lines() {
        let buf = SharedBuf::default();
        let p = Plain::new(Box::new(buf.clone()), Script::default().clock());
        const THREADS: usize = 8;
        const LINES: usize = 500;
        std::thread::scope(|s| {
            for t in 0..THREADS {
                let p = &p;
                s.spawn(move || {
                    let id = t + 1;
                    p.event(step_start(id, &format!("stage{t}"), 1, 1, "RUN work"));
                    for i in 0..LINES {
                        p.event(Event::StepOutput {
                            id,
                            line: format!("thread {t} line {i} {}", "x".repeat(200)),
                        });
                    }
                    p.event(Event::StepDone {
                        id,
                        elapsed: Duration::from_secs(1),
                    });
                });
            }
        });
        let text = buf.text();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), THREADS * (LINES + 2));
        let mut next = [0usize; THREADS];
        for line in lines {
            let (tag, rest) = line.split_once(' ').unwrap();
            let t: usize = tag.strip_prefix('#').unwrap().parse::<usize>().unwrap() - 1;
            if rest.starts_with('[') || rest.starts_with("DONE") {
                continue;
            }
            let want = format!("0.000 thread {t} line {} {}", next[t], "x".repeat(200));
            assert_eq!(rest, want, "torn or reordered line");
            next[t] += 1;
        }
        assert!(next.iter().all(|&n| n == LINES));
    }
}
