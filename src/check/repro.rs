//! cairn's rules about the Dockerfile alone: BaseImageNotPinned, BusyboxAdduser,
//! SecretAsBuildArg and SourceCopiedBeforeInstall.

use super::context::{at, commands, install, run_text};
use super::walk::{is_secret_name, BaseRef, Model};
use super::{Ctx, Finding};
use crate::frontend::instructions::{CopySource, Instruction};
use crate::frontend::Dockerfile;

pub(crate) fn check(ctx: &Ctx, df: &Dockerfile, model: &Model, out: &mut Vec<Finding>) {
    base_not_pinned(ctx, df, model, out);
    busybox_adduser(ctx, df, model, out);
    secret_build_args(ctx, df, out);
    source_before_install(ctx, df, model, out);
}

fn base_not_pinned(ctx: &Ctx, df: &Dockerfile, model: &Model, out: &mut Vec<Finding>) {
    for (stage, m) in df.stages.iter().zip(&model.stages) {
        let BaseRef::Image(image) = &m.base else {
            continue;
        };
        if image.contains("@sha256:") {
            continue;
        }
        let via_arg = stage.from.image.contains('$');
        let line_len = ctx.line(stage.image_pos.line).chars().count();
        let len = stage
            .from
            .image
            .chars()
            .count()
            .min(line_len.saturating_sub(stage.image_pos.col) + 1);
        // Name the base as written (and its default), never a --build-arg value.
        let shown = match &m.default_image {
            Some(d) if via_arg => format!("{} ({d} by default)", stage.from.image),
            _ => image.clone(),
        };
        let shown_default = m.default_image.as_deref().unwrap_or(image);
        out.push(
            Finding::new(
                "BaseImageNotPinned",
                stage.image_pos,
                format!("base image {shown} is a tag, not a digest: the tag moves when it is republished, so this Dockerfile builds another image later and every step after FROM misses the cache"),
            )
            .len(len)
            .hint(if via_arg {
                format!("pin the ARG's default by digest: {shown_default}@sha256:<digest> (`skopeo inspect docker://{shown_default}` prints it)")
            } else {
                format!("pin it: FROM {image}@sha256:<digest> (`skopeo inspect docker://{image}` prints it); the tag may stay for readers")
            }),
        );
    }
}

/// BusyboxAdduser: BusyBox `adduser` writes the day of the build into /etc/shadow's
/// last-change field; only stages whose files ship (the target and its FROM chain) count.
fn busybox_adduser(ctx: &Ctx, df: &Dockerfile, model: &Model, out: &mut Vec<Finding>) {
    for si in model.ships() {
        let busybox = model.stages[si]
            .root_image
            .as_deref()
            .is_some_and(|i| i.contains("alpine") || i.contains("busybox"));
        if !busybox {
            continue;
        }
        for step in &df.stages[si].steps {
            let Some(text) = run_text(step) else { continue };
            if text.contains("/etc/shadow") {
                continue;
            }
            if commands(&text)
                .iter()
                .any(|c| c.first().is_some_and(|w| w == "adduser"))
            {
                let (p, l) = at(ctx, step, "adduser");
                out.push(
                    Finding::new(
                        "BusyboxAdduser",
                        p,
                        format!("BusyBox adduser writes today's day number into /etc/shadow in stage {:?}, which ships: this layer's digest changes from one day to the next", df.stages[si].display_name()),
                    )
                    .len(l)
                    .hint("after adduser, clear the field: sed -i -E 's/^([^:]*:[^:]*):[0-9]+:/\\1::/' /etc/shadow (or write the passwd/group/shadow lines yourself)"),
                );
            }
        }
    }
}

/// SecretAsBuildArg: a secret-looking ARG that a later RUN of the stage sees.
fn secret_build_args(ctx: &Ctx, df: &Dockerfile, out: &mut Vec<Finding>) {
    for stage in &df.stages {
        for (i, step) in stage.steps.iter().enumerate() {
            let Instruction::Arg { args } = &step.instruction else {
                continue;
            };
            let Some(run) = stage.steps[i + 1..]
                .iter()
                .find(|s| matches!(s.instruction, Instruction::Run(_)))
            else {
                continue;
            };
            for a in args.iter().filter(|a| is_secret_name(&a.name)) {
                let (p, l) = at(ctx, step, &a.name);
                let id = a.name.to_ascii_lowercase();
                out.push(
                    Finding::new(
                        "SecretAsBuildArg",
                        p,
                        format!("ARG {} reaches the RUN at line {}: its value is part of that step's cache key (a rotated secret rebuilds it) and is recorded in the image history", a.name, run.span.start.line),
                    )
                    .len(l)
                    .hint(format!("RUN --mount=type=secret,id={id},env={} … with cairn build --secret id={id},env={}", a.name, a.name)),
                );
            }
        }
    }
}

/// SourceCopiedBeforeInstall: a COPY of sources (`.` or a directory) from the context,
/// then a dependency install in the same stage or a stage built on it.
fn source_before_install(ctx: &Ctx, df: &Dockerfile, model: &Model, out: &mut Vec<Finding>) {
    for si in 0..df.stages.len() {
        let chain = model.chain(si);
        let mut copied = None;
        for &s in chain.iter().rev() {
            for step in &df.stages[s].steps {
                if let Instruction::Copy(c) | Instruction::Add(c) = &step.instruction {
                    if c.from.is_some() || copied.is_some() {
                        continue;
                    }
                    let src = c.sources.iter().find_map(|x| match x {
                        CopySource::Path(p) if is_source_tree(ctx, p) => Some(p.clone()),
                        _ => None,
                    });
                    if let Some(src) = src {
                        copied = Some((step, src));
                    }
                    continue;
                }
                let (Some((copy, src)), Some(text)) = (&copied, run_text(step)) else {
                    continue;
                };
                if let Some(cmd) = commands(&text).iter().find_map(|c| install(c)) {
                    // Report once, in the stage that runs the install.
                    if s != si {
                        copied = None;
                        continue;
                    }
                    let (p, l) = at(ctx, copy, src);
                    out.push(
                        Finding::new(
                            "SourceCopiedBeforeInstall",
                            p,
                            format!("{src} is copied before `{cmd}` at line {}: every source edit changes this layer, so the install runs again", step.span.start.line),
                        )
                        .len(l)
                        .hint("copy package.json and the lockfile first, install, then copy the sources"),
                    );
                    copied = None;
                }
            }
        }
    }
}

/// Whether a COPY source is a source tree: the context, or a directory in it.
fn is_source_tree(ctx: &Ctx, src: &str) -> bool {
    let clean = cairn_layers::dockerignore::clean(src);
    clean == "."
        || clean == "/"
        || (src.ends_with('/') && !src.contains('*'))
        || ctx
            .context
            .is_some_and(|c| !src.contains('*') && c.join(&clean).is_dir())
}
