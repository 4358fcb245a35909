//! Which platforms RUN can execute here: the host's own, and the ones the
//! kernel's binfmt_misc hands to an emulator (QEMU user mode).
//!
//! The RUN sandbox has its own root filesystem, which holds no
//! `/usr/bin/qemu-*-static`; a handler works there only when it was
//! registered with the `F` (fix binary) flag, which makes the kernel open the
//! interpreter once, at registration, and use that file in every namespace.
//! A handler without `F` is reported as unusable, with the fix.

use crate::frontend::Platform;
use std::path::Path;

/// Where binfmt_misc is mounted.
pub const BINFMT_DIR: &str = "/proc/sys/fs/binfmt_misc";

/// The platforms `cairn doctor` reports on (buildx's usual set).
pub const COMMON_PLATFORMS: &[&str] = &[
    "linux/amd64",
    "linux/arm64",
    "linux/arm/v7",
    "linux/386",
    "linux/ppc64le",
    "linux/s390x",
    "linux/riscv64",
];

/// One registered binfmt_misc handler for ELF binaries of some architecture.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Handler {
    /// The entry's name (`qemu-aarch64`).
    pub name: String,
    /// The OCI architecture its magic matches (`arm64`).
    pub architecture: String,
    /// Whether the entry is enabled.
    pub enabled: bool,
    /// Whether it has the `F` flag (usable inside the sandbox).
    pub fix_binary: bool,
    /// The interpreter.
    pub interpreter: String,
}

/// How RUN can execute binaries of a platform here.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Support {
    /// The CPU runs them.
    Native,
    /// A binfmt_misc handler runs them through an emulator.
    Emulated(Handler),
    /// They cannot run; the text says why ([`explain`] adds how to enable them).
    No(String),
}

/// The OCI architecture of an ELF header prefix (class, data, e_machine).
fn elf_architecture(magic: &[u8]) -> Option<&'static str> {
    if magic.len() < 20 || &magic[..4] != b"\x7fELF" {
        return None;
    }
    let (class, little) = (magic[4], magic[5] == 1);
    let machine = if little {
        u16::from_le_bytes([magic[18], magic[19]])
    } else {
        u16::from_be_bytes([magic[18], magic[19]])
    };
    Some(match (class, machine, little) {
        (2, 0x3e, true) => "amd64",
        (1, 0x03, true) => "386",
        (2, 0xb7, true) => "arm64",
        (1, 0x28, true) => "arm",
        (2, 0x15, true) => "ppc64le",
        (2, 0x16, false) => "s390x",
        (2, 0xf3, true) => "riscv64",
        (2, 0x102, true) => "loong64",
        _ => return None,
    })
}

/// Parse one `/proc/sys/fs/binfmt_misc/NAME` file; `None` when it is not
/// an ELF handler of a known architecture.
pub fn parse_entry(name: &str, text: &str) -> Option<Handler> {
    let mut h = Handler {
        name: name.to_owned(),
        architecture: String::new(),
        enabled: false,
        fix_binary: false,
        interpreter: String::new(),
    };
    for line in text.lines() {
        let line = line.trim();
        if line == "enabled" {
            h.enabled = true;
        } else if let Some(v) = line.strip_prefix("interpreter ") {
            h.interpreter = v.to_owned();
        } else if let Some(v) = line.strip_prefix("flags:") {
            h.fix_binary = v.contains('F');
        } else if let Some(v) = line.strip_prefix("magic ") {
            let bytes = hex::decode(v.trim()).ok()?;
            h.architecture = elf_architecture(&bytes)?.to_owned();
        }
    }
    (!h.architecture.is_empty()).then_some(h)
}

/// The ELF handlers registered in `dir` (empty when binfmt_misc is not mounted).
pub fn handlers_in(dir: &Path) -> Vec<Handler> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut out: Vec<Handler> = entries
        .flatten()
        .filter_map(|e| {
            let name = e.file_name().to_string_lossy().into_owned();
            if name == "register" || name == "status" {
                return None;
            }
            parse_entry(&name, &std::fs::read_to_string(e.path()).ok()?)
        })
        .collect();
    out.sort_by(|a, b| a.name.cmp(&b.name));
    out
}

/// Whether the host CPU runs `arch` binaries itself.
fn native(host: &str, arch: &str) -> bool {
    host == arch || matches!((host, arch), ("amd64", "386") | ("arm64", "arm"))
}

/// How to enable emulation of `arch` (for errors and `cairn doctor`).
pub fn how_to_enable(arch: &str) -> String {
    let qemu = match arch {
        "arm64" => "aarch64",
        "386" => "i386",
        "amd64" => "x86_64",
        "loong64" => "loongarch64",
        other => other,
    };
    format!(
        "as root: `mount -t binfmt_misc binfmt_misc {BINFMT_DIR}` (if not mounted), then register \
         /usr/bin/qemu-{qemu}-static with the F flag (Debian: apt-get install qemu-user-static, whose \
         /usr/share/binfmts/qemu-{qemu} has fix_binary yes; this repository's tests/support/binfmt.sh \
         {qemu} does it); in CI, the usual setup step (docker/setup-qemu-action, or \
         `docker run --privileged --rm tonistiigi/binfmt --install {arch}`)"
    )
}

/// How RUN can execute `p` binaries, given the host architecture and the handlers.
pub fn support_with(p: &Platform, host: &str, handlers: &[Handler]) -> Support {
    if p.os != "linux" {
        return Support::No("RUN executes only linux binaries".to_owned());
    }
    if native(host, &p.architecture) {
        return Support::Native;
    }
    let mine: Vec<&Handler> = handlers
        .iter()
        .filter(|h| h.architecture == p.architecture)
        .collect();
    if let Some(h) = mine.iter().find(|h| h.enabled && h.fix_binary) {
        return Support::Emulated((*h).clone());
    }
    let why = match mine.first() {
        Some(h) if !h.enabled => format!("its binfmt_misc handler {} is disabled", h.name),
        Some(h) => format!(
            "its binfmt_misc handler {} ({}) lacks the F flag, so the interpreter is not found \
             inside the RUN sandbox's root filesystem",
            h.name, h.interpreter
        ),
        None if !Path::new(BINFMT_DIR).join("status").exists() => {
            format!("binfmt_misc is not mounted at {BINFMT_DIR}, so no emulator is registered")
        }
        None => "no binfmt_misc handler (QEMU user emulation) is registered for it".to_owned(),
    };
    Support::No(why)
}

/// The whole story for an error: what cannot run, why, and how to enable it.
pub fn explain(p: &Platform, why: &str) -> String {
    format!(
        "this linux/{} machine cannot run {p} binaries: {why}; to enable it, {}",
        Platform::host().architecture,
        how_to_enable(&p.architecture)
    )
}

/// How RUN can execute `p` binaries on this machine.
pub fn support(p: &Platform) -> Support {
    support_with(
        p,
        &Platform::host().architecture,
        &handlers_in(Path::new(BINFMT_DIR)),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    const DEBIAN_AARCH64: &str = "enabled\ninterpreter /usr/libexec/qemu-binfmt/aarch64-binfmt-P\n\
        flags: PF\noffset 0\nmagic 7f454c460201010000000000000000000200b700\n\
        mask ffffffffffffff00fffffffffffffffffeffffff\n";

    fn p(s: &str) -> Platform {
        Platform::parse(s).unwrap()
    }

    #[test]
    fn parses_debian_qemu_entries() {
        let h = parse_entry("qemu-aarch64", DEBIAN_AARCH64).unwrap();
        assert_eq!(h.architecture, "arm64");
        assert!(h.enabled && h.fix_binary);
        let s390 = "enabled\ninterpreter /usr/bin/qemu-s390x-static\nflags: F\noffset 0\n\
            magic 7f454c4602020100000000000000000000020016\n";
        assert_eq!(
            parse_entry("qemu-s390x", s390).unwrap().architecture,
            "s390x"
        );
        let arm =
            "enabled\ninterpreter /x\nflags: \nmagic 7f454c4601010100000000000000000002002800\n";
        let arm = parse_entry("qemu-arm", arm).unwrap();
        assert_eq!(arm.architecture, "arm");
        assert!(!arm.fix_binary);
        assert_eq!(parse_entry("jar", "enabled\nmagic 504b0304\n"), None);
        assert_eq!(parse_entry("python3.11", "enabled\nmagic 0d0d0d0a\n"), None);
    }

    #[test]
    fn support_says_native_emulated_or_why_not() {
        let h = parse_entry("qemu-aarch64", DEBIAN_AARCH64).unwrap();
        assert_eq!(
            support_with(&p("linux/amd64"), "amd64", &[]),
            Support::Native
        );
        assert_eq!(support_with(&p("linux/386"), "amd64", &[]), Support::Native);
        assert_eq!(
            support_with(&p("linux/arm64"), "amd64", std::slice::from_ref(&h)),
            Support::Emulated(h.clone())
        );
        let mut no_f = h.clone();
        no_f.fix_binary = false;
        match support_with(&p("linux/arm64"), "amd64", &[no_f]) {
            Support::No(why) => {
                assert!(why.contains("lacks the F flag"), "{why}");
                assert!(why.contains("aarch64-binfmt-P"), "{why}");
                let all = explain(&p("linux/arm64"), &why);
                assert!(all.contains("cannot run linux/arm64 binaries"), "{all}");
                assert!(all.contains("tonistiigi/binfmt --install arm64"), "{all}");
            }
            other => panic!("{other:?}"),
        }
        match support_with(&p("linux/riscv64"), "amd64", &[h]) {
            Support::No(why) => assert!(why.contains("no binfmt_misc handler"), "{why}"),
            other => panic!("{other:?}"),
        }
        assert!(matches!(
            support_with(&p("windows/amd64"), "amd64", &[]),
            Support::No(_)
        ));
    }
}
