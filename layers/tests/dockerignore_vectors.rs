//! Every `.dockerignore` vector in `testdata/dockerignore/*.tsv`, checked
//! against the matcher and against a real walk of a temporary context.
//!
//! Format (one header line): `patterns<TAB>path<TAB>excluded<TAB>source<TAB>note`;
//! `patterns` is a file's contents with lines separated by the two characters
//! `\n`; `excluded` is `true`, `false`, or `error` (the file must be rejected).
//!
//! With `CAIRN_DOCKERIGNORE_ORACLE=/path/to/oracle` (a Go program built on
//! moby/patternmatcher that reads `patterns<TAB>path` lines and prints a
//! verdict per line), `differential_against_go_oracle` also compares
//! thousands of generated cases.

use cairn_layers::context::BuildContext;
use cairn_layers::dockerignore::Matcher;
use std::path::{Path, PathBuf};

struct Case {
    file: &'static str,
    line: usize,
    patterns: String,
    path: String,
    expected: String,
}

fn testdata() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../testdata/dockerignore")
}

fn load(file: &'static str) -> Vec<Case> {
    let text = std::fs::read_to_string(testdata().join(file)).unwrap();
    text.lines()
        .enumerate()
        .skip(1)
        .map(|(i, l)| {
            let f: Vec<&str> = l.split('\t').collect();
            assert!(f.len() >= 3, "{file}:{}: malformed row", i + 1);
            Case {
                file,
                line: i + 1,
                patterns: f[0].replace("\\n", "\n"),
                path: f[1].to_owned(),
                expected: f[2].to_owned(),
            }
        })
        .collect()
}

fn verdict(patterns: &str, path: &str) -> String {
    match Matcher::parse(patterns.as_bytes(), None) {
        Ok(m) => m.is_excluded(path).to_string(),
        Err(_) => "error".into(),
    }
}

/// Whether a walk of a context holding `path` as a file lists it.
fn walk_lists(patterns: &str, path: &str) -> Result<bool, String> {
    let t = tempfile::tempdir().unwrap();
    let ctx = t.path().join("ctx");
    let file = ctx.join(path);
    std::fs::create_dir_all(file.parent().unwrap()).unwrap();
    std::fs::write(&file, "x").unwrap();
    let ignore = t.path().join("Dockerfile.dockerignore");
    std::fs::write(&ignore, patterns).unwrap();
    let bc =
        BuildContext::open(&ctx, Some(&t.path().join("Dockerfile"))).map_err(|e| e.to_string())?;
    let entries = bc.walk().map_err(|e| e.to_string())?;
    Ok(entries.iter().any(|e| e.path == path))
}

fn check(cases: &[Case]) {
    let mut failures = Vec::new();
    for c in cases {
        let got = verdict(&c.patterns, &c.path);
        if got != c.expected {
            failures.push(format!(
                "{}:{}: patterns {:?} path {:?}: expected {} got {got}",
                c.file, c.line, c.patterns, c.path, c.expected
            ));
            continue;
        }
        // The same answer through a real walk (the path created as a file).
        let walked = walk_lists(&c.patterns, &c.path);
        let ok = match (c.expected.as_str(), &walked) {
            ("error", Err(_)) => true,
            ("true", Ok(listed)) => !listed,
            ("false", Ok(listed)) => *listed,
            _ => false,
        };
        if !ok {
            failures.push(format!(
                "{}:{}: walk of {:?} with {:?}: expected {} got {walked:?}",
                c.file, c.line, c.path, c.patterns, c.expected
            ));
        }
    }
    assert!(
        failures.is_empty(),
        "{} failures:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

#[test]
fn patternmatcher_vectors() {
    let cases = load("patternmatcher.tsv");
    assert_eq!(cases.len(), 188);
    check(&cases);
}

#[test]
fn cairn_vectors() {
    let cases = load("cairn.tsv");
    assert!(cases.len() >= 100, "{}", cases.len());
    check(&cases);
}

/// A small deterministic generator (xorshift) so failures reproduce.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn pick<'a>(&mut self, items: &[&'a str]) -> &'a str {
        items[(self.next() % items.len() as u64) as usize]
    }
}

#[test]
fn differential_against_go_oracle() {
    let Ok(oracle) = std::env::var("CAIRN_DOCKERIGNORE_ORACLE") else {
        eprintln!("skipped: set CAIRN_DOCKERIGNORE_ORACLE to a moby/patternmatcher oracle binary");
        return;
    };
    const PAT: &[&str] = &[
        "a",
        "b",
        "*",
        "**",
        "?",
        "/",
        "!",
        "\\",
        "[",
        "]",
        "^",
        "-",
        ".",
        "..",
        "ab",
        "a/",
        "*/",
        "**/",
        "[a-c]",
        "[^a]",
        "[!a]",
        "\\*",
        "\\d",
        "\\w",
        " ",
        "#",
        "é",
        "{",
        "}",
        "$",
        "(",
        "|",
        "+",
        "[[:alpha:]]",
        "\\Q",
        "\\E",
        "\\x41",
        "\\101",
        "\\pL",
        "\\b",
        "x",
        ":",
        "[:",
        "{2}",
        "{1,}",
        "{,2}",
        "\\p{Greek}",
        "\\p{Han}",
        "\\x{41}",
        "[:alpha:]",
        "\\0",
        "\\U",
        "\\",
        "a|",
        "\u{feff}",
        "[^/]",
        "\\*",
    ];
    const PATH: &[&str] = &[
        "a", "b", "ab", "x", "é", ".a", "a.b", "*", "[", "]", "^", "-", "A", "_", "5", "\\", "#",
        "!", " ", "$", "{a}", "+", ":", "α", "漢", "|", "aa", "{", "\u{feff}",
    ];
    let count: usize = std::env::var("CAIRN_DOCKERIGNORE_FUZZ_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(20000);
    let seed: u64 = std::env::var("CAIRN_DOCKERIGNORE_FUZZ_SEED")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(0x9e3779b97f4a7c15);
    let mut rng = Rng(seed | 1);
    let mut input = String::new();
    let mut cases = Vec::new();
    for _ in 0..count {
        let lines = 1 + rng.next() % 3;
        let mut patterns = Vec::new();
        for _ in 0..lines {
            let n = 1 + rng.next() % 4;
            let p: String = (0..n).map(|_| rng.pick(PAT)).collect();
            patterns.push(p);
        }
        let depth = 1 + rng.next() % 3;
        let path: Vec<String> = (0..depth)
            .map(|_| (0..1 + rng.next() % 2).map(|_| rng.pick(PATH)).collect())
            .collect();
        let mut path = path.join("/");
        if rng.next() % 2 == 0 {
            // Half the paths are derived from a pattern so that more of them match.
            let src = &patterns[(rng.next() % patterns.len() as u64) as usize];
            let derived: String = src
                .chars()
                .map(|c| match c {
                    '*' => 'a',
                    '?' => 'b',
                    c => c,
                })
                .filter(|c| !matches!(c, '!' | '[' | ']' | '\\'))
                .collect();
            let derived: Vec<&str> = derived.split('/').filter(|c| !c.is_empty()).collect();
            if !derived.is_empty() {
                path = derived.join("/");
            }
        }
        if path
            .split('/')
            .any(|c| c.trim() != c || c == "." || c == "..")
        {
            continue;
        }
        let joined = patterns.join("\\n");
        input.push_str(&format!("{joined}\t{path}\n"));
        cases.push((joined, path));
    }
    let mut child = std::process::Command::new(oracle)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    use std::io::Write;
    let mut stdin = child.stdin.take().unwrap();
    let writer = std::thread::spawn(move || stdin.write_all(input.as_bytes()).unwrap());
    let out = child.wait_with_output().unwrap();
    writer.join().unwrap();
    let answers = String::from_utf8(out.stdout).unwrap();
    assert_eq!(
        answers.lines().count(),
        cases.len(),
        "oracle answered a different number of cases"
    );
    let count = |v: &str| answers.lines().filter(|a| *a == v).count();
    eprintln!(
        "{} cases: {} excluded, {} kept, {} errors",
        cases.len(),
        count("true"),
        count("false"),
        count("error")
    );
    let mut failures = Vec::new();
    for ((patterns, path), want) in cases.iter().zip(answers.lines()) {
        let got = verdict(&patterns.replace("\\n", "\n"), path);
        if got != want {
            failures.push(format!("{patterns}\t{path}\t{want}\t(got {got})"));
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} differ:\n{}",
        failures.len(),
        cases.len(),
        failures[..failures.len().min(40)].join("\n")
    );
}

/// Arbitrary bytes never panic the reader, the compiler or the matcher.
#[test]
fn arbitrary_input_never_panics() {
    const BYTES: &[u8] = b"ab/*?[]^!\\-{}|$.()+:#, \t\r\n\xc3\xa9\xef\xbb\xbfpPQExdw0179";
    let mut rng = Rng(0x2545f4914f6cdd1d);
    for _ in 0..20000 {
        let len = (rng.next() % 24) as usize;
        let bytes: Vec<u8> = (0..len)
            .map(|_| BYTES[(rng.next() % BYTES.len() as u64) as usize])
            .collect();
        if let Ok(m) = Matcher::parse(&bytes, None) {
            for path in ["a", "a/b", "é/x", "[/]", "ab/c/d", "\u{feff}a"] {
                let _ = m.explain(path);
                let _ = m.must_walk_excluded_dir(path);
            }
        }
    }
}
