//! The CLI's side of [`crate::error`]: the library's rooms return typed
//! errors, the CLI returns `anyhow::Error`; these attach a hint and hand the
//! result on as the CLI's error type.

use crate::error::{BoxError, Hinted};

/// `error` with the suggestion `hint`, as the CLI's error.
pub fn hint(error: impl Into<BoxError>, hint: impl Into<String>) -> anyhow::Error {
    anyhow::Error::new(Hinted::new(error, hint))
}

/// A registry error with what-to-do for the failures the user can fix.
pub fn registry_hinted(
    e: crate::registry::RegistryError,
    reference: &crate::registry::Reference,
) -> anyhow::Error {
    anyhow::Error::new(Hinted::registry(e, reference))
}
