//! The one xattr policy: which extended attributes cairn keeps, decided
//! here for every path a file takes.
//!
//! * [`XattrUse::Layer`]: what a layer stores. Only `security.capability`
//!   (file capabilities, e.g. `ping`'s `cap_net_raw`): the writer drops every
//!   other attribute, a RUN's capture records no other, and a build context
//!   contributes none. Everything else is host state (SELinux labels, overlay
//!   bookkeeping, cairn's own ownership records, a desktop's `user.*` tags)
//!   that would make layers differ between machines.
//! * [`XattrUse::Rootfs`]: what unpacking a layer restores into a rootfs so
//!   that a RUN sees it. Also `user.*` attributes a foreign layer carries
//!   (the only other namespace an unprivileged process may set), except the
//!   overlay filesystems' own `user.overlay.*` and `user.fuseoverlayfs.*`,
//!   which would change what the overlay shows.

/// Where an attribute is going.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum XattrUse {
    /// Into a layer (writing a tar, capturing a RUN).
    Layer,
    /// Onto a rootfs being unpacked.
    Rootfs,
}

/// Whether the attribute `name` is kept for `purpose`.
pub fn keep(name: &str, purpose: XattrUse) -> bool {
    if name == "security.capability" {
        return true;
    }
    match purpose {
        XattrUse::Layer => false,
        XattrUse::Rootfs => {
            name.starts_with("user.")
                && !name.starts_with("user.overlay.")
                && !name.starts_with("user.fuseoverlayfs.")
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layers_keep_only_capabilities_and_rootfs_adds_plain_user_attributes() {
        for (name, layer, rootfs) in [
            ("security.capability", true, true),
            ("user.mime_type", false, true),
            ("user.cairn.owner", false, true),
            ("user.overlay.opaque", false, false),
            ("user.fuseoverlayfs.opaque", false, false),
            ("trusted.overlay.opaque", false, false),
            ("security.selinux", false, false),
            ("system.posix_acl_access", false, false),
        ] {
            assert_eq!(keep(name, XattrUse::Layer), layer, "{name}");
            assert_eq!(keep(name, XattrUse::Rootfs), rootfs, "{name}");
        }
    }
}
