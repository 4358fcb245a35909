//! The isolation ladder: what this machine allows (sysctls, subordinate
//! ids, map tools, fuse-overlayfs), a live check that runs the real
//! sequence (fork, unshare, maps, overlay with `userxattr`, opaque dir),
//! and the choice of mode for a requested [`Isolation`]. Never weaker than
//! asked: an unavailable mode is an error that says why.

use super::idmap::{self, Identity, IdentityKind, SubRange};
use super::protocol::{Request, RequestKind};
use super::{state, Chosen, Isolation, SandboxError};
use serde::Serialize;
use std::path::{Path, PathBuf};

/// How strong a mode is, for people.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum Strength {
    /// Works and is chosen by `auto`.
    Preferred,
    /// Works, only on request.
    OnRequest,
    /// Does not work here.
    Unavailable,
}

/// One sysctl that can block user namespaces, and its value (`None` = absent).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Sysctl {
    /// Dotted name.
    pub name: &'static str,
    /// Value, trimmed; `None` when the file does not exist.
    pub value: Option<String>,
}

/// One rung of the ladder.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Rung {
    /// The mode.
    pub isolation: Isolation,
    /// Whether it can be used.
    pub strength: Strength,
    /// Why (or why not).
    pub why: String,
}

/// Everything the probe found.
#[derive(Debug, Clone, Serialize)]
pub struct Probe {
    /// Effective uid of cairn.
    pub uid: u32,
    /// The id mapping steps will use.
    pub identity: Identity,
    /// Subordinate uid range of the user, if any.
    pub subuid: Option<(u32, u32)>,
    /// Subordinate gid range of the user, if any.
    pub subgid: Option<(u32, u32)>,
    /// `newuidmap` on PATH.
    pub newuidmap: Option<PathBuf>,
    /// `newgidmap` on PATH.
    pub newgidmap: Option<PathBuf>,
    /// `fuse-overlayfs` on PATH.
    pub fuse_overlayfs: Option<PathBuf>,
    /// Relevant sysctls.
    pub sysctls: Vec<Sysctl>,
    /// `None` if a user namespace with the maps could be entered, else why not.
    pub userns_error: Option<String>,
    /// `None` if overlayfs works in it (mount, whiteout, opaque dir), else why not.
    pub overlay_error: Option<String>,
    /// The ladder, strongest first.
    pub ladder: Vec<Rung>,
}

fn sysctl(name: &'static str) -> Sysctl {
    let path = format!("/proc/sys/{}", name.replace('.', "/"));
    Sysctl {
        name,
        value: std::fs::read_to_string(path)
            .ok()
            .map(|v| v.trim().to_owned()),
    }
}

/// Probe the machine, spawning `helper` once for the live check.
pub fn run(state_dir: &Path, helper: &Path) -> Probe {
    run_with(state_dir, helper, Identity::detect())
}

/// [`run`] with a given identity plan.
pub fn run_with(state_dir: &Path, helper: &Path, identity: Identity) -> Probe {
    let uid = rustix::process::getuid().as_raw();
    let name = idmap::host_user_name(uid).unwrap_or_default();
    let read = |p| std::fs::read_to_string(p).unwrap_or_default();
    let pair = |r: Option<SubRange>| r.map(|r| (r.start, r.count));
    let subuid = pair(idmap::parse_subid(&read("/etc/subuid"), &name, uid));
    let subgid = pair(idmap::parse_subid(&read("/etc/subgid"), &name, uid));
    let sysctls = vec![
        sysctl("kernel.unprivileged_userns_clone"),
        sysctl("user.max_user_namespaces"),
        sysctl("kernel.apparmor_restrict_unprivileged_userns"),
    ];
    let (userns_error, overlay_error) = live_check(state_dir, helper, &identity);
    let mut probe = Probe {
        uid,
        identity,
        subuid,
        subgid,
        newuidmap: idmap::which("newuidmap"),
        newgidmap: idmap::which("newgidmap"),
        fuse_overlayfs: idmap::which("fuse-overlayfs"),
        sysctls,
        userns_error,
        overlay_error,
        ladder: Vec::new(),
    };
    probe.ladder = ladder(&probe);
    probe
}

fn live_check(
    state_dir: &Path,
    helper: &Path,
    identity: &Identity,
) -> (Option<String>, Option<String>) {
    let run = match state::RunDir::create(state_dir) {
        Ok(r) => r,
        Err(e) => {
            let msg = format!("{e}");
            return (Some(msg.clone()), Some(msg));
        }
    };
    let request = Request {
        kind: RequestKind::Probe,
        identity: identity.clone(),
        state_dir: state_dir.to_path_buf(),
        run_dir: run.path().to_path_buf(),
        use_userns: true,
        rootfs: super::protocol::RootfsKind::Overlay,
    };
    let mut output = Vec::new();
    match super::call_helper(helper, &request, run.path(), &mut |l| output.push(l), None) {
        Err(e) => (Some(e.to_string()), None),
        Ok(r) if r.userns_error => (r.error, None),
        Ok(r) => (None, r.error),
    }
}

fn identity_text(p: &Probe) -> String {
    match p.identity.kind {
        IdentityKind::Root => "running as root, all ids mapped (0 0 4294967295)".into(),
        IdentityKind::Subordinate => {
            let (s, c) = p.subuid.unwrap_or((0, 0));
            format!(
                "uid {} as namespace root plus {c} subordinate ids from {s}",
                p.uid
            )
        }
        IdentityKind::Single => format!(
            "only uid {} is mapped ({}): chown to other ids is recorded, not applied; setuid to other ids fails",
            p.uid,
            if p.uid == 0 {
                "single mapping requested"
            } else if p.subuid.is_none() {
                "no /etc/subuid range"
            } else {
                "newuidmap/newgidmap missing"
            }
        ),
    }
}

fn ladder(p: &Probe) -> Vec<Rung> {
    let overlay = match (&p.userns_error, &p.overlay_error) {
        (Some(e), _) => Rung {
            isolation: Isolation::Overlay,
            strength: Strength::Unavailable,
            why: format!("user namespaces are blocked: {e}"),
        },
        (None, Some(e)) => Rung {
            isolation: Isolation::Overlay,
            strength: Strength::Unavailable,
            why: format!("overlayfs does not work in a user namespace: {e}"),
        },
        (None, None) => Rung {
            isolation: Isolation::Overlay,
            strength: Strength::Preferred,
            why: format!(
                "user namespace ({}) and kernel overlayfs with userxattr work",
                identity_text(p)
            ),
        },
    };
    let none = Rung {
        isolation: Isolation::None,
        strength: if p.uid == 0 {
            Strength::OnRequest
        } else {
            Strength::Unavailable
        },
        why: if p.uid == 0 {
            "real root without a user namespace; only for throwaway build containers, never automatic".into()
        } else {
            "needs root".into()
        },
    };
    let fuse = fuse_rung(p, overlay.strength == Strength::Preferred);
    let fuse_or_overlay =
        overlay.strength == Strength::Preferred || fuse.strength == Strength::Preferred;
    vec![overlay, fuse, copy_rung(p, fuse_or_overlay), none]
}

/// Copy: works wherever the user namespace does; chosen by `auto` only
/// when neither overlay works.
fn copy_rung(p: &Probe, an_overlay_works: bool) -> Rung {
    let (strength, why) = match (&p.userns_error, an_overlay_works) {
        (Some(e), _) => (Strength::Unavailable, format!("user namespaces are blocked: {e}")),
        (None, true) => (
            Strength::OnRequest,
            "copies the rootfs and compares it per step (slow); an overlay works".into(),
        ),
        (None, false) => (
            Strength::Preferred,
            format!(
                "no overlay can be mounted in a user namespace: copies the rootfs and compares it per step, slow ({})",
                identity_text(p)
            ),
        ),
    };
    Rung {
        isolation: Isolation::Copy,
        strength,
        why,
    }
}

/// fuse-overlayfs: preferred only when kernel overlayfs fails. Checked
/// statically (binary, /dev/fuse openable, user namespace works); the
/// mount itself is first tried by the step.
fn fuse_rung(p: &Probe, kernel_overlay_works: bool) -> Rung {
    let dev_fuse = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/fuse")
        .map(drop);
    let why_not = match (&p.userns_error, &p.fuse_overlayfs, dev_fuse) {
        (Some(e), _, _) => Some(format!("user namespaces are blocked: {e}")),
        (None, None, _) => Some("fuse-overlayfs is not installed".to_owned()),
        (None, Some(_), Err(e)) => Some(format!("/dev/fuse cannot be opened: {e}")),
        (None, Some(_), Ok(())) => None,
    };
    let (strength, why) = match (why_not, kernel_overlay_works) {
        (Some(w), _) => (Strength::Unavailable, w),
        (None, true) => (
            Strength::OnRequest,
            "fuse-overlayfs and /dev/fuse present; slower than kernel overlayfs, which works".into(),
        ),
        (None, false) => (
            Strength::Preferred,
            format!("kernel overlayfs fails in a user namespace; fuse-overlayfs and /dev/fuse present ({})", identity_text(p)),
        ),
    };
    Rung {
        isolation: Isolation::FuseOverlay,
        strength,
        why,
    }
}

impl Probe {
    /// The mode for `asked`, or why it cannot be had.
    pub fn choose(&self, asked: Isolation) -> Result<Chosen, SandboxError> {
        let pick = |r: &Rung| Chosen {
            isolation: r.isolation,
            identity: if r.isolation == Isolation::None {
                IdentityKind::Root
            } else {
                self.identity.kind
            },
            why: r.why.clone(),
        };
        if asked == Isolation::Auto {
            if let Some(r) = self
                .ladder
                .iter()
                .find(|r| r.strength == Strength::Preferred)
            {
                return Ok(pick(r));
            }
            let why = self
                .ladder
                .iter()
                .map(|r| format!("{}: {}", r.isolation.name(), r.why))
                .collect::<Vec<_>>()
                .join("; ");
            return Err(SandboxError::Unavailable { asked, why });
        }
        match self.ladder.iter().find(|r| r.isolation == asked) {
            Some(r) if r.strength != Strength::Unavailable => Ok(pick(r)),
            Some(r) => Err(SandboxError::Unavailable {
                asked,
                why: r.why.clone(),
            }),
            None => Err(SandboxError::Unavailable {
                asked,
                why: "unknown mode".into(),
            }),
        }
    }

    /// The mode `auto` picks, if any.
    pub fn auto(&self) -> Option<&Rung> {
        self.ladder
            .iter()
            .find(|r| r.strength == Strength::Preferred)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn probe(uid: u32, userns: Option<&str>, overlay: Option<&str>) -> Probe {
        let mut p = Probe {
            uid,
            identity: Identity::plan(uid, uid, None, None, false),
            subuid: None,
            subgid: None,
            newuidmap: None,
            newgidmap: None,
            fuse_overlayfs: None,
            sysctls: vec![],
            userns_error: userns.map(str::to_owned),
            overlay_error: overlay.map(str::to_owned),
            ladder: vec![],
        };
        p.ladder = ladder(&p);
        p
    }

    #[test]
    fn auto_picks_overlay_when_it_works() {
        let c = probe(1000, None, None).choose(Isolation::Auto).unwrap();
        assert_eq!(c.isolation, Isolation::Overlay);
        assert_eq!(c.identity, IdentityKind::Single);
        assert!(
            c.why.contains("chown to other ids is recorded"),
            "{}",
            c.why
        );
    }

    #[test]
    fn auto_falls_back_to_copy_without_any_overlay() {
        let mut p = probe(1000, None, Some("EINVAL"));
        p.fuse_overlayfs = None;
        p.ladder = ladder(&p);
        assert_eq!(
            p.choose(Isolation::Auto).unwrap().isolation,
            Isolation::Copy
        );
    }

    #[test]
    fn never_weaker_than_asked() {
        let p = probe(0, Some("unshare: Operation not permitted"), None);
        let e = p.choose(Isolation::Auto).unwrap_err().to_string();
        assert!(e.contains("user namespaces are blocked"), "{e}");
        // Auto never falls to `none`, even as root; explicit `none` works as root.
        assert_eq!(
            p.choose(Isolation::None).unwrap().isolation,
            Isolation::None
        );
        assert!(probe(1000, None, None).choose(Isolation::None).is_err());
        assert!(probe(0, None, Some("EINVAL"))
            .choose(Isolation::Overlay)
            .is_err());
        assert_eq!(
            probe(0, None, None)
                .choose(Isolation::Copy)
                .unwrap()
                .isolation,
            Isolation::Copy
        );
        assert!(probe(0, Some("EPERM"), None)
            .choose(Isolation::Copy)
            .is_err());
    }
}
