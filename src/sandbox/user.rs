//! `USER` resolution against the rootfs' own /etc/passwd and /etc/group
//! (never the host's), with Docker's rules: a name must exist; a numeric uid
//! need not (then gid 0 and HOME `/`); supplementary groups come from
//! /etc/group membership. Parsed by [`crate::image::users`].

use crate::image::users::{parse_group, parse_passwd, Group, Passwd};

/// The resolved identity of the step's command.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct User {
    /// uid.
    pub uid: u32,
    /// Primary gid.
    pub gid: u32,
    /// Supplementary gids (including the primary one), sorted, deduplicated.
    pub groups: Vec<u32>,
    /// Home directory (for `HOME` when the environment has none).
    pub home: String,
}

/// Why `USER` cannot be resolved.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum UserError {
    /// A user name with no /etc/passwd entry.
    #[error("unable to find user `{0}`: no matching entries in /etc/passwd")]
    NoUser(String),
    /// A group name with no /etc/group entry.
    #[error("unable to find group `{0}`: no matching entries in /etc/group")]
    NoGroup(String),
}

/// Resolve `spec` (`""`, `name`, `uid`, `name:group`, `uid:gid`, ...) with
/// the given passwd and group contents.
pub fn resolve(spec: &str, passwd: &str, group: &str) -> Result<User, UserError> {
    resolve_in(spec, &parse_passwd(passwd), &parse_group(group))
}

/// [`resolve`] against parsed entries (`USER` for `WORKDIR` ownership too).
pub fn resolve_in(spec: &str, users: &[Passwd], groups: &[Group]) -> Result<User, UserError> {
    let spec = spec.trim();
    let (u, g) = match spec.split_once(':') {
        Some((u, g)) => (u, Some(g)),
        None => (spec, None),
    };
    let u = if u.is_empty() { "0" } else { u };
    let entry = match u.parse::<u32>() {
        Ok(uid) => users
            .iter()
            .find(|p| p.uid == uid)
            .cloned()
            .or(Some(Passwd {
                name: String::new(),
                uid,
                gid: 0,
                home: "/".into(),
            })),
        Err(_) => users.iter().find(|p| p.name == u).cloned(),
    }
    .ok_or_else(|| UserError::NoUser(u.to_owned()))?;
    let gid = match g {
        None | Some("") => entry.gid,
        Some(g) => match g.parse::<u32>() {
            Ok(gid) => gid,
            Err(_) => groups
                .iter()
                .find(|x| x.name == g)
                .map(|x| x.gid)
                .ok_or_else(|| UserError::NoGroup(g.to_owned()))?,
        },
    };
    let mut gids = vec![gid];
    // An explicit group replaces the supplementary list, as in Docker.
    if g.is_none() && !entry.name.is_empty() {
        gids.extend(
            groups
                .iter()
                .filter(|x| x.members.contains(&entry.name))
                .map(|x| x.gid),
        );
    }
    gids.sort_unstable();
    gids.dedup();
    Ok(User {
        uid: entry.uid,
        gid,
        groups: gids,
        home: if entry.home.is_empty() {
            "/".into()
        } else {
            entry.home
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const PASSWD: &str = "root:x:0:0:root:/root:/bin/sh\nnode:x:1000:1000::/home/node:/bin/sh\nnextjs:x:1001:65533::/home/nextjs:/sbin/nologin\nbroken\n";
    const GROUP: &str = "root:x:0:root\nnode:x:1000:node\nnodejs:x:1001:nextjs\nnogroup:x:65533:\n";

    #[test]
    fn resolves_names_numbers_and_groups() {
        let root = resolve("", PASSWD, GROUP).unwrap();
        assert_eq!((root.uid, root.gid, root.home.as_str()), (0, 0, "/root"));
        let n = resolve("nextjs", PASSWD, GROUP).unwrap();
        assert_eq!((n.uid, n.gid), (1001, 65533));
        assert_eq!(n.groups, vec![1001, 65533]);
        let n = resolve("nextjs:nodejs", PASSWD, GROUP).unwrap();
        assert_eq!((n.gid, n.groups.clone()), (1001, vec![1001]));
        let x = resolve("4242", PASSWD, GROUP).unwrap();
        assert_eq!((x.uid, x.gid, x.home.as_str()), (4242, 0, "/"));
        let x = resolve("1000:7", PASSWD, GROUP).unwrap();
        assert_eq!((x.uid, x.gid), (1000, 7));
    }

    #[test]
    fn unknown_names_are_errors() {
        assert_eq!(
            resolve("ghost", PASSWD, GROUP),
            Err(UserError::NoUser("ghost".into()))
        );
        assert_eq!(
            resolve("node:ghosts", PASSWD, GROUP),
            Err(UserError::NoGroup("ghosts".into()))
        );
    }
}
