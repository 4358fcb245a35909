//! The human report of `cairn diff`: grouped by config and layers, with
//! counts per cause and a verdict line; colour only on a TTY without NO_COLOR.

use super::compare::{ChangeKind, FileChange};
use super::image::Report;
use std::fmt::Write;

/// Rendering options.
#[derive(Clone, Debug, Default)]
pub struct RenderOptions {
    /// Use ANSI colour.
    pub color: bool,
    /// List every file, not just the first few per layer.
    pub all_files: bool,
}

const FILES_PER_LAYER: usize = 10;

fn paint(on: bool, code: &str, s: &str) -> String {
    if on {
        format!("\x1b[{code}m{s}\x1b[0m")
    } else {
        s.to_owned()
    }
}

fn file_line(out: &mut String, f: &FileChange, indent: &str, color: bool) {
    let sign = match f.change {
        ChangeKind::Added => paint(color, "32", "+"),
        ChangeKind::Removed => paint(color, "31", "-"),
        ChangeKind::Changed => paint(color, "33", "~"),
    };
    let _ = write!(out, "{indent}{sign} {}  [{}]", f.path, f.cause.label());
    for a in &f.attrs {
        let _ = write!(out, "  {}: {} → {}", a.attr, short(&a.a), short(&a.b));
    }
    out.push('\n');
    if let Some(k) = &f.known {
        let _ = writeln!(out, "{indent}    known: {k}");
    }
    for n in &f.nested {
        file_line(out, n, &format!("{indent}    "), color);
    }
    if let Some(t) = &f.text_diff {
        for l in t.lines() {
            let _ = writeln!(out, "{indent}    {l}");
        }
    }
}

fn short(v: &str) -> String {
    crate::progress::short_digest(v)
}

/// The attestations section: each differing SBOM or provenance and what changed in it.
fn attestations(out: &mut String, r: &Report, c: bool) {
    if r.attestations.is_empty() {
        return;
    }
    let _ = writeln!(out, "\n{}", paint(c, "1", "attestations"));
    for d in &r.attestations {
        let _ = writeln!(out, "  {} ({})", d.kind, d.artifact_type);
        for line in &d.changes {
            let _ = writeln!(out, "    {line}");
        }
        if d.more > 0 {
            let _ = writeln!(out, "    … and {} more", d.more);
        }
    }
}

/// Render the report as text.
pub fn render(r: &Report, opts: &RenderOptions) -> String {
    let c = opts.color;
    let mut out = String::new();
    for (k, (name, m)) in [
        (&r.a, &r.manifest_digests[0]),
        (&r.b, &r.manifest_digests[1]),
    ]
    .into_iter()
    .enumerate()
    {
        let id = m
            .clone()
            .unwrap_or_else(|| format!("config {}", r.config_digests[k]));
        let from = r.index_digests[k]
            .as_ref()
            .map(|i| format!("  (from index {i})"))
            .unwrap_or_default();
        let _ = writeln!(out, "{}: {name}  {id}{from}", ["A", "B"][k]);
    }
    if r.identical && r.attestations.is_empty() {
        let _ = writeln!(out, "\n{}", paint(c, "32", "identical"));
        return out;
    }
    if r.identical {
        let _ = writeln!(out, "\n{}", paint(c, "32", "identical images"));
        attestations(&mut out, r, c);
        let _ = writeln!(out, "\n{}", r.verdict);
        return out;
    }
    if r.equivalent {
        let _ = writeln!(out, "\n{} {}", paint(c, "32", "equivalent:"), r.verdict);
        return out;
    }
    if !r.config.is_empty() {
        let _ = writeln!(
            out,
            "\n{} ({} fields)",
            paint(c, "1", "config"),
            r.config.len()
        );
        for d in &r.config {
            let _ = writeln!(out, "  {}: {} → {}", d.field, d.a, d.b);
        }
    }
    if let Some(b) = &r.build {
        if !b.changes.is_empty() {
            let _ = writeln!(
                out,
                "\n{}",
                paint(c, "1", "build record: steps that changed")
            );
            for s in &b.changes {
                let _ = writeln!(out, "  {}", s.line());
            }
            if b.downstream > 0 {
                let _ = writeln!(
                    out,
                    "  ({} later steps changed only because of these)",
                    b.downstream
                );
            }
        }
    }
    attestations(&mut out, r, c);
    let _ = writeln!(out, "\n{}", paint(c, "1", "layers"));
    for (k, l) in r.layers.iter().enumerate() {
        let mark = if Some(k) == r.first_divergent {
            paint(c, "31", " ← first divergent layer")
        } else {
            String::new()
        };
        let by = l.created_by.as_deref().unwrap_or("?");
        let _ = writeln!(out, "  {:>2}. {:<16} {}{}", k + 1, l.status, by, mark);
        if let Some(files) = &l.files {
            if files.order_differs {
                let _ = writeln!(out, "      entry order differs");
            }
            let n = files.changes.len();
            let shown = if opts.all_files {
                n
            } else {
                n.min(FILES_PER_LAYER)
            };
            for f in &files.changes[..shown] {
                file_line(&mut out, f, "      ", c);
            }
            if shown < n {
                let _ = writeln!(
                    out,
                    "      … and {} more files (--files lists all)",
                    n - shown
                );
            }
        }
    }
    if !r.causes.is_empty() {
        let parts: Vec<String> = r
            .causes
            .iter()
            .map(|(k, n)| format!("{}: {n}", k.label()))
            .collect();
        let _ = writeln!(out, "\n{} {}", paint(c, "1", "causes"), parts.join(", "));
    }
    let _ = writeln!(
        out,
        "\nread {} of layer tar{}",
        crate::progress::human_bytes(r.bytes_read),
        if r.bytes_fetched > 0 {
            format!(
                ", fetched {} from registries",
                crate::progress::human_bytes(r.bytes_fetched)
            )
        } else {
            String::new()
        }
    );
    let _ = writeln!(out, "{} {}", paint(c, "1", "verdict:"), r.verdict);
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::diff::image::{compare_images, IgnoreOptions, ImageSide, LayerOpener};
    use crate::diff::record::{RecordDiff, StepChange};
    use crate::diff::tar_index::tests::make_tar;
    use crate::image::config::ImageConfig;
    use crate::image::Layer;
    use cairn_layers::{DiffId, Digest};

    fn report() -> Report {
        let tar_a = make_tar(&[
            ("app/a.js", b"1\n", 0o644, 0, 1),
            ("app/b.js", b"x", 0o644, 0, 1),
        ]);
        let tar_b = make_tar(&[
            ("app/a.js", b"2\n", 0o644, 0, 1),
            ("app/b.js", b"x", 0o600, 0, 1),
        ]);
        let open: &LayerOpener = &|l: &Layer| {
            let t = if l.digest == Digest::of(b"da") {
                &tar_a
            } else {
                &tar_b
            };
            Ok(Box::new(std::io::Cursor::new(t.clone())))
        };
        let side = |d: &str| ImageSide {
            name: format!("img-{d}"),
            manifest_digest: Some(format!("m-{d}")),
            config_digest: "c".into(),
            config: ImageConfig::default(),
            layers: vec![Layer {
                digest: Digest::of(d.as_bytes()),
                diff_id: DiffId(Digest::of(d.as_bytes())),
                size: 1,
                media_type: "t".into(),
            }],
            open,
        };
        let mut r =
            compare_images(&side("da"), &side("db"), &IgnoreOptions::default(), true).unwrap();
        r.attach_build(RecordDiff {
            changes: vec![StepChange {
                stage: "builder".into(),
                index: 4,
                instruction: "COPY . .".into(),
                kind: "changed",
                inputs: vec!["context file app/a.js changed".into()],
            }],
            downstream: 2,
        });
        r
    }

    #[test]
    fn groups_files_causes_build_steps_and_verdict() {
        let text = render(&report(), &RenderOptions::default());
        for want in [
            "A: img-da  m-da",
            "build record: steps that changed\n  builder 4 COPY . .: context file app/a.js changed\n  (2 later steps changed only because of these)",
            "~ app/a.js  [content]  content: sha256:",
            "-1\n",
            "~ app/b.js  [mode]  mode: 0644 → 0600",
            "causes mode: 1, content: 1",
            "verdict: step builder 4 COPY . .: context file app/a.js changed; first difference in layer 1",
        ] {
            assert!(text.contains(want), "missing {want:?} in:\n{text}");
        }
        assert!(!text.contains('\x1b'), "no colour unless asked");
        let coloured = render(
            &report(),
            &RenderOptions {
                color: true,
                all_files: false,
            },
        );
        assert!(coloured.contains("\x1b[1mverdict:\x1b[0m"));
    }
}
