//! Errors and warnings about a Dockerfile, located at `FILE:LINE:COL` and shown with the
//! source line they point at and, where one helps, a hint.
//!
//! Rendered form (what `Display` prints):
//!
//! ```text
//! Dockerfile:3:5: unknown instruction: RUNN
//!   |
//! 3 | RUNN echo hi
//!   | ^^^^
//! hint: did you mean RUN?
//! ```

use std::fmt;
use std::path::{Path, PathBuf};

/// A position in the Dockerfile: 1-based line and 1-based column (in characters).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Pos {
    /// 1-based line number.
    pub line: usize,
    /// 1-based column, counted in characters.
    pub col: usize,
}

/// Where an instruction sits: its first position and the last physical line it spans
/// (continuations and heredoc bodies included).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct Span {
    /// Position of the instruction keyword.
    pub start: Pos,
    /// Last physical line of the instruction.
    pub end_line: usize,
}

/// Whether a diagnostic stops the build.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Severity {
    /// The Dockerfile (or the options) cannot be used.
    Error,
    /// Suspicious but accepted.
    Warning,
}

/// An error or warning about a Dockerfile with its location. Boxed so that
/// `Result<_, Diagnostic>` stays one pointer wide; the fields are reached through `Deref`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Diagnostic(Box<DiagnosticData>);

/// The content of a [`Diagnostic`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DiagnosticData {
    /// Error or warning.
    pub severity: Severity,
    /// The Dockerfile's path as given by the user.
    pub file: PathBuf,
    /// Where; `None` for problems with no place in the file (e.g. an unknown `--target`).
    pub pos: Option<Pos>,
    /// How many characters to underline from `pos.col` (at least 1).
    pub len: usize,
    /// The source line `pos` points into (without its newline).
    pub excerpt: Option<String>,
    /// What went wrong, lowercase, no trailing period.
    pub message: String,
    /// What the user can do about it.
    pub hint: Option<String>,
}

impl Diagnostic {
    /// An error at `pos` in `file`, the excerpt taken from `source`.
    pub fn error(file: &Path, source: &str, pos: Pos, message: impl Into<String>) -> Self {
        Self::new(Severity::Error, file, source, Some(pos), message)
    }

    /// A warning at `pos` in `file`.
    pub fn warning(file: &Path, source: &str, pos: Pos, message: impl Into<String>) -> Self {
        Self::new(Severity::Warning, file, source, Some(pos), message)
    }

    /// A diagnostic without a position (it still names the file).
    pub fn unlocated(severity: Severity, file: &Path, message: impl Into<String>) -> Self {
        Self::new(severity, file, "", None, message)
    }

    fn new(
        severity: Severity,
        file: &Path,
        source: &str,
        pos: Option<Pos>,
        message: impl Into<String>,
    ) -> Self {
        let excerpt = pos.and_then(|p| source_line(source, p.line).map(str::to_owned));
        Diagnostic(Box::new(DiagnosticData {
            severity,
            file: file.to_path_buf(),
            pos,
            len: 1,
            excerpt,
            message: message.into(),
            hint: None,
        }))
    }

    /// Add a hint.
    pub fn with_hint(mut self, hint: impl Into<String>) -> Self {
        self.hint = Some(hint.into());
        self
    }

    /// Underline `len` characters instead of one.
    pub fn with_len(mut self, len: usize) -> Self {
        self.len = len.max(1);
        self
    }

    /// `FILE:LINE:COL` (or just `FILE`).
    pub fn location(&self) -> String {
        match self.pos {
            Some(p) => format!("{}:{}:{}", self.file.display(), p.line, p.col),
            None => self.file.display().to_string(),
        }
    }

    /// The first line only: `FILE:LINE:COL: message`.
    pub fn headline(&self) -> String {
        format!("{}: {}", self.location(), self.message)
    }
}

impl std::ops::Deref for Diagnostic {
    type Target = DiagnosticData;
    fn deref(&self) -> &DiagnosticData {
        &self.0
    }
}

impl std::ops::DerefMut for Diagnostic {
    fn deref_mut(&mut self) -> &mut DiagnosticData {
        &mut self.0
    }
}

/// Line `line` (1-based) of `source`, without its line terminator.
pub fn source_line(source: &str, line: usize) -> Option<&str> {
    let source = source.strip_prefix('\u{feff}').unwrap_or(source);
    let l = source.split('\n').nth(line.checked_sub(1)?)?;
    Some(l.strip_suffix('\r').unwrap_or(l))
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.headline())?;
        if let (Some(p), Some(ex)) = (self.pos, &self.excerpt) {
            let num = p.line.to_string();
            let pad = " ".repeat(num.len());
            // Tabs would shift the caret; show them as single spaces.
            let mut shown: String = ex
                .chars()
                .map(|c| if c == '\t' { ' ' } else { c })
                .collect();
            let mut col = p.col.max(1);
            // Very long lines are shown as a window around the column.
            const WINDOW: usize = 120;
            if shown.chars().count() > WINDOW {
                let start = col
                    .saturating_sub(WINDOW / 2)
                    .min(shown.chars().count().saturating_sub(WINDOW));
                let body: String = shown.chars().skip(start).take(WINDOW).collect();
                let lead = if start > 0 { "…" } else { "" };
                col = col - start + lead.chars().count();
                shown = format!("{lead}{body}…");
            }
            let width = shown.chars().count();
            let len = if col > width {
                1
            } else {
                self.len.min(width + 1 - col).max(1)
            };
            write!(f, "\n{pad} |\n{num} | {shown}\n{pad} | ")?;
            write!(f, "{}{}", " ".repeat(col - 1), "^".repeat(len))?;
        }
        if let Some(h) = &self.hint {
            write!(f, "\nhint: {h}")?;
        }
        Ok(())
    }
}

impl std::error::Error for Diagnostic {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_location_excerpt_caret_and_hint() {
        let d = Diagnostic::error(
            Path::new("Dockerfile"),
            "FROM a\nRUNN x\n",
            Pos { line: 2, col: 1 },
            "unknown instruction: RUNN",
        )
        .with_len(4)
        .with_hint("did you mean RUN?");
        assert_eq!(
            d.to_string(),
            "Dockerfile:2:1: unknown instruction: RUNN\n  |\n2 | RUNN x\n  | ^^^^\nhint: did you mean RUN?"
        );
    }

    #[test]
    fn caret_past_end_of_line_is_clamped() {
        let d = Diagnostic::error(Path::new("D"), "ab", Pos { line: 1, col: 9 }, "x").with_len(5);
        assert!(d.to_string().ends_with("|         ^"));
        let long = format!("RUN {}", "x".repeat(1000));
        let d = Diagnostic::error(Path::new("D"), &long, Pos { line: 1, col: 900 }, "x");
        let shown = d.to_string();
        assert!(shown.lines().all(|l| l.chars().count() < 140), "{shown}");
        assert!(shown.lines().nth(3).unwrap().ends_with('^'));
        let none = Diagnostic::unlocated(Severity::Error, Path::new("D"), "no target");
        assert_eq!(none.to_string(), "D: no target");
    }
}
