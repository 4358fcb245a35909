//! What `cairn build --ulimit` and `--shm-size` set in a RUN step: resource
//! limits (`setrlimit` in the command process, before it drops to `USER`)
//! and the size of the step's `/dev/shm` tmpfs. Names, syntax and units are
//! Docker's (`docker run --ulimit nofile=1024:2048`, `--shm-size 64m`).

use serde::{Deserialize, Serialize};

/// The size of `/dev/shm` when `--shm-size` is not given: 64 MiB, Docker's
/// and BuildKit's default.
pub const DEFAULT_SHM_SIZE: u64 = 64 << 20;

/// One `--ulimit NAME=SOFT[:HARD]`; `-1` is unlimited.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Ulimit {
    /// Docker's name (`nofile`, `nproc`, …).
    pub name: String,
    /// Soft limit.
    pub soft: i64,
    /// Hard limit.
    pub hard: i64,
}

/// Docker's ulimit names and their resources (go-units `ulimit.go`).
const RESOURCES: [(&str, libc::__rlimit_resource_t); 15] = [
    ("core", libc::RLIMIT_CORE),
    ("cpu", libc::RLIMIT_CPU),
    ("data", libc::RLIMIT_DATA),
    ("fsize", libc::RLIMIT_FSIZE),
    ("locks", libc::RLIMIT_LOCKS),
    ("memlock", libc::RLIMIT_MEMLOCK),
    ("msgqueue", libc::RLIMIT_MSGQUEUE),
    ("nice", libc::RLIMIT_NICE),
    ("nofile", libc::RLIMIT_NOFILE),
    ("nproc", libc::RLIMIT_NPROC),
    ("rss", libc::RLIMIT_RSS),
    ("rtprio", libc::RLIMIT_RTPRIO),
    ("rttime", libc::RLIMIT_RTTIME),
    ("sigpending", libc::RLIMIT_SIGPENDING),
    ("stack", libc::RLIMIT_STACK),
];

/// The names `--ulimit` accepts.
pub fn names() -> Vec<&'static str> {
    RESOURCES.iter().map(|(n, _)| *n).collect()
}

/// What is wrong with a `--ulimit` value (the caller names the flag).
#[derive(Debug, thiserror::Error)]
pub enum ParseError {
    /// No `=`.
    #[error("`{0}` is not NAME=SOFT[:HARD]")]
    Form(String),
    /// A name the kernel has no limit of.
    #[error("unknown limit `{name}`; known: {}", names().join(", "))]
    UnknownName {
        /// The name written.
        name: String,
    },
    /// A value that is not a number or -1.
    #[error("`{0}` is not a limit (a number, or -1 for unlimited)")]
    NotALimit(String),
    /// The soft limit above the hard one.
    #[error("the soft limit {soft} of {name} is above its hard limit {hard}")]
    SoftAboveHard {
        /// The limit's name.
        name: String,
        /// The soft value.
        soft: i64,
        /// The hard value.
        hard: i64,
    },
}

impl Ulimit {
    /// Parse `NAME=SOFT[:HARD]` (HARD defaults to SOFT). Errors say what is wrong, without the flag.
    pub fn parse(s: &str) -> Result<Ulimit, ParseError> {
        let (name, values) = s
            .split_once('=')
            .ok_or_else(|| ParseError::Form(s.to_owned()))?;
        if !RESOURCES.iter().any(|(n, _)| *n == name) {
            return Err(ParseError::UnknownName {
                name: name.to_owned(),
            });
        }
        let num = |v: &str| {
            v.parse::<i64>()
                .ok()
                .filter(|n| *n >= -1)
                .ok_or_else(|| ParseError::NotALimit(v.to_owned()))
        };
        let (soft, hard) = match values.split_once(':') {
            Some((a, b)) => (num(a)?, num(b)?),
            None => (num(values)?, num(values)?),
        };
        // -1 (unlimited) is above every number.
        let above = |a: i64, b: i64| b != -1 && (a == -1 || a > b);
        if above(soft, hard) {
            return Err(ParseError::SoftAboveHard {
                name: name.to_owned(),
                soft,
                hard,
            });
        }
        Ok(Ulimit {
            name: name.to_owned(),
            soft,
            hard,
        })
    }

    /// As written on the command line (for cache keys).
    pub fn display(&self) -> String {
        format!("{}={}:{}", self.name, self.soft, self.hard)
    }
}

/// This process's hard limit of `name`, when the command may not exceed it:
/// a process in a user namespace cannot raise a hard limit (the capability
/// that allows it counts in the initial namespace only), so a step asking
/// for more would fail at its RUN. `None`: within the limit.
pub fn above_own_hard_limit(u: &Ulimit) -> Option<String> {
    let (_, resource) = RESOURCES.iter().find(|(n, _)| *n == u.name)?;
    let mut have = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: valid out pointer, known resource.
    if unsafe { libc::getrlimit(*resource, &mut have) } != 0 || have.rlim_max == libc::RLIM_INFINITY
    {
        return None;
    }
    (rlim(u.hard) > have.rlim_max).then(|| have.rlim_max.to_string())
}

fn rlim(v: i64) -> libc::rlim_t {
    if v < 0 {
        libc::RLIM_INFINITY
    } else {
        v as libc::rlim_t
    }
}

/// Set `limits` on the calling process (inherited by what it execs).
// String: helper-process code; its error reaches the caller as text (Response::error).
pub(crate) fn apply(limits: &[Ulimit]) -> Result<(), String> {
    for l in limits {
        let Some((_, resource)) = RESOURCES.iter().find(|(n, _)| *n == l.name) else {
            return Err(format!("unknown ulimit `{}`", l.name));
        };
        let want = libc::rlimit {
            rlim_cur: rlim(l.soft),
            rlim_max: rlim(l.hard),
        };
        // SAFETY: a valid rlimit struct for a known resource.
        if unsafe { libc::setrlimit(*resource, &want) } != 0 {
            let err = std::io::Error::last_os_error();
            let mut have = libc::rlimit {
                rlim_cur: 0,
                rlim_max: 0,
            };
            // SAFETY: valid out pointer.
            unsafe { libc::getrlimit(*resource, &mut have) };
            let shown = |v: libc::rlim_t| {
                if v == libc::RLIM_INFINITY {
                    "unlimited".to_owned()
                } else {
                    v.to_string()
                }
            };
            return Err(format!(
                "--ulimit {}: {err}; cairn's own hard limit is {} and an unprivileged process cannot raise it \
                 (lower the value, or raise the hard limit of the shell that starts cairn)",
                l.display(),
                shown(have.rlim_max)
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_docker_syntax() {
        let u = Ulimit::parse("nofile=1024:2048").unwrap();
        assert_eq!((u.name.as_str(), u.soft, u.hard), ("nofile", 1024, 2048));
        let u = Ulimit::parse("core=0").unwrap();
        assert_eq!((u.soft, u.hard), (0, 0));
        let u = Ulimit::parse("memlock=-1:-1").unwrap();
        assert_eq!((u.soft, u.hard), (-1, -1));
        assert!(Ulimit::parse("nofile=10:-1").is_ok());
        for (bad, msg) in [
            ("nofile", "is not NAME=SOFT[:HARD]"),
            ("files=1", "unknown limit `files`"),
            ("nofile=x", "`x` is not a limit"),
            ("nofile=2048:1024", "above its hard limit"),
            ("nofile=-1:1024", "above its hard limit"),
            ("nofile=-2", "is not a limit"),
        ] {
            let e = Ulimit::parse(bad).unwrap_err();
            assert!(e.to_string().contains(msg), "{bad}: {e}");
        }
    }
}
