//! Users and groups of an image's own `/etc/passwd` and `/etc/group`, for
//! `COPY --chown=nextjs:nodejs` and `USER`: names always resolve against the
//! stage's rootfs, never the host's.

use crate::image::users::{parse_group, parse_passwd, Group, Passwd};
use std::fmt;

/// The user database of one rootfs.
#[derive(Clone, Debug, Default)]
pub struct UserDb {
    /// Parsed `/etc/passwd`.
    pub users: Vec<Passwd>,
    /// Parsed `/etc/group`.
    pub groups: Vec<Group>,
}

/// A `user[:group]` that does not resolve.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum UserError {
    /// The user name is not in the image's /etc/passwd.
    #[error("unknown user `{0}`: not in the image's /etc/passwd")]
    UnknownUser(String),
    /// The group name is not in the image's /etc/group.
    #[error("unknown group `{0}`: not in the image's /etc/group")]
    UnknownGroup(String),
    /// Empty user part.
    #[error("invalid user spec `{0}`")]
    Invalid(String),
}

/// Numeric owner ids.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Owner {
    /// User id.
    pub uid: u32,
    /// Group id.
    pub gid: u32,
}

impl fmt::Display for Owner {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.uid, self.gid)
    }
}

impl UserDb {
    /// Parse the two files' contents (either may be absent/empty).
    pub fn parse(passwd: &str, group: &str) -> Self {
        UserDb {
            users: parse_passwd(passwd),
            groups: parse_group(group),
        }
    }

    /// The passwd entry of a user given by name or number.
    pub fn user(&self, spec: &str) -> Option<&Passwd> {
        match spec.parse::<u32>() {
            Ok(uid) => self.users.iter().find(|u| u.uid == uid),
            Err(_) => self.users.iter().find(|u| u.name == spec),
        }
    }

    fn group_id(&self, spec: &str) -> Result<u32, UserError> {
        if let Ok(gid) = spec.parse::<u32>() {
            return Ok(gid);
        }
        self.groups
            .iter()
            .find(|g| g.name == spec)
            .map(|g| g.gid)
            .ok_or_else(|| UserError::UnknownGroup(spec.to_owned()))
    }

    /// `COPY --chown`'s `user[:group]` → ids (see [`Self::resolve_chown`]).
    fn resolve(&self, spec: &str) -> Result<Owner, UserError> {
        let (user, group) = match spec.split_once(':') {
            Some((u, g)) => (u, Some(g)),
            None => (spec, None),
        };
        let (uid, primary) = match user.parse::<u32>() {
            // As BuildKit: a numeric user's group is the same number.
            Ok(uid) => (uid, uid),
            Err(_) if user.is_empty() => (0, 0),
            Err(_) => {
                let u = self
                    .user(user)
                    .ok_or_else(|| UserError::UnknownUser(user.to_owned()))?;
                (u.uid, u.gid)
            }
        };
        let gid = match group {
            Some(g) if !g.is_empty() => self.group_id(g)?,
            _ => primary,
        };
        Ok(Owner { uid, gid })
    }

    /// Resolve `COPY --chown` syntax: `user[:group]`, names or ids. As BuildKit:
    /// with only a user, the group id is the *same number* as the uid when the
    /// user is numeric, else the user's primary group.
    pub fn resolve_chown(&self, spec: &str) -> Result<Owner, UserError> {
        if spec.split(':').next().is_some_and(str::is_empty) {
            return Err(UserError::Invalid(spec.to_owned()));
        }
        self.resolve(spec)
    }

    /// Resolve `USER` syntax as the RUN sandbox does for its process
    /// ([`crate::sandbox::user::resolve_in`]): a numeric user missing from
    /// passwd is allowed (gid 0 unless a group is given), a named one must exist.
    pub fn resolve_user(&self, spec: &str) -> Result<Owner, UserError> {
        use crate::sandbox::user::{resolve_in, UserError as Unresolved};
        match resolve_in(spec, &self.users, &self.groups) {
            Ok(u) => Ok(Owner {
                uid: u.uid,
                gid: u.gid,
            }),
            Err(Unresolved::NoUser(n)) => Err(UserError::UnknownUser(n)),
            Err(Unresolved::NoGroup(n)) => Err(UserError::UnknownGroup(n)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const PASSWD: &str = "root:x:0:0:root:/root:/bin/sh\nnode:x:1000:1000:Linux User,,,:/home/node:/bin/sh\nnextjs:x:1001:65533::/home/nextjs:/sbin/nologin\n";
    const GROUP: &str = "root:x:0:root\nnode:x:1000:node\nnodejs:x:1001:\nnogroup:x:65533:\n";

    #[test]
    fn chown_by_names_uses_the_image_db() {
        let db = UserDb::parse(PASSWD, GROUP);
        assert_eq!(
            db.resolve_chown("nextjs:nodejs").unwrap(),
            Owner {
                uid: 1001,
                gid: 1001
            }
        );
        // user only: primary group of the named user
        assert_eq!(db.resolve_chown("nextjs").unwrap().gid, 65533);
        // numeric user only: gid = same number
        assert_eq!(
            db.resolve_chown("1234").unwrap(),
            Owner {
                uid: 1234,
                gid: 1234
            }
        );
        assert_eq!(
            db.resolve_chown("1001:1001").unwrap(),
            Owner {
                uid: 1001,
                gid: 1001
            }
        );
        assert_eq!(
            db.resolve_chown("ghost:nodejs"),
            Err(UserError::UnknownUser("ghost".into()))
        );
        assert_eq!(
            db.resolve_chown("node:ghosts"),
            Err(UserError::UnknownGroup("ghosts".into()))
        );
    }

    #[test]
    fn user_resolution_for_processes() {
        let db = UserDb::parse(PASSWD, GROUP);
        assert_eq!(
            db.resolve_user("node").unwrap(),
            Owner {
                uid: 1000,
                gid: 1000
            }
        );
        assert_eq!(
            db.resolve_user("4242").unwrap(),
            Owner { uid: 4242, gid: 0 }
        );
        assert!(db.resolve_user("ghost").is_err());
    }
}
