//! Rendering of user-facing errors: `error: …`, `  Caused by: …`, `hint: …`.

use std::fmt;
use std::io::Write;

/// An error carrying a suggestion of what to do next. It holds any error,
/// so a room's typed error keeps its type (and its causes) under the hint;
/// `render` finds it anywhere along the cause chain.
#[derive(Debug)]
pub struct Hinted {
    /// What went wrong (and where).
    pub error: Box<dyn std::error::Error + Send + Sync + 'static>,
    /// What the user can do about it (none: the error is shown alone).
    pub hint: Option<String>,
}

impl Hinted {
    /// `error` with the suggestion `hint`.
    pub fn new(
        error: impl Into<Box<dyn std::error::Error + Send + Sync + 'static>>,
        hint: impl Into<String>,
    ) -> Self {
        Hinted {
            error: error.into(),
            hint: Some(hint.into()),
        }
    }

    /// A registry error with what-to-do for the failures the user can fix
    /// (log in, pick a platform, check the name).
    pub fn registry(
        e: crate::registry::RegistryError,
        reference: &crate::registry::Reference,
    ) -> Self {
        use crate::registry::RegistryError as E;
        let registry = reference.repository().registry().to_owned();
        let hint = match &e {
            E::Status {
                status: 401 | 403, ..
            }
            | E::Auth { .. } => Some(format!(
                "log in first: `cairn login {registry} -u USER --password-stdin`"
            )),
            E::PlatformNotFound { .. } => {
                Some("choose one of the available platforms with `--platform`".to_owned())
            }
            E::Status { status: 404, .. } => Some(format!("check that `{reference}` exists")),
            _ => None,
        };
        Hinted {
            error: Box::new(e),
            hint,
        }
    }
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
    anyhow::Error::new(Hinted::new(error.into(), hint))
}

/// An error made once and returned to every caller that asks again (a
/// context walk or a sandbox probe kept in a `OnceLock`), with its cause
/// chain and hint intact: formatting it into a `String` kept neither.
/// Transparent: it shows as the error it holds, its causes are that error's.
#[derive(Debug, Clone)]
pub struct Shared(std::sync::Arc<anyhow::Error>);

impl From<anyhow::Error> for Shared {
    fn from(e: anyhow::Error) -> Self {
        Shared(std::sync::Arc::new(e))
    }
}

impl Shared {
    /// The error again, for one more caller.
    pub fn error(&self) -> anyhow::Error {
        anyhow::Error::new(self.clone())
    }
}

impl fmt::Display for Shared {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&*self.0, f)
    }
}

impl std::error::Error for Shared {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.0.source()
    }
}

/// Attach what-to-do hints to registry errors the user can fix.
pub fn registry_hinted(
    e: crate::registry::RegistryError,
    reference: &crate::registry::Reference,
) -> anyhow::Error {
    anyhow::Error::new(Hinted::registry(e, reference))
}

/// Whether `err` comes from writing to a closed pipe (the reader exited).
pub fn is_broken_pipe(err: &anyhow::Error) -> bool {
    err.chain().any(|c| {
        c.downcast_ref::<std::io::Error>()
            .is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe)
    })
}

/// The hint one cause carries: a [`Hinted`]'s, or a room's typed error's own.
fn hint_of(cause: &(dyn std::error::Error + 'static)) -> Option<String> {
    if let Some(h) = cause.downcast_ref::<Hinted>() {
        return h.hint.clone();
    }
    if let Some(e) = cause.downcast_ref::<crate::attest::Error>() {
        return e.hint();
    }
    if let Some(e) = cause.downcast_ref::<crate::diff::Error>() {
        return e.hint();
    }
    None
}

/// Print `err` with its cause chain and any hint found along the chain.
pub fn render(err: &anyhow::Error, out: &mut dyn Write) {
    let _ = writeln!(out, "error: {err}");
    let mut hints = Vec::new();
    for cause in err.chain() {
        hints.extend(hint_of(cause));
        // A shared error shows as the one it holds, whose hint it carries.
        if let Some(h) = cause
            .downcast_ref::<Shared>()
            .and_then(|s| s.0.downcast_ref::<Hinted>())
        {
            hints.extend(h.hint.clone());
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

#[cfg(test)]
mod tests {
    use super::*;
    use anyhow::Context as _;

    #[test]
    fn a_shared_error_keeps_its_causes_and_hint_for_every_caller() {
        let inner = hint(
            Err::<(), _>(std::io::Error::other("permission denied"))
                .context("reading the context")
                .unwrap_err(),
            "check the directory's permissions",
        );
        let shared = Shared::from(inner);
        for _ in 0..2 {
            let e = shared.error().context("step 3/4");
            let mut out = Vec::new();
            render(&e, &mut out);
            let text = String::from_utf8(out).unwrap();
            assert_eq!(
                text,
                "error: step 3/4\n  Caused by: reading the context\n  Caused by: permission denied\n\nhint: check the directory's permissions\n",
                "{text}"
            );
        }
    }

    #[test]
    fn a_typed_room_error_brings_its_hint() {
        let e = anyhow::Error::new(crate::attest::Error::NotBool {
            flag: "--sbom",
            value: "maybe".into(),
        })
        .context("reading the flags");
        let mut out = Vec::new();
        render(&e, &mut out);
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "error: reading the flags\n  Caused by: --sbom: `maybe` is not true or false\n\nhint: write true or false\n"
        );
    }
}
