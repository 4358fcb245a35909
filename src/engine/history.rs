//! `created_by` texts as BuildKit writes them (dockerfile.md §11), so that
//! history reads the same whichever builder made the image.

use crate::frontend::instructions::{CommandLine, Copy, CopySource};

/// `RUN` with the ARGs in scope: `RUN |2 A=1 B=2 /bin/sh -c cmd # buildkit`.
pub fn run(argv: &[String], args: &[(String, String)]) -> String {
    let mut s = String::from("RUN ");
    if !args.is_empty() {
        s.push_str(&format!("|{} ", args.len()));
        for (k, v) in args {
            s.push_str(&format!("{k}={v} "));
        }
    }
    s.push_str(&argv.join(" "));
    s.push_str(" # buildkit");
    s
}

/// `COPY --chown=… --chmod=… src… dest # buildkit` (no --from/--link/--exclude, as BuildKit).
pub fn copy(keyword: &str, c: &Copy) -> String {
    let mut s = keyword.to_owned();
    if c.parents {
        s.push_str(" --parents");
    }
    if let Some(o) = &c.chown {
        s.push_str(&format!(" --chown={o}"));
    }
    if let Some(m) = &c.chmod {
        s.push_str(&format!(" --chmod={m}"));
    }
    for src in &c.sources {
        match src {
            CopySource::Path(p) => s.push_str(&format!(" {p}")),
            CopySource::Heredoc(h) => s.push_str(&format!(" <<{}", h.name)),
        }
    }
    s.push_str(&format!(" {} # buildkit", c.dest));
    s
}

/// Go's `%q` of a string slice: `["a" "b"]`.
pub fn go_quoted(v: &[String]) -> String {
    let items: Vec<String> = v
        .iter()
        .map(|s| serde_json::to_string(s).unwrap_or_default())
        .collect();
    format!("[{}]", items.join(" "))
}

/// `CMD ["a" "b"]` / `ENTRYPOINT [...]` from the argv stored in the config.
pub fn command(keyword: &str, argv: &[String]) -> String {
    format!("{keyword} {}", go_quoted(argv))
}

/// `[a b]` (Go's `%v` of a slice).
pub fn go_list(v: &[String]) -> String {
    format!("[{}]", v.join(" "))
}

/// The argv a CMD/ENTRYPOINT stores: exec form verbatim, shell form wrapped by SHELL.
pub fn argv(cmd: &CommandLine, shell: &[String]) -> Vec<String> {
    cmd.argv(shell)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn run_text_matches_buildkit() {
        let argv = vec!["/bin/sh".to_string(), "-c".into(), "make".into()];
        assert_eq!(run(&argv, &[]), "RUN /bin/sh -c make # buildkit");
        assert_eq!(
            run(&argv, &[("VERSION".into(), "1.2".into())]),
            "RUN |1 VERSION=1.2 /bin/sh -c make # buildkit"
        );
    }

    #[test]
    fn cmd_text_matches_go_q() {
        assert_eq!(
            command(
                "CMD",
                &["/bin/sh".into(), "-c".into(), "node server.js".into()]
            ),
            r#"CMD ["/bin/sh" "-c" "node server.js"]"#
        );
    }
}
