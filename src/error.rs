//! Rendering of user-facing errors: `error: …`, `  Caused by: …`, `hint: …`.

use std::fmt;
use std::io::Write;

/// An error carrying a suggestion of what to do next.
#[derive(Debug)]
pub struct Hinted {
    /// What went wrong (and where).
    pub error: anyhow::Error,
    /// What the user can do about it.
    pub hint: String,
}

impl fmt::Display for Hinted {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.error.fmt(f)
    }
}

impl std::error::Error for Hinted {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.error.source()
    }
}

/// Attach a hint to any error.
pub fn hint(error: impl Into<anyhow::Error>, hint: impl Into<String>) -> anyhow::Error {
    anyhow::Error::new(Hinted {
        error: error.into(),
        hint: hint.into(),
    })
}

/// Attach what-to-do hints to registry errors the user can fix.
pub fn registry_hinted(
    e: crate::registry::RegistryError,
    reference: &crate::registry::Reference,
) -> anyhow::Error {
    use crate::registry::RegistryError as E;
    let registry = reference.repository().registry().to_owned();
    match &e {
        E::Status {
            status: 401 | 403, ..
        }
        | E::Auth { .. } => hint(
            e,
            format!("log in first: `cairn login {registry} -u USER --password-stdin`"),
        ),
        E::PlatformNotFound { .. } => {
            hint(e, "choose one of the available platforms with `--platform`")
        }
        E::Status { status: 404, .. } => hint(e, format!("check that `{reference}` exists")),
        _ => e.into(),
    }
}

/// Whether `err` comes from writing to a closed pipe (the reader exited).
pub fn is_broken_pipe(err: &anyhow::Error) -> bool {
    err.chain().any(|c| {
        c.downcast_ref::<std::io::Error>()
            .is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe)
    })
}

/// Print `err` with its cause chain and any hint found along the chain.
pub fn render(err: &anyhow::Error, out: &mut dyn Write) {
    let _ = writeln!(out, "error: {err}");
    let mut hints = Vec::new();
    for cause in err.chain() {
        if let Some(h) = cause.downcast_ref::<Hinted>() {
            hints.push(h.hint.clone());
        }
    }
    for cause in err.chain().skip(1) {
        let text = cause.to_string();
        if !text.is_empty() && !err.to_string().ends_with(&text) {
            let _ = writeln!(out, "  Caused by: {text}");
        }
    }
    for h in hints {
        let _ = writeln!(out, "\nhint: {h}");
    }
}
