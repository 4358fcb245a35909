//! uid/gid maps of the sandbox user namespace: which identity we can have,
//! `/etc/subuid` parsing, and writing the maps (directly or through
//! `newuidmap`/`newgidmap`, never through `unshare(1)`).

use serde::{Deserialize, Serialize};
use std::process::Command;

/// Which kind of mapping the sandbox uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum IdentityKind {
    /// Real root: `0 0 4294967295` written directly; container id = host id.
    Root,
    /// `0 UID 1` + `1 SUBID COUNT` through newuidmap/newgidmap.
    Subordinate,
    /// Only `0 UID 1`: chown to any other id fails inside the step.
    Single,
}

/// One line of a uid_map/gid_map: `inner outer count`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct IdRange {
    /// First id inside the namespace.
    pub inner: u32,
    /// First id outside.
    pub outer: u32,
    /// How many ids.
    pub count: u32,
}

/// The mapping the sandbox will install.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Identity {
    /// The kind.
    pub kind: IdentityKind,
    /// uid_map lines.
    pub uids: Vec<IdRange>,
    /// gid_map lines.
    pub gids: Vec<IdRange>,
}

/// A subordinate id range granted to a user.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SubRange {
    /// First host id.
    pub start: u32,
    /// Number of ids.
    pub count: u32,
}

/// The first range in `/etc/subuid`-format `text` for `user` (by name or by
/// numeric id); that is the one shadow's tools and util-linux use.
pub fn parse_subid(text: &str, user: &str, id: u32) -> Option<SubRange> {
    let id = id.to_string();
    text.lines().find_map(|line| {
        let line = line.trim();
        if line.starts_with('#') {
            return None;
        }
        let mut parts = line.split(':');
        let (name, start, count) = (parts.next()?, parts.next()?, parts.next()?);
        if parts.next().is_some() || (name != user && name != id) {
            return None;
        }
        let start = start.trim().parse().ok()?;
        let count: u32 = count.trim().parse().ok()?;
        (count > 0).then_some(SubRange { start, count })
    })
}

impl Identity {
    /// The identity for a caller with these ids and (optional) subordinate
    /// ranges; `map_tools` says whether newuidmap and newgidmap exist.
    pub fn plan(
        uid: u32,
        gid: u32,
        subuid: Option<SubRange>,
        subgid: Option<SubRange>,
        map_tools: bool,
    ) -> Identity {
        if uid == 0 {
            let all = vec![IdRange {
                inner: 0,
                outer: 0,
                count: u32::MAX,
            }];
            return Identity {
                kind: IdentityKind::Root,
                uids: all.clone(),
                gids: all,
            };
        }
        let single = |id| IdRange {
            inner: 0,
            outer: id,
            count: 1,
        };
        match (subuid, subgid, map_tools) {
            (Some(u), Some(g), true) => {
                // ids 1.. must not overflow u32 inside.
                let sub = |r: SubRange| IdRange {
                    inner: 1,
                    outer: r.start,
                    count: r.count.min(u32::MAX - 1),
                };
                Identity {
                    kind: IdentityKind::Subordinate,
                    uids: vec![single(uid), sub(u)],
                    gids: vec![single(gid), sub(g)],
                }
            }
            _ => Identity::plan_single(uid, gid),
        }
    }

    /// Only `0 UID 1` / `0 GID 1`, whatever else could be mapped.
    pub fn plan_single(uid: u32, gid: u32) -> Identity {
        let single = |id| IdRange {
            inner: 0,
            outer: id,
            count: 1,
        };
        Identity {
            kind: IdentityKind::Single,
            uids: vec![single(uid)],
            gids: vec![single(gid)],
        }
    }

    /// Plan the identity for the current process from `/etc/subuid`,
    /// `/etc/subgid`, `/etc/passwd` and `PATH`.
    pub fn detect() -> Identity {
        let uid = rustix::process::getuid().as_raw();
        let gid = rustix::process::getgid().as_raw();
        if uid == 0 {
            return Identity::plan(0, gid, None, None, true);
        }
        let name = host_user_name(uid).unwrap_or_default();
        let read = |p| std::fs::read_to_string(p).unwrap_or_default();
        let subuid = parse_subid(&read("/etc/subuid"), &name, uid);
        let subgid = parse_subid(&read("/etc/subgid"), &name, uid);
        let tools = which("newuidmap").is_some() && which("newgidmap").is_some();
        Identity::plan(uid, gid, subuid, subgid, tools)
    }

    /// Whether container gid `gid` is mapped.
    pub fn maps_gid(&self, gid: u32) -> bool {
        self.gids
            .iter()
            .any(|r| gid >= r.inner && gid - r.inner < r.count)
    }

    /// Install the maps on process `pid` (which has just unshared its user
    /// namespace and waits). Runs in the host namespace.
    // String: helper-process code; its error reaches the caller as text (Response::error).
    pub fn apply(&self, pid: i32) -> Result<(), String> {
        match self.kind {
            IdentityKind::Root => {
                write_map(pid, "uid_map", &self.uids)?;
                write_map(pid, "gid_map", &self.gids)
            }
            IdentityKind::Single => {
                // An unprivileged gid_map write needs setgroups denied first.
                std::fs::write(format!("/proc/{pid}/setgroups"), "deny")
                    .map_err(|e| format!("cannot deny setgroups for pid {pid}: {e}"))?;
                write_map(pid, "uid_map", &self.uids)?;
                write_map(pid, "gid_map", &self.gids)
            }
            IdentityKind::Subordinate => {
                run_map_tool("newuidmap", pid, &self.uids)?;
                run_map_tool("newgidmap", pid, &self.gids)
            }
        }
    }
}

fn map_text(ranges: &[IdRange]) -> String {
    ranges
        .iter()
        .map(|r| format!("{} {} {}\n", r.inner, r.outer, r.count))
        .collect()
}

// String: helper-process code; its error reaches the caller as text (Response::error).
fn write_map(pid: i32, file: &str, ranges: &[IdRange]) -> Result<(), String> {
    let path = format!("/proc/{pid}/{file}");
    std::fs::write(&path, map_text(ranges)).map_err(|e| format!("cannot write {path}: {e}"))
}

// String: helper-process code; its error reaches the caller as text (Response::error).
fn run_map_tool(tool: &str, pid: i32, ranges: &[IdRange]) -> Result<(), String> {
    let mut cmd = Command::new(tool);
    cmd.arg(pid.to_string());
    for r in ranges {
        cmd.args([
            r.inner.to_string(),
            r.outer.to_string(),
            r.count.to_string(),
        ]);
    }
    let out = cmd
        .output()
        .map_err(|e| format!("cannot run {tool}: {e}"))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "{tool} failed ({}): {}",
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}

/// The login name of host uid `uid` from `/etc/passwd`.
pub fn host_user_name(uid: u32) -> Option<String> {
    let text = std::fs::read_to_string("/etc/passwd").ok()?;
    crate::image::users::parse_passwd(&text)
        .into_iter()
        .find(|p| p.uid == uid)
        .map(|p| p.name)
}

/// The first executable `name` on `PATH`.
pub fn which(name: &str) -> Option<std::path::PathBuf> {
    let path = std::env::var_os(crate::env::PATH)
        .unwrap_or_else(|| "/usr/sbin:/usr/bin:/sbin:/bin".into());
    std::env::split_paths(&path)
        .map(|d| d.join(name))
        .find(|p| rustix::fs::access(p, rustix::fs::Access::EXEC_OK).is_ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subid_first_matching_line_by_name_or_uid() {
        let text = "# comment\nother:1:2\nalice:300000:65536\nalice:165536:65536\n1002:5:5\n";
        assert_eq!(
            parse_subid(text, "alice", 1001),
            Some(SubRange {
                start: 300000,
                count: 65536
            })
        );
        assert_eq!(
            parse_subid(text, "bob", 1002),
            Some(SubRange { start: 5, count: 5 })
        );
        assert_eq!(parse_subid(text, "carol", 7), None);
        assert_eq!(parse_subid("x:bad:1\nx:1:0\n", "x", 9), None);
    }

    #[test]
    fn plans_root_subordinate_and_single() {
        let r = Identity::plan(0, 0, None, None, false);
        assert_eq!(r.kind, IdentityKind::Root);
        assert_eq!(map_text(&r.uids), "0 0 4294967295\n");
        let sub = Some(SubRange {
            start: 300000,
            count: 65536,
        });
        let s = Identity::plan(1002, 1003, sub, sub, true);
        assert_eq!(s.kind, IdentityKind::Subordinate);
        assert_eq!(map_text(&s.uids), "0 1002 1\n1 300000 65536\n");
        assert_eq!(map_text(&s.gids), "0 1003 1\n1 300000 65536\n");
        assert!(s.maps_gid(5) && !s.maps_gid(65537));
        let n = Identity::plan(1002, 1003, sub, sub, false);
        assert_eq!(n.kind, IdentityKind::Single);
        assert!(!n.maps_gid(5));
        assert_eq!(
            Identity::plan(1002, 1003, sub, None, true).kind,
            IdentityKind::Single
        );
    }
}
