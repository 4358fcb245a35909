//! An image's own `/etc/passwd` and `/etc/group`, the one parser behind
//! `COPY --chown=nextjs:nodejs`, `WORKDIR` ownership and the identity a `RUN`
//! runs as: names always resolve against the rootfs being built, never the
//! host's.
//!
//! Lines are read like moby/sys/user reads them: blank lines and `#`
//! comments are skipped, missing trailing fields are empty, and a line whose
//! name or numeric ids cannot be read is skipped (glibc and BusyBox skip it too).

/// One `/etc/passwd` line (the fields cairn uses).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Passwd {
    /// Login name.
    pub name: String,
    /// uid.
    pub uid: u32,
    /// Primary gid.
    pub gid: u32,
    /// Home directory (may be empty).
    pub home: String,
}

/// One `/etc/group` line.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Group {
    /// Group name.
    pub name: String,
    /// gid.
    pub gid: u32,
    /// Member login names.
    pub members: Vec<String>,
}

fn records(text: &str) -> impl Iterator<Item = Vec<&str>> {
    text.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(|l| l.split(':').collect())
}

/// Parse `/etc/passwd` text.
pub fn parse_passwd(text: &str) -> Vec<Passwd> {
    records(text)
        .filter_map(|f| {
            let name = f.first().filter(|n| !n.is_empty())?;
            Some(Passwd {
                name: (*name).to_owned(),
                uid: f.get(2)?.parse().ok()?,
                gid: f.get(3)?.parse().ok()?,
                home: f.get(5).copied().unwrap_or_default().to_owned(),
            })
        })
        .collect()
}

/// Parse `/etc/group` text.
pub fn parse_group(text: &str) -> Vec<Group> {
    records(text)
        .filter_map(|f| {
            let name = f.first().filter(|n| !n.is_empty())?;
            Some(Group {
                name: (*name).to_owned(),
                gid: f.get(2)?.parse().ok()?,
                members: f
                    .get(3)
                    .copied()
                    .unwrap_or_default()
                    .split(',')
                    .map(str::trim)
                    .filter(|m| !m.is_empty())
                    .map(str::to_owned)
                    .collect(),
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_are_read_leniently_and_bad_ones_skipped() {
        let p = parse_passwd(
            "# comment\n\nroot:x:0:0:root:/root:/bin/sh\nshort:x:5:6\nbroken\nbad:x:a:1::/:/bin/sh\n:x:7:7::/:\n",
        );
        assert_eq!(
            p,
            vec![
                Passwd {
                    name: "root".into(),
                    uid: 0,
                    gid: 0,
                    home: "/root".into()
                },
                Passwd {
                    name: "short".into(),
                    uid: 5,
                    gid: 6,
                    home: String::new()
                },
            ]
        );
        let g = parse_group("root:x:0:root\nnodejs:x:1001:nextjs, node\nnogroup:x:65533\nx:y\n");
        assert_eq!(g.len(), 3);
        assert_eq!(g[1].members, vec!["nextjs", "node"]);
        assert!(g[2].members.is_empty());
    }
}
