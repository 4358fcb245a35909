//! Live progress on a terminal (indicatif): one spinner per running step
//! showing its elapsed time and last output line, one bytes bar per blob
//! transfer with throughput. Finished steps and blobs become permanent lines
//! above the bars:
//!
//! ```text
//! ✔ [deps 2/3] RUN npm ci 13.2s
//! ✔ [builder 1/7] COPY package.json . CACHED
//! ⠙ [builder 3/7] RUN yarn build 4.1s  info Compiling…
//! pulling sha256:4abcf2066143… [#########>--------] 12.1MB/49.4MB 8.2MB/s
//! ```
//!
//! `NO_COLOR` turns off every colour; [`Tty::finish`] clears all bars so an
//! error printed afterwards lands on a clean line.

use super::{blob_verbs, human_bytes, lock, sanitize_line, secs, short_digest};
use crate::report::{Event, Reporter};
use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressState, ProgressStyle};
use std::collections::HashMap;
use std::fmt::Write as _;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Longest step label on a spinner line; the rest is cut so the line never wraps.
const MAX_LABEL: usize = 70;

/// The terminal renderer.
pub struct Tty {
    multi: MultiProgress,
    color: bool,
    bars: Mutex<Bars>,
}

#[derive(Default)]
struct Bars {
    steps: HashMap<usize, Step>,
    blobs: HashMap<String, Blob>,
}

struct Step {
    bar: ProgressBar,
    label: String,
}

struct Blob {
    bar: ProgressBar,
    action: &'static str,
    size: Option<u64>,
    start: Instant,
}

impl Tty {
    /// Draw on stderr.
    pub fn stderr(color: bool) -> Self {
        Self::with_target(ProgressDrawTarget::stderr(), color)
    }

    /// Draw on `target` (tests use a recording terminal or a hidden target).
    fn with_target(target: ProgressDrawTarget, color: bool) -> Self {
        Tty {
            multi: MultiProgress::with_draw_target(target),
            color,
            bars: Mutex::new(Bars::default()),
        }
    }

    /// Remove every live bar and clear the bar area. Idempotent.
    pub fn finish(&self) {
        let mut bars = lock(&self.bars);
        for (_, s) in bars.steps.drain() {
            s.bar.finish_and_clear();
        }
        for (_, b) in bars.blobs.drain() {
            b.bar.finish_and_clear();
        }
        let _ = self.multi.clear();
    }

    fn paint(&self, ansi: &str, s: &str) -> String {
        if self.color {
            format!("\x1b[{ansi}m{s}\x1b[0m")
        } else {
            s.to_owned()
        }
    }

    fn style(&self, template: &str, plain: &str) -> ProgressStyle {
        let t = if self.color { template } else { plain };
        ProgressStyle::with_template(t)
            .unwrap_or_else(|_| ProgressStyle::default_spinner())
            // Step times with one decimal, like the permanent lines.
            .with_key("secs", |s: &ProgressState, w: &mut dyn std::fmt::Write| {
                let _ = w.write_str(&secs(s.elapsed()));
            })
            .progress_chars("#>-")
    }

    fn println(&self, line: String) {
        let _ = self.multi.println(line);
    }

    fn step_start(&self, id: usize, label: String) {
        let bar = self.multi.add(ProgressBar::new_spinner());
        bar.set_style(self.style(
            "{spinner:.cyan} {prefix} {secs:.dim} {wide_msg:.dim}",
            "{spinner} {prefix} {secs} {wide_msg}",
        ));
        bar.set_prefix(truncate(&label, MAX_LABEL));
        bar.enable_steady_tick(Duration::from_millis(120));
        let mut bars = lock(&self.bars);
        if let Some(old) = bars.steps.insert(id, Step { bar, label }) {
            old.bar.finish_and_clear();
        }
    }

    fn step_end(&self, id: usize, tail: String) {
        let step = {
            let mut bars = lock(&self.bars);
            bars.steps.remove(&id)
        };
        // A step that already ended (CACHED, then DONE) prints nothing more.
        if let Some(step) = step {
            step.bar.finish_and_clear();
            self.println(format!("{} {} {tail}", self.paint("32", "✔"), step.label));
        }
    }

    fn blob_start(&self, digest: String, size: Option<u64>, action: &'static str) {
        let (doing, _) = blob_verbs(action);
        let bar = match size {
            Some(n) => {
                let bar = ProgressBar::new(n);
                bar.set_style(self.style(
                    "{prefix} [{bar:25.cyan/blue}] {decimal_bytes}/{decimal_total_bytes} {decimal_bytes_per_sec:.dim}",
                    "{prefix} [{bar:25}] {decimal_bytes}/{decimal_total_bytes} {decimal_bytes_per_sec}",
                ));
                bar
            }
            None => {
                let bar = ProgressBar::new_spinner();
                bar.set_style(self.style(
                    "{spinner:.cyan} {prefix} {decimal_bytes} {decimal_bytes_per_sec:.dim}",
                    "{spinner} {prefix} {decimal_bytes} {decimal_bytes_per_sec}",
                ));
                bar
            }
        };
        let bar = self.multi.add(bar);
        bar.set_prefix(format!("{doing} {}", short_digest(&sanitize_line(&digest))));
        bar.enable_steady_tick(Duration::from_millis(200));
        let blob = Blob {
            bar,
            action,
            size,
            start: Instant::now(),
        };
        let mut bars = lock(&self.bars);
        if let Some(old) = bars.blobs.insert(digest, blob) {
            old.bar.finish_and_clear();
        }
    }

    fn blob_done(&self, digest: &str) {
        let blob = {
            let mut bars = lock(&self.bars);
            bars.blobs.remove(digest)
        };
        let Some(b) = blob else { return };
        b.bar.finish_and_clear();
        let (_, done) = blob_verbs(b.action);
        let mut line = format!(
            "{} {done} {}",
            self.paint("32", "✔"),
            short_digest(&sanitize_line(digest))
        );
        if let Some(n) = b.size.or(Some(b.bar.position()).filter(|&p| p > 0)) {
            let _ = write!(line, " {}", human_bytes(n));
        }
        let _ = write!(line, " {}", secs(b.start.elapsed()));
        self.println(line);
    }

    #[cfg(test)]
    fn live(&self) -> (usize, usize) {
        let bars = self.bars.lock().unwrap();
        (bars.steps.len(), bars.blobs.len())
    }
}

/// At most `max` characters, ending in `…` when cut.
fn truncate(s: &str, max: usize) -> String {
    if s.chars().count() <= max {
        s.to_owned()
    } else {
        let mut out: String = s.chars().take(max.saturating_sub(1)).collect();
        out.push('…');
        out
    }
}

impl Reporter for Tty {
    fn event(&self, event: Event) {
        match event {
            Event::StepStart {
                id,
                stage,
                index,
                total,
                text,
            } => self.step_start(
                id,
                format!(
                    "[{} {index}/{total}] {}",
                    sanitize_line(&stage),
                    sanitize_line(&text)
                ),
            ),
            Event::StepCached { id } => self.step_end(id, self.paint("34", "CACHED")),
            Event::StepMiss { id, reason } => {
                let label = {
                    let bars = lock(&self.bars);
                    bars.steps.get(&id).map(|s| s.label.clone())
                };
                let label = label.unwrap_or_else(|| format!("#{id}"));
                self.println(self.paint(
                    "2",
                    &format!("  {label} cache miss: {}", sanitize_line(&reason)),
                ));
            }
            Event::StepOutput { id, line } => {
                let bars = lock(&self.bars);
                if let Some(s) = bars.steps.get(&id) {
                    s.bar.set_message(sanitize_line(&line));
                }
            }
            Event::StepDone { id, elapsed } => self.step_end(id, secs(elapsed)),
            // The plain and JSON logs carry it; a terminal shows the step's time alone.
            Event::RunTimes { .. } => {}
            Event::BlobStart {
                digest,
                size,
                action,
            } => self.blob_start(digest, size, action),
            Event::BlobProgress { digest, done } => {
                let bars = lock(&self.bars);
                if let Some(b) = bars.blobs.get(&digest) {
                    b.bar.set_position(done);
                }
            }
            Event::BlobDone { digest } => self.blob_done(&digest),
            Event::Warning(msg) => {
                for line in msg.lines() {
                    self.println(format!(
                        "{}: {}",
                        self.paint("33", "warning"),
                        sanitize_line(line)
                    ));
                }
            }
            Event::Info(msg) => {
                for line in msg.lines() {
                    self.println(sanitize_line(line));
                }
            }
            Event::Transfer(t) => {
                self.println(format!("bytes moved: {}", sanitize_line(&t.to_string())));
            }
            // The error is printed after the progress, once.
            Event::Failed(_) => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use indicatif::TermLike;
    use std::sync::Arc;

    /// A terminal that records the lines written to it.
    #[derive(Debug, Clone, Default)]
    struct Recording(Arc<Mutex<String>>);

    impl TermLike for Recording {
        fn width(&self) -> u16 {
            100
        }
        fn move_cursor_up(&self, _: usize) -> std::io::Result<()> {
            Ok(())
        }
        fn move_cursor_down(&self, _: usize) -> std::io::Result<()> {
            Ok(())
        }
        fn move_cursor_right(&self, _: usize) -> std::io::Result<()> {
            Ok(())
        }
        fn move_cursor_left(&self, _: usize) -> std::io::Result<()> {
            Ok(())
        }
        fn write_line(&self, s: &str) -> std::io::Result<()> {
            let mut t = self.0.lock().unwrap();
            t.push_str(s);
            t.push('\n');
            Ok(())
        }
        fn write_str(&self, s: &str) -> std::io::Result<()> {
            self.0.lock().unwrap().push_str(s);
            Ok(())
        }
        fn clear_line(&self) -> std::io::Result<()> {
            Ok(())
        }
        fn flush(&self) -> std::io::Result<()> {
            Ok(())
        }
    }

    fn start(id: usize, stage: &str, text: &str) -> Event {
        Event::StepStart {
            id,
            stage: stage.into(),
            index: 2,
            total: 3,
            text: text.into(),
        }
    }

    #[test]
    fn finished_steps_become_permanent_lines_and_finish_clears() {
        let term = Recording::default();
        let tty = Tty::with_target(ProgressDrawTarget::term_like(Box::new(term.clone())), false);
        let d = format!("sha256:{}", "12".repeat(32));
        tty.event(start(1, "deps", "RUN npm ci"));
        tty.event(start(2, "builder", "COPY . ."));
        tty.event(Event::StepOutput {
            id: 1,
            line: "added 312 packages".into(),
        });
        tty.event(Event::BlobStart {
            digest: d.clone(),
            size: Some(5_000_000),
            action: "push",
        });
        tty.event(Event::BlobProgress {
            digest: d.clone(),
            done: 2_500_000,
        });
        assert_eq!(tty.live(), (2, 1));
        tty.event(Event::StepCached { id: 2 });
        tty.event(Event::StepDone {
            id: 2,
            elapsed: Duration::from_millis(1),
        });
        tty.event(Event::StepMiss {
            id: 1,
            reason: "file package-lock.json changed".into(),
        });
        tty.event(Event::StepDone {
            id: 1,
            elapsed: Duration::from_millis(13_240),
        });
        tty.event(Event::BlobDone { digest: d.clone() });
        tty.event(Event::Warning("cache dir is on tmpfs".into()));
        tty.event(start(3, "final", "RUN false"));
        assert_eq!(tty.live(), (1, 0));
        tty.finish();
        assert_eq!(tty.live(), (0, 0));
        tty.finish();

        let text = term.0.lock().unwrap().clone();
        for want in [
            "✔ [builder 2/3] COPY . . CACHED",
            "  [deps 2/3] RUN npm ci cache miss: file package-lock.json changed",
            "✔ [deps 2/3] RUN npm ci 13.2s",
            "✔ pushed sha256:121212121212… 5.0MB ",
            "warning: cache dir is on tmpfs",
        ] {
            assert!(text.contains(want), "missing {want:?} in:\n{text}");
        }
        assert!(
            !text.contains('\x1b'),
            "NO_COLOR output has escapes:\n{text}"
        );
        assert_eq!(text.matches("COPY . . CACHED").count(), 1, "{text}");
    }

    #[test]
    fn colour_is_used_only_when_enabled() {
        let term = Recording::default();
        let tty = Tty::with_target(ProgressDrawTarget::term_like(Box::new(term.clone())), true);
        tty.event(Event::Warning("w".into()));
        assert!(term.0.lock().unwrap().contains("\x1b[33mwarning\x1b[0m: w"));
    }

    #[test]
    fn labels_are_cut_to_fit() {
        assert_eq!(truncate("abcdef", 4), "abc…");
        assert_eq!(truncate("abc", 4), "abc");
    }
}
