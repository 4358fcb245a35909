//! The step's root filesystem, set up by the sandbox init (pid 1) in its own
//! mount namespace: overlay (new mount API, `lowerdir+` per layer, so the
//! one-page limit of mount(2) options does not cap the layer count), a
//! minimal /dev, /proc, a read-only /sys, generated resolv.conf / hosts /
//! hostname, the RUN mounts, then pivot_root.

use super::protocol::RootfsKind;
use super::sys::{self, ctx};
use super::{mounts, Network, RunSpec};
use rustix::mount::{FsMountFlags, FsOpenFlags, MountAttrFlags, MoveMountFlags};
use std::path::{Path, PathBuf};

/// The run directory's layout.
#[derive(Debug, Clone)]
pub(crate) struct Paths {
    pub run: PathBuf,
}

impl Paths {
    pub fn upper(&self) -> PathBuf {
        self.run.join("upper")
    }
    pub fn work(&self) -> PathBuf {
        self.run.join("work")
    }
    pub fn merged(&self) -> PathBuf {
        self.run.join("merged")
    }
    pub fn scaffold(&self) -> PathBuf {
        self.run.join("scaffold")
    }
    pub fn generated(&self) -> PathBuf {
        self.run.join("gen")
    }
    /// Private scratch (secrets tmpfs, bind overlays): only ever mounted in
    /// the init's mount namespace.
    pub fn scratch(&self) -> PathBuf {
        self.run.join("scratch")
    }
    /// Copy mode's rootfs.
    pub fn rootfs(&self) -> PathBuf {
        self.run.join("rootfs")
    }
}

/// Mount an overlay of `lowers_top_first` (+ optional upper/work) at `target`.
// String: helper-process code; its error reaches the caller as text (Response::error).
pub(crate) fn mount_overlay(
    lowers_top_first: &[&Path],
    upper_work: Option<(&Path, &Path)>,
    target: &Path,
) -> Result<(), String> {
    match mount_overlay_fsconfig(lowers_top_first, upper_work, target) {
        Ok(()) => Ok(()),
        // Kernels before 6.8 lack `lowerdir+`; before 5.2, fsopen.
        Err((rustix::io::Errno::NOSYS | rustix::io::Errno::INVAL, _)) => {
            mount_overlay_legacy(lowers_top_first, upper_work, target)
        }
        Err((_, msg)) => Err(msg),
    }
}

fn mount_overlay_fsconfig(
    lowers: &[&Path],
    upper_work: Option<(&Path, &Path)>,
    target: &Path,
) -> Result<(), (rustix::io::Errno, String)> {
    let e = |what: String| move |err: rustix::io::Errno| (err, ctx(&what, err));
    let fs = rustix::mount::fsopen("overlay", FsOpenFlags::FSOPEN_CLOEXEC)
        .map_err(e("fsopen overlay".into()))?;
    for l in lowers {
        rustix::mount::fsconfig_set_string(&fs, "lowerdir+", *l)
            .map_err(e(format!("overlay lowerdir+ {}", l.display())))?;
    }
    if let Some((upper, work)) = upper_work {
        rustix::mount::fsconfig_set_string(&fs, "upperdir", upper)
            .map_err(e(format!("overlay upperdir {}", upper.display())))?;
        rustix::mount::fsconfig_set_string(&fs, "workdir", work)
            .map_err(e(format!("overlay workdir {}", work.display())))?;
        // The upper dir is throwaway on a crash, so skip the syncfs of the
        // whole upper filesystem at unmount: with other writers on the
        // disk it cost 10-300 ms per step (kernels before 5.10 lack it).
        let _ = rustix::mount::fsconfig_set_flag(&fs, "volatile");
    }
    // Layers carry overlay metadata as user.overlay.* (the only namespace a
    // user namespace may write); see reference/sandbox.md §2.
    rustix::mount::fsconfig_set_flag(&fs, "userxattr").map_err(e("overlay userxattr".into()))?;
    rustix::mount::fsconfig_create(&fs)
        .map_err(e(format!("create overlay for {}", target.display())))?;
    let mnt = rustix::mount::fsmount(&fs, FsMountFlags::FSMOUNT_CLOEXEC, MountAttrFlags::empty())
        .map_err(e("fsmount overlay".into()))?;
    rustix::mount::move_mount(
        &mnt,
        "",
        rustix::fs::CWD,
        target,
        MoveMountFlags::MOVE_MOUNT_F_EMPTY_PATH,
    )
    .map_err(e(format!("move overlay to {}", target.display())))
}

/// Mount with the fuse-overlayfs daemon (it forks into the background once
/// mounted, lives in the step's pid namespace and dies with it). Its
/// messages go to a file, not the step output. It works on layer fds, so
/// the pivot_root that follows does not disturb it.
// String: helper-process code; its error reaches the caller as text (Response::error).
fn mount_fuse_overlay(
    lowers: &[&Path],
    (upper, work): (&Path, &Path),
    target: &Path,
    scratch: &Path,
) -> Result<(), String> {
    let opts = format!(
        "{},upperdir={},workdir={}",
        overlay_lowerdir_option(lowers)?,
        upper.display(),
        work.display()
    );
    let log = scratch.join("fuse-overlayfs.log");
    let err_file =
        std::fs::File::create(&log).map_err(|e| ctx(format!("create {}", log.display()), e))?;
    let status = std::process::Command::new("fuse-overlayfs")
        .arg("-o")
        .arg(&opts)
        .arg(target)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(err_file)
        .status()
        .map_err(|e| ctx("run fuse-overlayfs", e))?;
    if status.success() {
        return Ok(());
    }
    let msg = std::fs::read_to_string(&log).unwrap_or_default();
    Err(format!("fuse-overlayfs failed ({status}): {}", msg.trim()))
}

/// `lowerdir=A:B:C` for option strings (paths with `,` or `:` cannot be
/// expressed there).
// String: helper-process code; its error reaches the caller as text (Response::error).
fn overlay_lowerdir_option(lowers: &[&Path]) -> Result<String, String> {
    let mut opts = String::from("lowerdir=");
    for (i, l) in lowers.iter().enumerate() {
        let s = l.to_str().ok_or("non-UTF-8 layer path")?;
        if s.contains([',', ':']) {
            return Err(format!("layer path {s} contains `,` or `:`"));
        }
        if i > 0 {
            opts.push(':');
        }
        opts.push_str(s);
    }
    Ok(opts)
}

// String: helper-process code; its error reaches the caller as text (Response::error).
fn mount_overlay_legacy(
    lowers: &[&Path],
    upper_work: Option<(&Path, &Path)>,
    target: &Path,
) -> Result<(), String> {
    let mut opts = format!("userxattr,{}", overlay_lowerdir_option(lowers)?);
    if let Some((u, w)) = upper_work {
        opts.push_str(&format!(
            ",upperdir={},workdir={}",
            u.display(),
            w.display()
        ));
    }
    if opts.len() >= 4095 {
        return Err(format!(
            "{} layers do not fit in one mount(2) option page and this kernel lacks `lowerdir+`",
            lowers.len()
        ));
    }
    sys::mount(
        Some(Path::new("overlay")),
        target,
        Some("overlay"),
        0,
        Some(&opts),
    )
}

// String: helper-process code; its error reaches the caller as text (Response::error).
fn bind(src: &Path, dst: &Path, read_only: bool) -> Result<(), String> {
    sys::mount(Some(src), dst, None, libc::MS_BIND | libc::MS_REC, None)?;
    if read_only {
        remount_ro(dst)?;
    }
    Ok(())
}

/// Make the bind mount at `dst` read-only (nosuid, nodev too).
// String: helper-process code; its error reaches the caller as text (Response::error).
pub(crate) fn remount_ro(dst: &Path) -> Result<(), String> {
    sys::mount(
        None,
        dst,
        None,
        libc::MS_BIND | libc::MS_REMOUNT | libc::MS_RDONLY | libc::MS_NOSUID | libc::MS_NODEV,
        None,
    )
}

/// Everything between entering a private mount namespace and exec: builds the rootfs at
/// `paths.merged()` and pivots into it.
// String: helper-process code; its error reaches the caller as text (Response::error).
pub(crate) fn enter(
    spec: &RunSpec,
    paths: &Paths,
    lowers_top_first: &[&Path],
    devpts_gid5: bool,
    kind: RootfsKind,
) -> Result<(), String> {
    let merged = paths.merged();
    if spec.network == Network::None {
        loopback_up()?;
    }
    let (upper, work) = (paths.upper(), paths.work());
    match kind {
        RootfsKind::Overlay => mount_overlay(lowers_top_first, Some((&upper, &work)), &merged)?,
        RootfsKind::Fuse => {
            mount_fuse_overlay(lowers_top_first, (&upper, &work), &merged, &paths.scratch())?
        }
        RootfsKind::Copy => bind(&paths.rootfs(), &merged, false)?,
    }
    setup_dev(
        &merged.join("dev"),
        devpts_gid5,
        spec.shm_size.unwrap_or(super::limits::DEFAULT_SHM_SIZE),
    )?;
    let nsx = libc::MS_NOSUID | libc::MS_NODEV | libc::MS_NOEXEC;
    sys::mount(
        Some(Path::new("proc")),
        &merged.join("proc"),
        Some("proc"),
        nsx,
        None,
    )?;
    setup_sys(&merged.join("sys"), spec.network == Network::None);
    for f in super::scaffold::GENERATED {
        let name = Path::new(f).file_name().unwrap_or_default();
        bind(&paths.generated().join(name), &merged.join(f), false)?;
    }
    mounts::apply(&spec.mounts, &merged, &paths.scratch())?;
    pivot(&merged)?;
    rustix::system::sethostname(spec.hostname.as_bytes())
        .map_err(|e| ctx(format!("sethostname {}", spec.hostname), e))
}

// String: helper-process code; its error reaches the caller as text (Response::error).
fn setup_dev(dev: &Path, devpts_gid5: bool, shm_size: u64) -> Result<(), String> {
    sys::mount(
        Some(Path::new("tmpfs")),
        dev,
        Some("tmpfs"),
        libc::MS_NOSUID | libc::MS_STRICTATIME,
        Some("mode=755,size=65536k"),
    )?;
    // mknod is refused in a user namespace: bind the host's devices.
    for name in ["null", "zero", "full", "random", "urandom", "tty"] {
        let p = dev.join(name);
        std::fs::write(&p, b"").map_err(|e| ctx(format!("create {}", p.display()), e))?;
        bind(&Path::new("/dev").join(name), &p, false)?;
    }
    let pts = dev.join("pts");
    std::fs::create_dir(&pts).map_err(|e| ctx(format!("create {}", pts.display()), e))?;
    let opts = if devpts_gid5 {
        "newinstance,ptmxmode=0666,mode=0620,gid=5"
    } else {
        "newinstance,ptmxmode=0666,mode=0620"
    };
    sys::mount(
        Some(Path::new("devpts")),
        &pts,
        Some("devpts"),
        libc::MS_NOSUID | libc::MS_NOEXEC,
        Some(opts),
    )?;
    let shm = dev.join("shm");
    std::fs::create_dir(&shm).map_err(|e| ctx(format!("create {}", shm.display()), e))?;
    sys::mount(
        Some(Path::new("shm")),
        &shm,
        Some("tmpfs"),
        libc::MS_NOSUID | libc::MS_NODEV,
        Some(&format!("mode=1777,size={shm_size}")),
    )?;
    for (link, target) in [
        ("ptmx", "pts/ptmx"),
        ("fd", "/proc/self/fd"),
        ("stdin", "/proc/self/fd/0"),
        ("stdout", "/proc/self/fd/1"),
        ("stderr", "/proc/self/fd/2"),
    ] {
        std::os::unix::fs::symlink(target, dev.join(link))
            .map_err(|e| ctx(format!("symlink /dev/{link}"), e))?;
    }
    Ok(())
}

/// /sys read-only. In a private netns a fresh sysfs works; otherwise sysfs
/// is refused (the host netns is not ours), so rbind the host's and make the
/// whole tree read-only with mount_setattr. Best effort: builds rarely need it.
fn setup_sys(sys_dir: &Path, own_netns: bool) {
    let flags = libc::MS_NOSUID | libc::MS_NODEV | libc::MS_NOEXEC | libc::MS_RDONLY;
    if own_netns
        && sys::mount(
            Some(Path::new("sysfs")),
            sys_dir,
            Some("sysfs"),
            flags,
            None,
        )
        .is_ok()
    {
        return;
    }
    if sys::mount(
        Some(Path::new("/sys")),
        sys_dir,
        None,
        libc::MS_BIND | libc::MS_REC,
        None,
    )
    .is_err()
    {
        return;
    }
    let attr = libc::mount_attr {
        attr_set: libc::MOUNT_ATTR_RDONLY | libc::MOUNT_ATTR_NOSUID | libc::MOUNT_ATTR_NODEV,
        attr_clr: 0,
        propagation: 0,
        userns_fd: 0,
    };
    let Ok(c) = sys::cpath(sys_dir) else { return };
    // SAFETY: valid path and attr struct of the size passed.
    let r = unsafe {
        libc::syscall(
            libc::SYS_mount_setattr,
            libc::AT_FDCWD,
            c.as_ptr(),
            libc::AT_RECURSIVE as libc::c_uint,
            &attr as *const libc::mount_attr,
            std::mem::size_of::<libc::mount_attr>(),
        )
    };
    if r != 0 {
        // Never leave a writable /sys behind.
        // SAFETY: valid path.
        unsafe { libc::umount2(c.as_ptr(), libc::MNT_DETACH) };
    }
}

// String: helper-process code; its error reaches the caller as text (Response::error).
fn pivot(root: &Path) -> Result<(), String> {
    std::env::set_current_dir(root).map_err(|e| ctx(format!("chdir {}", root.display()), e))?;
    rustix::process::pivot_root(".", ".").map_err(|e| ctx("pivot_root", e))?;
    // The old root is now stacked on `.`: detach it.
    let dot = std::ffi::CString::new(".").map_err(|e| e.to_string())?;
    // SAFETY: valid path.
    sys::cvt(unsafe { libc::umount2(dot.as_ptr(), libc::MNT_DETACH) })
        .map_err(|e| ctx("detach the old root", e))?;
    std::env::set_current_dir("/").map_err(|e| ctx("chdir /", e))
}

// String: helper-process code; its error reaches the caller as text (Response::error).
fn loopback_up() -> Result<(), String> {
    // SAFETY: socket/ioctl with a zeroed, correctly sized ifreq.
    unsafe {
        let s = sys::cvt(libc::socket(
            libc::AF_INET,
            libc::SOCK_DGRAM | libc::SOCK_CLOEXEC,
            0,
        ))
        .map_err(|e| ctx("socket", e))?;
        let mut req: libc::ifreq = std::mem::zeroed();
        for (i, b) in b"lo".iter().enumerate() {
            req.ifr_name[i] = *b as libc::c_char;
        }
        let r = (|| {
            sys::cvt(libc::ioctl(s, libc::SIOCGIFFLAGS, &mut req))?;
            req.ifr_ifru.ifru_flags |= libc::IFF_UP as libc::c_short;
            sys::cvt(libc::ioctl(s, libc::SIOCSIFFLAGS, &req))
        })();
        sys::close(s);
        r.map(drop).map_err(|e| ctx("bring loopback up", e))
    }
}
