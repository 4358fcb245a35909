//! Renders [`crate::report::Event`]s for people: indicatif bars on a TTY,
//! plain lines when stderr is not a TTY or `CI` is set, JSON lines on request.
//! The only module that imports indicatif (in [`tty`]).
//!
//! Three renderers implement [`Reporter`]:
//! - [`plain::Plain`]: BuildKit-like lines (`#5 [builder 3/7] COPY . .`,
//!   `#5 CACHED`, `#5 0.412 output`, `#5 DONE 0.4s`), one atomic write per line.
//! - [`tty::Tty`]: a spinner per running step and a bytes bar per blob; finished
//!   steps stay as permanent lines.
//! - [`json::Json`]: one JSON object per event per line; the schema is
//!   documented in that module.
//!
//! [`reporter_for`] picks one from `--progress` and the environment; the
//! returned [`Progress`] clears its bars in [`Progress::finish`] (also run on
//! drop), so an error printed afterwards never interleaves with a bar.

pub mod json;
pub mod plain;
pub mod tty;

use crate::report::{Event, Reporter};
use std::io::IsTerminal;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// A monotonic clock: time since an arbitrary origin. Injectable so tests can
/// script timings; never reaches an artifact.
pub type Clock = Arc<dyn Fn() -> Duration + Send + Sync>;

/// The real clock, starting at zero now.
pub fn system_clock() -> Clock {
    let origin = Instant::now();
    Arc::new(move || origin.elapsed())
}

/// The value of `--progress`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// Bars on a TTY unless `CI` is set, plain lines otherwise.
    Auto,
    /// Bars whenever stderr is a terminal (even under `CI`), plain otherwise.
    Tty,
    /// Plain lines.
    Plain,
    /// JSON lines.
    Json,
}

/// `--progress` got a value that is not a mode.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("unknown progress mode `{0}`: expected auto, tty, plain or json")]
pub struct UnknownMode(pub String);

impl std::str::FromStr for Mode {
    type Err = UnknownMode;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "auto" => Ok(Mode::Auto),
            "tty" => Ok(Mode::Tty),
            "plain" => Ok(Mode::Plain),
            "json" => Ok(Mode::Json),
            other => Err(UnknownMode(other.to_owned())),
        }
    }
}

/// Which renderer a mode resolves to on this terminal and environment.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Renderer {
    /// [`plain::Plain`].
    Plain,
    /// [`tty::Tty`].
    Tty,
    /// [`json::Json`].
    Json,
}

/// Whether a `CI` value means "running in CI": set, non-empty, not `0`/`false`.
fn ci_is_set(ci: Option<&str>) -> bool {
    ci.is_some_and(|v| !v.is_empty() && v != "0" && !v.eq_ignore_ascii_case("false"))
}

/// The selection rule: JSON and plain when asked; bars only when stderr is a
/// terminal, and for `auto` only outside CI.
pub fn choose(mode: Mode, stderr_is_terminal: bool, ci: Option<&str>) -> Renderer {
    match mode {
        Mode::Json => Renderer::Json,
        Mode::Plain => Renderer::Plain,
        Mode::Tty if stderr_is_terminal => Renderer::Tty,
        Mode::Auto if stderr_is_terminal && !ci_is_set(ci) => Renderer::Tty,
        Mode::Tty | Mode::Auto => Renderer::Plain,
    }
}

/// Whether colour is allowed (no-color.org: `NO_COLOR` present and non-empty disables it).
pub fn color_enabled() -> bool {
    std::env::var_os(crate::env::NO_COLOR).is_none_or(|v| v.is_empty())
}

/// The reporter for `--progress=MODE` on stderr, chosen by [`choose`] with
/// the real terminal and `CI`.
pub fn reporter_for(mode: &str) -> Result<Progress, UnknownMode> {
    let mode: Mode = mode.parse()?;
    let ci = std::env::var(crate::env::CI).ok();
    let renderer = choose(mode, std::io::stderr().is_terminal(), ci.as_deref());
    Ok(match renderer {
        Renderer::Plain => Progress::Plain(plain::Plain::new(
            Box::new(std::io::stderr()),
            system_clock(),
        )),
        Renderer::Json => {
            Progress::Json(json::Json::new(Box::new(std::io::stderr()), system_clock()))
        }
        Renderer::Tty => Progress::Tty(tty::Tty::stderr(color_enabled())),
    })
}

/// No progress at all (`cairn build -q`): events are dropped; errors are still
/// printed by the caller.
pub fn quiet() -> Progress {
    Progress::Plain(plain::Plain::new(Box::new(std::io::sink()), system_clock()))
}

/// A progress renderer; a [`Reporter`] that clears its bars when finished or dropped.
pub enum Progress {
    /// Plain lines.
    Plain(plain::Plain),
    /// Bars.
    Tty(tty::Tty),
    /// JSON lines.
    Json(json::Json),
}

impl Progress {
    /// Which renderer this is.
    pub fn renderer(&self) -> Renderer {
        match self {
            Progress::Plain(_) => Renderer::Plain,
            Progress::Tty(_) => Renderer::Tty,
            Progress::Json(_) => Renderer::Json,
        }
    }

    /// Clear live bars and flush, so the caller can print (e.g. an error) on a
    /// clean terminal. Idempotent; later events are still rendered.
    pub fn finish(&self) {
        match self {
            Progress::Plain(p) => p.flush(),
            Progress::Tty(t) => t.finish(),
            Progress::Json(j) => j.flush(),
        }
    }
}

impl Reporter for Progress {
    fn event(&self, event: Event) {
        match self {
            Progress::Plain(p) => p.event(event),
            Progress::Tty(t) => t.event(event),
            Progress::Json(j) => j.event(event),
        }
    }
}

impl Drop for Progress {
    fn drop(&mut self) {
        self.finish();
    }
}

/// A writer that renderers own: stderr in production, a buffer in tests.
pub type Sink = Box<dyn std::io::Write + Send>;

/// A line-oriented sink: each call writes whole lines with one `write_all`,
/// and after the first failure (stderr closed) it stops trying, because
/// progress is best effort and must never fail a build.
pub(crate) struct Lines {
    out: Sink,
    broken: bool,
}

impl Lines {
    pub(crate) fn new(out: Sink) -> Self {
        Lines { out, broken: false }
    }

    /// Write `text` (complete lines) atomically with respect to this sink.
    pub(crate) fn write(&mut self, text: &[u8]) {
        if !self.broken && !text.is_empty() && self.out.write_all(text).is_err() {
            self.broken = true;
        }
    }

    pub(crate) fn flush(&mut self) {
        if !self.broken {
            let _ = self.out.flush();
        }
    }
}

/// Lock a renderer's state. A poisoned lock only means another thread
/// panicked mid-event; the state is still fine for best-effort progress.
pub(crate) fn lock<T>(m: &std::sync::Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// Decimal sizes as Docker prints them: `512B`, `1.2kB`, `12.3MB`, `1.5GB`.
pub fn human_bytes(n: u64) -> String {
    const UNITS: [&str; 6] = ["kB", "MB", "GB", "TB", "PB", "EB"];
    if n < 1000 {
        return format!("{n}B");
    }
    let mut v = n as f64 / 1000.0;
    let mut unit = 0;
    // Move up before rounding would print `1000.0kB`.
    while v >= 999.95 && unit + 1 < UNITS.len() {
        v /= 1000.0;
        unit += 1;
    }
    format!("{v:.1}{}", UNITS[unit])
}

/// `sha256:` and 12 hex digits followed by `…` for a full digest; anything
/// else (a placeholder while a layer is written) unchanged.
pub fn short_digest(d: &str) -> String {
    match d.strip_prefix("sha256:") {
        Some(hex) if hex.len() > 12 && hex.is_char_boundary(12) => {
            format!("sha256:{}…", &hex[..12])
        }
        _ => d.to_owned(),
    }
}

/// Present and past participles of a blob action (`pull` → pulling, pulled).
pub fn blob_verbs(action: &str) -> (&'static str, &'static str) {
    match action {
        "pull" => ("pulling", "pulled"),
        "push" => ("pushing", "pushed"),
        "write" => ("writing", "wrote"),
        "mount" => ("mounting", "mounted"),
        "exists" => ("checking", "already present"),
        "compress" => ("compressing", "compressed"),
        _ => ("transferring", "transferred"),
    }
}

/// One decimal of seconds, as BuildKit prints step times: `0.4s`, `13.2s`.
pub fn secs(d: Duration) -> String {
    format!("{:.1}s", d.as_secs_f64())
}

/// Escape control characters (a RUN's `\r` progress, escape sequences,
/// embedded newlines) so one line of text can never move the cursor or forge
/// another line; a trailing `\r`/`\n` is dropped.
pub fn sanitize_line(line: &str) -> String {
    let mut out = String::with_capacity(line.len());
    for c in line.trim_end_matches(['\r', '\n']).chars() {
        if c.is_control() && c != '\t' {
            out.extend(c.escape_debug());
        } else {
            out.push(c);
        }
    }
    out
}

/// Test helpers: a shared in-memory sink and a scripted clock.
#[cfg(test)]
pub(crate) mod testing {
    use super::*;
    use std::sync::Mutex;

    /// A `Write` whose bytes the test can read while the renderer owns a clone.
    #[derive(Clone, Default)]
    pub struct SharedBuf(pub Arc<Mutex<Vec<u8>>>);

    impl SharedBuf {
        pub fn text(&self) -> String {
            String::from_utf8(self.0.lock().unwrap().clone()).unwrap()
        }
    }

    impl std::io::Write for SharedBuf {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    /// A clock the test moves by hand.
    #[derive(Clone, Default)]
    pub struct Script(pub Arc<Mutex<Duration>>);

    impl Script {
        pub fn clock(&self) -> Clock {
            let t = self.0.clone();
            Arc::new(move || *t.lock().unwrap())
        }
        pub fn set_ms(&self, ms: u64) {
            *self.0.lock().unwrap() = Duration::from_millis(ms);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mode_parses_and_rejects() {
        assert_eq!("json".parse::<Mode>(), Ok(Mode::Json));
        assert_eq!(
            "fancy".parse::<Mode>().unwrap_err().to_string(),
            "unknown progress mode `fancy`: expected auto, tty, plain or json"
        );
    }

    #[test]
    fn selection_rules() {
        use Renderer as R;
        let cases = [
            (Mode::Auto, true, None, R::Tty),
            (Mode::Auto, false, None, R::Plain),
            (Mode::Auto, true, Some("true"), R::Plain),
            (Mode::Auto, true, Some("1"), R::Plain),
            (Mode::Auto, true, Some(""), R::Tty),
            (Mode::Auto, true, Some("false"), R::Tty),
            (Mode::Auto, true, Some("0"), R::Tty),
            (Mode::Tty, true, Some("true"), R::Tty),
            (Mode::Tty, false, None, R::Plain),
            (Mode::Plain, true, None, R::Plain),
            (Mode::Json, true, None, R::Json),
            (Mode::Json, false, Some("true"), R::Json),
        ];
        for (mode, term, ci, want) in cases {
            assert_eq!(
                choose(mode, term, ci),
                want,
                "{mode:?} term={term} CI={ci:?}"
            );
        }
    }

    #[test]
    fn reporter_for_rejects_unknown_mode_and_honours_plain() {
        assert!(reporter_for("bogus").is_err());
        assert_eq!(reporter_for("plain").unwrap().renderer(), Renderer::Plain);
        assert_eq!(reporter_for("json").unwrap().renderer(), Renderer::Json);
    }

    #[test]
    fn sizes_are_decimal_like_docker() {
        let cases = [
            (0, "0B"),
            (999, "999B"),
            (1000, "1.0kB"),
            (1234, "1.2kB"),
            (12_345_678, "12.3MB"),
            (999_960, "1.0MB"),
            (1_500_000_000, "1.5GB"),
            (u64::MAX, "18.4EB"),
        ];
        for (n, want) in cases {
            assert_eq!(human_bytes(n), want, "{n}");
        }
    }

    #[test]
    fn digests_are_shortened_only_when_full() {
        let full = format!("sha256:{}", "ab".repeat(32));
        assert_eq!(short_digest(&full), "sha256:abababababab…");
        assert_eq!(short_digest("layer 3"), "layer 3");
        assert_eq!(short_digest("sha256:é"), "sha256:é");
    }

    #[test]
    fn control_characters_cannot_escape_a_line() {
        assert_eq!(sanitize_line("50%\r"), "50%");
        assert_eq!(
            sanitize_line("a\x1b[2Kb\rc\td\ne"),
            "a\\u{1b}[2Kb\\rc\td\\ne"
        );
    }
}
