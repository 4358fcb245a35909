//! BuildKit's `SecretsUsedInArgOrEnv` check at build time (the word test is
//! `cairn check`'s): an ARG or ENV whose
//! name looks like it holds a credential is warned about, because its value
//! ends up in the image's history or config (and, for cairn, as a digest in
//! the build record) — secrets belong in `RUN --mount=type=secret`.

use crate::frontend::instructions::Instruction;
use crate::frontend::{Diagnostic, Dockerfile, Step};

/// One warning per ARG or ENV name that looks like a secret's, anywhere in `df`.
pub fn warnings(df: &Dockerfile) -> Vec<Diagnostic> {
    let steps = df
        .global_args
        .iter()
        .chain(df.stages.iter().flat_map(|s| s.steps.iter()));
    let mut out = Vec::new();
    for step in steps {
        let (kind, names): (&str, Vec<&str>) = match &step.instruction {
            Instruction::Arg { args } => ("ARG", args.iter().map(|a| a.name.as_str()).collect()),
            Instruction::Env { pairs } => ("ENV", pairs.iter().map(|p| p.key.as_str()).collect()),
            _ => continue,
        };
        for name in names
            .into_iter()
            .filter(|n| crate::check::is_secret_name(n))
        {
            out.push(warning(df, step, kind, name));
        }
    }
    out
}

fn warning(df: &Dockerfile, step: &Step, kind: &str, name: &str) -> Diagnostic {
    Diagnostic::warning(
        &df.file,
        &df.source,
        step.span.start,
        format!(
            "SecretsUsedInArgOrEnv: do not use {kind} for sensitive data ({kind} {name:?}): \
             its value is kept in the image history or config"
        ),
    )
    .with_hint(format!(
        "use RUN --mount=type=secret,id={},env={name} and pass it with --secret id={},env={name}",
        name.to_ascii_lowercase(),
        name.to_ascii_lowercase()
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn warns_at_the_arg_and_env_lines() {
        let src = "ARG BASE=x\nFROM scratch\nARG NPM_TOKEN\nENV NODE_ENV=production API_KEY=1\n";
        let df = crate::frontend::parse(src, std::path::Path::new("Dockerfile")).unwrap();
        let w: Vec<String> = warnings(&df).iter().map(|d| d.to_string()).collect();
        assert_eq!(w.len(), 2, "{w:?}");
        assert!(
            w[0].contains("Dockerfile:3") && w[0].contains("ARG \"NPM_TOKEN\""),
            "{w:?}"
        );
        assert!(
            w[1].contains("Dockerfile:4") && w[1].contains("ENV \"API_KEY\""),
            "{w:?}"
        );
    }
}
