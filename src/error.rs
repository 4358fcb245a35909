//! Rendering of user-facing errors: `error: …`, `  Caused by: …`, `hint: …`.
//!
//! The library's rooms return typed errors (thiserror) whose causes are
//! their `source()` chain; a room's `hint()` is found here ([`hint_of`]).
//! Only the CLI speaks `anyhow`: it hands its error to [`render`] as a
//! `&dyn Error` (`err.as_ref()`).

use std::error::Error as StdError;
use std::fmt;
use std::io::Write;
use std::sync::Arc;

/// Any error that can cross threads.
pub type BoxError = Box<dyn StdError + Send + Sync + 'static>;

/// An error carrying a suggestion of what to do next. It holds any error,
/// so a room's typed error keeps its type (and its causes) under the hint;
/// `render` finds it anywhere along the cause chain.
#[derive(Debug)]
pub struct Hinted {
    /// What went wrong (and where).
    pub error: BoxError,
    /// What the user can do about it (none: the error is shown alone).
    pub hint: Option<String>,
}

impl Hinted {
    /// `error` with the suggestion `hint`.
    pub fn new(error: impl Into<BoxError>, hint: impl Into<String>) -> Self {
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

/// Attach a hint to any error (a message: `hint("…".to_string(), …)`).
pub fn hint(error: impl Into<BoxError>, hint: impl Into<String>) -> Hinted {
    Hinted::new(error, hint)
}

/// An error made once and returned to every caller that asks again (a
/// context walk or a sandbox probe kept in a `OnceLock`), with its cause
/// chain and hint intact: formatting it into a `String` kept neither.
/// Transparent: it shows as the error it holds, its causes are that error's.
#[derive(Debug, Clone)]
pub struct Shared(Arc<dyn StdError + Send + Sync + 'static>);

impl Shared {
    /// Keep `error` for every caller.
    pub fn new(error: impl Into<BoxError>) -> Self {
        Shared(Arc::from(error.into()))
    }

    /// The error again, for one more caller.
    pub fn error(&self) -> Shared {
        self.clone()
    }

    /// The error it holds.
    pub fn inner(&self) -> &(dyn StdError + 'static) {
        &*self.0
    }
}

impl fmt::Display for Shared {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&*self.0, f)
    }
}

impl StdError for Shared {
    fn source(&self) -> Option<&(dyn StdError + 'static)> {
        self.0.source()
    }
}

/// Whether `err` comes from writing to a closed pipe (the reader exited).
pub fn is_broken_pipe(err: &(dyn StdError + 'static)) -> bool {
    chain(err).any(|c| {
        c.downcast_ref::<std::io::Error>()
            .is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe)
    })
}

/// `err` and its causes, outermost first.
pub fn chain<'e>(
    err: &'e (dyn StdError + 'static),
) -> impl Iterator<Item = &'e (dyn StdError + 'static)> + 'e {
    std::iter::successors(Some(err), |e| (*e).source())
}

/// The error a transparent wrapper holds (a [`Shared`], a [`Hinted`], a
/// room's `#[error(transparent)]` variant): it shows as that error, whose
/// causes are its own, so the held error is no link of the chain. A room
/// with transparent variants names them here (one line).
fn held<'e>(e: &'e (dyn StdError + 'static)) -> Option<&'e (dyn StdError + 'static)> {
    if let Some(s) = e.downcast_ref::<Shared>() {
        return Some(s.inner());
    }
    if let Some(h) = e.downcast_ref::<Hinted>() {
        return Some(&*h.error);
    }
    if let Some(e) = e.downcast_ref::<crate::engine::Error>() {
        return e.held();
    }
    if let Some(e) = e.downcast_ref::<crate::engine::step::Error>() {
        return e.held();
    }
    None
}

/// Every error along `err`'s chain, each followed by the ones it holds
/// transparently: where a typed cause (a refused cache blob) is looked for.
pub fn links<'e>(
    err: &'e (dyn StdError + 'static),
) -> impl Iterator<Item = &'e (dyn StdError + 'static)> + 'e {
    chain(err).flat_map(|c| std::iter::successors(Some(c), |e| held(*e)))
}

/// The hint one error carries: a [`Hinted`]'s, or a room's typed error's
/// own, else the one of the error it holds transparently (which is no link
/// of the chain). A room's `hint()` may call it for its own transparent
/// variants that `held` does not name.
pub fn hint_of(cause: &(dyn StdError + 'static)) -> Option<String> {
    own_hint(cause).or_else(|| held(cause).and_then(hint_of))
}

fn own_hint(cause: &(dyn StdError + 'static)) -> Option<String> {
    if let Some(h) = cause.downcast_ref::<Hinted>() {
        return h.hint.clone();
    }
    if let Some(e) = cause.downcast_ref::<crate::attest::Error>() {
        return e.hint();
    }
    if let Some(e) = cause.downcast_ref::<crate::diff::Error>() {
        return e.hint();
    }
    if let Some(e) = cause.downcast_ref::<crate::publish::Error>() {
        return e.hint();
    }
    if let Some(e) = cause.downcast_ref::<crate::cache::Error>() {
        return e.hint();
    }
    if let Some(e) = cause.downcast_ref::<crate::engine::Error>() {
        return e.hint();
    }
    if let Some(e) = cause.downcast_ref::<crate::engine::step::Error>() {
        return e.hint();
    }
    None
}

/// Print `err` with its cause chain and any hint found along the chain.
pub fn render(err: &(dyn StdError + 'static), out: &mut dyn Write) {
    let _ = writeln!(out, "error: {err}");
    let hints: Vec<String> = chain(err).filter_map(hint_of).collect();
    let top = err.to_string();
    for cause in chain(err).skip(1) {
        let text = cause.to_string();
        if !text.is_empty() && !top.ends_with(&text) {
            let _ = writeln!(out, "  Caused by: {text}");
        }
    }
    for h in hints {
        let _ = writeln!(out, "\nhint: {h}");
    }
}

/// `e` and its causes on one line, `: `-separated (as a warning says it).
pub fn one_line(e: &(dyn StdError + 'static)) -> String {
    chain(e)
        .map(|c| c.to_string())
        .collect::<Vec<_>>()
        .join(": ")
}

/// What [`render`] prints for `e`, as a string (the rooms' error tests).
#[cfg(test)]
pub(crate) fn rendered(e: &(dyn StdError + 'static)) -> String {
    let mut out = Vec::new();
    render(e, &mut out);
    String::from_utf8(out).expect("render writes UTF-8")
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A room's error, as thiserror makes them.
    #[derive(Debug, thiserror::Error)]
    enum Room {
        #[error("reading the context")]
        Read(#[source] std::io::Error),
        #[error("step 3/4")]
        Step(#[source] Shared),
        #[error("reading the flags")]
        Flags(#[source] crate::attest::Error),
    }

    #[test]
    fn a_shared_error_keeps_its_causes_and_hint_for_every_caller() {
        let inner = hint(
            Room::Read(std::io::Error::other("permission denied")),
            "check the directory's permissions",
        );
        let shared = Shared::new(inner);
        for _ in 0..2 {
            let text = rendered(&Room::Step(shared.error()));
            assert_eq!(
                text,
                "error: step 3/4\n  Caused by: reading the context\n  Caused by: permission denied\n\nhint: check the directory's permissions\n",
                "{text}"
            );
        }
    }

    #[test]
    fn a_typed_room_error_brings_its_hint() {
        let e = Room::Flags(crate::attest::Error::NotBool {
            flag: "--sbom",
            value: "maybe".into(),
        });
        assert_eq!(
            rendered(&e),
            "error: reading the flags\n  Caused by: --sbom: `maybe` is not true or false\n\nhint: write true or false\n"
        );
    }

    #[test]
    fn a_broken_pipe_is_seen_below_the_top() {
        let e = Room::Read(std::io::ErrorKind::BrokenPipe.into());
        assert!(is_broken_pipe(&e));
        assert!(!is_broken_pipe(&Room::Read(std::io::Error::other("x"))));
    }
}
