//! Rootless RUN sandbox: user/mount/pid namespaces, overlay rootfs, capture of the upper directory.
