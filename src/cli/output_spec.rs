//! `--output` values as `docker buildx build` reads them: `type=local|tar|oci|
//! docker|image|registry` with their keys, the `-o DIR` and `-o -` shorthands.
//! Everything is checked here, before the build: an unknown key or value is
//! refused with the accepted ones.

use crate::cli::hint::hint;
use crate::engine::recompress::ExportOptions;
use crate::image::media_type::LayerCompression;
pub use crate::publish::Dest;
use crate::registry::reference::redact_credentials;
use std::path::PathBuf;

/// What an `--output` makes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Sink {
    /// `type=local`: the final filesystem, in a directory.
    Local(PathBuf),
    /// `type=tar`: the final filesystem, as one tar.
    FsTar(Dest),
    /// `type=oci` (`tar=true`, the default): an OCI layout, as a tar.
    OciTar(Dest),
    /// `type=oci,tar=false`: an OCI layout directory.
    OciDir(PathBuf),
    /// `type=docker`: a docker-archive (`docker load`, `podman load`).
    Docker(Dest),
    /// `type=image`: the local store, and the registry with `push=true`
    /// (`type=registry` is `type=image,push=true`).
    Image {
        /// `name=` (comma list); empty: the `-t` tags.
        names: Vec<String>,
        /// Push to the registries the names name.
        push: bool,
    },
}

/// One parsed `--output`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutputSpec {
    /// What it makes.
    pub sink: Sink,
    /// Image names for the archive formats (`name=`); empty: the `-t` tags.
    pub names: Vec<String>,
    /// Layer compression and media types.
    pub export: ExportOptions,
}

impl OutputSpec {
    /// Whether this output writes to standard output.
    pub fn to_stdout(&self) -> bool {
        matches!(
            self.sink,
            Sink::FsTar(Dest::Stdout) | Sink::OciTar(Dest::Stdout) | Sink::Docker(Dest::Stdout)
        )
    }
}

const TYPES: &str = "local, tar, oci, docker, image, registry";
const IMAGE_KEYS: [&str; 4] = [
    "compression",
    "compression-level",
    "force-compression",
    "oci-mediatypes",
];

/// The keys each type accepts (besides `type`).
fn accepted(kind: &str) -> Vec<&'static str> {
    let mut keys = match kind {
        "local" | "tar" => return vec!["dest"],
        "oci" => vec!["dest", "tar", "name"],
        "docker" | "docker-archive" => vec!["dest", "name"],
        _ => vec!["name", "push"],
    };
    keys.extend(IMAGE_KEYS);
    keys
}

fn bad(flag_value: &str, what: String, fix: String) -> anyhow::Error {
    // A `name=` may carry `user:password@`: never repeat it.
    let shown: Vec<String> = flag_value
        .split(',')
        .map(|f| match f.split_once('=') {
            Some((k, v)) => format!("{k}={}", redact_credentials(v)),
            None => redact_credentials(f),
        })
        .collect();
    hint(
        anyhow::anyhow!("--output `{}`: {what}", shown.join(",")),
        fix,
    )
}

fn boolean(spec: &str, key: &str, v: &str) -> anyhow::Result<bool> {
    match v {
        "true" | "1" => Ok(true),
        "false" | "0" => Ok(false),
        _ => Err(bad(
            spec,
            format!("{key}={v} is not a boolean"),
            format!("use {key}=true or {key}=false"),
        )),
    }
}

/// Split at commas outside double quotes, dropping the quotes, as buildx
/// reads `--output` (a CSV record): `type=image,"name=a:1,a:2"`.
fn csv_fields(spec: &str) -> Vec<String> {
    let mut out = vec![String::new()];
    let mut quoted = false;
    for c in spec.chars() {
        match c {
            '"' => quoted = !quoted,
            ',' if !quoted => out.push(String::new()),
            c => {
                if let Some(last) = out.last_mut() {
                    last.push(c);
                }
            }
        }
    }
    out
}

/// Parse one `--output` value.
pub fn parse(spec: &str) -> anyhow::Result<OutputSpec> {
    // buildx: a bare value is a directory for the local exporter, `-` a tar on stdout.
    if !spec.contains('=') {
        return bare(spec);
    }
    let fields = csv_fields(spec);
    let pairs = key_values(spec, &fields)?;
    let kind = exporter(spec, &pairs)?;
    let o = options(spec, kind, pairs)?;
    check_level(spec, &o.export)?;
    let sink = sink(spec, kind, &o)?;
    Ok(OutputSpec {
        sink,
        names: o.names,
        export: o.export,
    })
}

/// A value without `=`: a directory for the local exporter, `-` a tar on stdout.
fn bare(spec: &str) -> anyhow::Result<OutputSpec> {
    anyhow::ensure!(
        !spec.is_empty(),
        bad(
            spec,
            "empty".into(),
            "e.g. -o type=oci,dest=image.tar".into()
        )
    );
    let sink = if spec == "-" {
        Sink::FsTar(Dest::Stdout)
    } else {
        Sink::Local(PathBuf::from(spec))
    };
    Ok(OutputSpec {
        sink,
        names: Vec::new(),
        export: ExportOptions::default(),
    })
}

/// Each field as `(KEY, VALUE)`.
fn key_values<'f>(spec: &str, fields: &'f [String]) -> anyhow::Result<Vec<(&'f str, &'f str)>> {
    let mut pairs = Vec::new();
    for part in fields {
        let Some((k, v)) = part.split_once('=') else {
            return Err(bad(
                spec,
                format!("`{part}` is not KEY=VALUE"),
                "write each option as KEY=VALUE, e.g. type=oci,dest=image.tar".into(),
            ));
        };
        pairs.push((k.trim(), v));
    }
    Ok(pairs)
}

/// The `type=`, which must be there and be known.
fn exporter<'f>(spec: &str, pairs: &[(&str, &'f str)]) -> anyhow::Result<&'f str> {
    let kind = pairs
        .iter()
        .find(|(k, _)| *k == "type")
        .map(|(_, v)| *v)
        .ok_or_else(|| {
            bad(
                spec,
                "no type=".into(),
                format!("name the exporter: type= one of {TYPES}"),
            )
        })?;
    if !matches!(
        kind,
        "local" | "tar" | "oci" | "docker" | "docker-archive" | "image" | "registry"
    ) {
        return Err(bad(
            spec,
            format!("unknown type `{kind}`"),
            format!("type= is one of {TYPES}"),
        ));
    }
    Ok(kind)
}

/// The options besides `type=`, as given.
struct Options {
    dest: Option<String>,
    tar: bool,
    names: Vec<String>,
    push: bool,
    export: ExportOptions,
}

/// Read the options `kind` accepts (any other is refused).
fn options(spec: &str, kind: &str, pairs: Vec<(&str, &str)>) -> anyhow::Result<Options> {
    let keys = accepted(kind);
    let mut o = Options {
        dest: None,
        tar: true,
        names: Vec::new(),
        push: kind == "registry",
        export: ExportOptions::default(),
    };
    for (k, v) in pairs {
        if k == "type" {
            continue;
        }
        if !keys.contains(&k) {
            return Err(bad(
                spec,
                format!("type={kind} has no option `{k}`"),
                format!("type={kind} accepts: {}", keys.join(", ")),
            ));
        }
        match k {
            "dest" => o.dest = Some(v.to_owned()).filter(|d| !d.is_empty()),
            "tar" => o.tar = boolean(spec, k, v)?,
            "push" => o.push = boolean(spec, k, v)?,
            "name" => o.names.extend(
                v.split(',')
                    .map(str::trim)
                    .filter(|n| !n.is_empty())
                    .map(str::to_owned),
            ),
            "compression" => o.export.compression = Some(compression(spec, v)?),
            "compression-level" => {
                o.export.level = Some(v.parse().map_err(|_| {
                    bad(
                        spec,
                        format!("compression-level={v} is not a number"),
                        "gzip takes 0-9, zstd 1-22".into(),
                    )
                })?)
            }
            "force-compression" => o.export.force = boolean(spec, k, v)?,
            "oci-mediatypes" => o.export.oci_media_types = boolean(spec, k, v)?,
            _ => {}
        }
    }
    Ok(o)
}

/// `compression=`.
fn compression(spec: &str, v: &str) -> anyhow::Result<LayerCompression> {
    match v {
        "gzip" => Ok(LayerCompression::Gzip),
        "zstd" => Ok(LayerCompression::Zstd),
        "uncompressed" => Ok(LayerCompression::Uncompressed),
        "estargz" => Err(bad(
            spec,
            "compression=estargz is not supported".into(),
            "use compression=gzip, zstd or uncompressed".into(),
        )),
        _ => Err(bad(
            spec,
            format!("unknown compression `{v}`"),
            "compression= is one of gzip, zstd, uncompressed".into(),
        )),
    }
}

/// `compression-level=` within the range of the compression it goes with.
fn check_level(spec: &str, export: &ExportOptions) -> anyhow::Result<()> {
    let Some(level) = export.level else {
        return Ok(());
    };
    let (lo, hi) = match export.compression {
        Some(LayerCompression::Zstd) => (1, 22),
        Some(LayerCompression::Gzip) | None => (0, 9),
        Some(LayerCompression::Uncompressed) => {
            return Err(bad(
                spec,
                "compression-level with compression=uncompressed".into(),
                "drop compression-level=".into(),
            ))
        }
    };
    if !(lo..=hi).contains(&level) {
        return Err(bad(
            spec,
            format!("compression-level={level} is out of range"),
            format!("this compression takes {lo}-{hi}"),
        ));
    }
    Ok(())
}

/// Where exporter `kind` writes, with its `dest=` checked.
fn sink(spec: &str, kind: &str, o: &Options) -> anyhow::Result<Sink> {
    let need_dest = |example: &str| {
        o.dest.clone().ok_or_else(|| {
            bad(
                spec,
                format!("type={kind} needs dest="),
                format!(
                    "for example --output type={kind},dest={example} (dest=- for standard output)"
                ),
            )
        })
    };
    let file = |d: String| {
        if d == "-" {
            Dest::Stdout
        } else {
            Dest::File(PathBuf::from(d))
        }
    };
    Ok(match kind {
        "local" => {
            let d = need_dest("rootfs")?;
            anyhow::ensure!(
                d != "-",
                bad(
                    spec,
                    "type=local writes a directory, not standard output".into(),
                    "use type=tar,dest=- for a tar on standard output".into()
                )
            );
            Sink::Local(PathBuf::from(d))
        }
        "tar" => Sink::FsTar(file(need_dest("rootfs.tar")?)),
        "oci" if o.tar => Sink::OciTar(file(need_dest("image.tar")?)),
        "oci" => {
            let d = need_dest("image-layout")?;
            anyhow::ensure!(
                d != "-",
                bad(
                    spec,
                    "tar=false writes a directory, not standard output".into(),
                    "drop tar=false for a tarball on standard output".into()
                )
            );
            Sink::OciDir(PathBuf::from(d))
        }
        "docker" | "docker-archive" => Sink::Docker(file(need_dest("image.tar")?)),
        _ => Sink::Image {
            names: o.names.clone(),
            push: o.push,
        },
    })
}

/// Check a set of outputs together: at most one on standard output, and not
/// a terminal.
pub fn check_all(outputs: &[OutputSpec]) -> anyhow::Result<()> {
    let stdout = outputs.iter().filter(|o| o.to_stdout()).count();
    anyhow::ensure!(
        stdout <= 1,
        hint(
            anyhow::anyhow!("--output: {stdout} outputs write to standard output"),
            "give all but one of them dest=FILE"
        )
    );
    if stdout == 1 && std::io::IsTerminal::is_terminal(&std::io::stdout()) {
        return Err(hint(
            anyhow::anyhow!("--output dest=- would write a tar to the terminal"),
            "redirect standard output to a file or a pipe (e.g. `| podman load`), or give dest=FILE",
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sink(s: &str) -> Sink {
        parse(s).unwrap().sink
    }

    fn err(s: &str) -> String {
        let mut out = Vec::new();
        crate::error::render(parse(s).unwrap_err().as_ref(), &mut out);
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn buildx_forms() {
        assert_eq!(sink("out"), Sink::Local("out".into()));
        assert_eq!(sink("-"), Sink::FsTar(Dest::Stdout));
        assert_eq!(sink("type=local,dest=d"), Sink::Local("d".into()));
        assert_eq!(
            sink("type=tar,dest=f.tar"),
            Sink::FsTar(Dest::File("f.tar".into()))
        );
        assert_eq!(
            sink("type=oci,dest=x.tar"),
            Sink::OciTar(Dest::File("x.tar".into()))
        );
        assert_eq!(sink("type=oci,dest=-"), Sink::OciTar(Dest::Stdout));
        assert_eq!(sink("type=oci,dest=d,tar=false"), Sink::OciDir("d".into()));
        assert_eq!(sink("type=docker,dest=-"), Sink::Docker(Dest::Stdout));
        assert_eq!(
            sink("type=registry"),
            Sink::Image {
                names: vec![],
                push: true
            }
        );
        assert_eq!(
            sink(r#"type=image,"name=r/a:1,r/a:2",push=false"#),
            Sink::Image {
                names: vec!["r/a:1".into(), "r/a:2".into()],
                push: false
            }
        );
        let o = parse("type=image,compression=zstd,compression-level=19,force-compression=true,oci-mediatypes=false").unwrap();
        assert_eq!(o.export.compression, Some(LayerCompression::Zstd));
        assert_eq!(o.export.level, Some(19));
        assert!(o.export.force && !o.export.oci_media_types);
    }

    #[test]
    fn refusals_name_what_is_accepted() {
        let e = err("type=oci,dest=x,bogus=1");
        assert!(
            e.contains("type=oci has no option `bogus`")
                && e.contains("accepts: dest, tar, name, compression"),
            "{e}"
        );
        let e = err("type=image,compression=lz4");
        assert!(e.contains("gzip, zstd, uncompressed"), "{e}");
        let e = err("type=carrier");
        assert!(
            e.contains("local, tar, oci, docker, image, registry"),
            "{e}"
        );
        let e = err("type=tar");
        assert!(e.contains("needs dest="), "{e}");
        let e = err("type=image,push=maybe");
        assert!(e.contains("push=true or push=false"), "{e}");
        let e = err("type=image,compression=zstd,compression-level=30");
        assert!(e.contains("1-22"), "{e}");
        let e = err("type=local,dest=d,compression=zstd");
        assert!(e.contains("accepts: dest"), "{e}");
        let e = err("type=image,name=u:hunter2@r.example/a:1,bogus=1");
        assert!(
            !e.contains("hunter2") && e.contains("***@r.example/a:1"),
            "{e}"
        );
    }
}
