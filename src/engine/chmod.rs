//! `COPY --chmod=`: an octal mode (`755`) or a symbolic one (`+x`,
//! `u=rwX,go=rX`, Dockerfile ≥ 1.14), applied to each copied entry.

/// A parsed `--chmod`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Chmod {
    /// Replace the permission bits.
    Octal(u32),
    /// chmod(1)-style clauses applied in order to each entry's own mode.
    Symbolic(Vec<Clause>),
}

/// One `who op perms` clause (`go=rX`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Clause {
    /// Affected bits mask built from `ugoa` (empty means all).
    who: u32,
    /// Operations in order.
    ops: Vec<(char, Perms)>,
}

/// The permission letters after an operator.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Perms {
    /// `rwxXst` letters.
    Letters(String),
    /// Copy another class's bits (`g=u`).
    Copy(char),
}

/// Why a `--chmod` value is invalid.
#[derive(Debug, thiserror::Error)]
#[error("invalid chmod parameter: '{0}'. it should be octal string and between 0 and 07777, or a symbolic mode such as u=rwX,go=rX")]
pub struct BadChmod(pub String);

impl Chmod {
    /// Parse an octal or symbolic mode.
    pub fn parse(s: &str) -> Result<Chmod, BadChmod> {
        let bad = || BadChmod(s.to_owned());
        if !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()) {
            return u32::from_str_radix(s, 8)
                .ok()
                .filter(|m| *m <= 0o7777)
                .map(Chmod::Octal)
                .ok_or_else(bad);
        }
        let mut clauses = Vec::new();
        for part in s.split(',') {
            let mut who = 0;
            let mut chars = part.chars().peekable();
            while let Some(&c) = chars.peek() {
                let bits = match c {
                    'u' => 0o4700,
                    'g' => 0o2070,
                    'o' => 0o1007,
                    'a' => 0o7777,
                    _ => break,
                };
                who |= bits;
                chars.next();
            }
            let mut ops = Vec::new();
            while let Some(op) = chars.next() {
                if !matches!(op, '+' | '-' | '=') {
                    return Err(bad());
                }
                let mut letters = String::new();
                while let Some(&c) = chars.peek() {
                    if matches!(c, '+' | '-' | '=') {
                        break;
                    }
                    letters.push(c);
                    chars.next();
                }
                let perms = match letters.as_str() {
                    "u" | "g" | "o" => Perms::Copy(letters.chars().next().unwrap_or('u')),
                    l if l.chars().all(|c| "rwxXst".contains(c)) => Perms::Letters(letters),
                    _ => return Err(bad()),
                };
                ops.push((op, perms));
            }
            if ops.is_empty() {
                return Err(bad());
            }
            clauses.push(Clause { who, ops });
        }
        Ok(Chmod::Symbolic(clauses))
    }

    /// The new permission bits of an entry whose current mode is `mode`.
    /// `X` grants execute only to directories and files already executable by someone.
    pub fn apply(&self, mode: u32, is_dir: bool) -> u32 {
        let mut m = mode & 0o7777;
        let clauses = match self {
            Chmod::Octal(o) => return *o,
            Chmod::Symbolic(c) => c,
        };
        for cl in clauses {
            // No `ugoa` means all classes (no umask applies to a copy).
            let who = if cl.who == 0 { 0o7777 } else { cl.who };
            for (op, perms) in &cl.ops {
                let bits = match perms {
                    Perms::Letters(l) => letter_bits(l, m, is_dir),
                    Perms::Copy(c) => {
                        let v = match c {
                            'u' => (m >> 6) & 7,
                            'g' => (m >> 3) & 7,
                            _ => m & 7,
                        };
                        v * 0o111
                    }
                } & who;
                m = match op {
                    '+' => m | bits,
                    '-' => m & !bits,
                    // `=` clears the class's rwx (and its special bit) first.
                    _ => (m & !(who & 0o7777)) | bits,
                };
            }
        }
        m
    }
}

fn letter_bits(letters: &str, mode: u32, is_dir: bool) -> u32 {
    let mut b = 0;
    for c in letters.chars() {
        b |= match c {
            'r' => 0o444,
            'w' => 0o222,
            'x' => 0o111,
            'X' if is_dir || mode & 0o111 != 0 => 0o111,
            's' => 0o6000,
            't' => 0o1000,
            _ => 0,
        };
    }
    b
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sym(s: &str, mode: u32, dir: bool) -> u32 {
        Chmod::parse(s).unwrap().apply(mode, dir)
    }

    #[test]
    fn octal_replaces_and_is_range_checked() {
        assert_eq!(Chmod::parse("755").unwrap().apply(0o600, false), 0o755);
        assert_eq!(Chmod::parse("4755").unwrap(), Chmod::Octal(0o4755));
        assert!(Chmod::parse("17777").is_err());
        assert!(Chmod::parse("9").is_err());
    }

    #[test]
    fn symbolic_modes_apply_per_entry() {
        assert_eq!(sym("+x", 0o644, false), 0o755);
        assert_eq!(sym("u=rwX,go=rX", 0o600, false), 0o644);
        assert_eq!(sym("u=rwX,go=rX", 0o700, false), 0o755);
        assert_eq!(sym("u=rwX,go=rX", 0o600, true), 0o755);
        assert_eq!(sym("go-w", 0o666, false), 0o644);
        assert_eq!(sym("a=r", 0o777, true), 0o444);
        assert_eq!(sym("g=u", 0o750, false), 0o770);
        assert_eq!(sym("u+s", 0o755, false), 0o4755);
        assert_eq!(sym("o=", 0o757, false), 0o750);
    }

    #[test]
    fn malformed_symbolic_modes_are_rejected() {
        for bad in ["", "u", "u+q", "z+x", "+x,", "u+x;rm"] {
            assert!(Chmod::parse(bad).is_err(), "{bad}");
        }
    }
}
