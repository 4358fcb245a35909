//! Go's `time.ParseDuration`, used by `HEALTHCHECK` options.

use std::time::Duration;

/// A Go duration that does not parse, in Go's words.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum DurationError {
    /// Not a duration.
    #[error("time: invalid duration {0:?}")]
    Invalid(String),
    /// A number without its unit.
    #[error("time: missing unit in duration {0:?}")]
    MissingUnit(String),
    /// A unit Go does not know.
    #[error("time: unknown unit {unit:?} in duration {input:?}")]
    UnknownUnit {
        /// The unit.
        unit: String,
        /// The whole duration.
        input: String,
    },
}

/// Parse a Go duration such as `30s`, `1m30s`, `1.5h`, `300ms`; `0` needs no unit.
/// Negative values parse (Go allows them) and are returned as `Err` with a clear message by
/// the caller; here they are reported in the `bool` (`true` = negative).
pub fn parse_go_duration(input: &str) -> Result<(bool, Duration), DurationError> {
    let invalid = || DurationError::Invalid(input.to_owned());
    let mut s = input;
    let mut neg = false;
    if let Some(r) = s.strip_prefix('-') {
        neg = true;
        s = r;
    } else if let Some(r) = s.strip_prefix('+') {
        s = r;
    }
    if s == "0" {
        return Ok((false, Duration::ZERO));
    }
    if s.is_empty() {
        return Err(invalid());
    }
    let mut total: u128 = 0;
    while !s.is_empty() {
        if !s.starts_with(|c: char| c == '.' || c.is_ascii_digit()) {
            return Err(invalid());
        }
        let int_len = s.len() - s.trim_start_matches(|c: char| c.is_ascii_digit()).len();
        let int_part = &s[..int_len];
        s = &s[int_len..];
        let mut frac_part = "";
        if let Some(r) = s.strip_prefix('.') {
            let flen = r.len() - r.trim_start_matches(|c: char| c.is_ascii_digit()).len();
            frac_part = &r[..flen];
            s = &r[flen..];
            if int_part.is_empty() && frac_part.is_empty() {
                return Err(invalid());
            }
        } else if int_part.is_empty() {
            return Err(invalid());
        }
        let unit_len = s
            .find(|c: char| c == '.' || c.is_ascii_digit())
            .unwrap_or(s.len());
        let unit = &s[..unit_len];
        s = &s[unit_len..];
        let scale: u128 = match unit {
            "" => return Err(DurationError::MissingUnit(input.to_owned())),
            "ns" => 1,
            "us" | "\u{b5}s" | "\u{3bc}s" => 1_000,
            "ms" => 1_000_000,
            "s" => 1_000_000_000,
            "m" => 60_000_000_000,
            "h" => 3_600_000_000_000,
            other => {
                return Err(DurationError::UnknownUnit {
                    unit: other.to_owned(),
                    input: input.to_owned(),
                })
            }
        };
        let int: u128 = if int_part.is_empty() {
            0
        } else {
            int_part.parse().map_err(|_| invalid())?
        };
        let mut v = int.checked_mul(scale).ok_or_else(invalid)?;
        // Fraction digits beyond nanosecond precision are dropped, as Go does.
        let mut f_scale = scale;
        for d in frac_part.bytes() {
            f_scale /= 10;
            if f_scale == 0 {
                break;
            }
            v += u128::from(d - b'0') * f_scale;
        }
        total = total.checked_add(v).ok_or_else(invalid)?;
        if total > i64::MAX as u128 {
            return Err(invalid());
        }
    }
    let nanos = u64::try_from(total).map_err(|_| invalid())?;
    Ok((neg && nanos > 0, Duration::from_nanos(nanos)))
}

/// Go's `Duration.String()` (`1m30s`, `500ms`, `0s`), for messages and history text.
pub fn format_go_duration(d: Duration) -> String {
    let n = d.as_nanos();
    if n == 0 {
        return "0s".into();
    }
    if n < 1_000 {
        return format!("{n}ns");
    }
    if n < 1_000_000 {
        return format!("{}µs", trim_frac(n, 1_000));
    }
    if n < 1_000_000_000 {
        return format!("{}ms", trim_frac(n, 1_000_000));
    }
    let secs = n / 1_000_000_000;
    let rem = n % 1_000_000_000;
    let (h, m, s) = (secs / 3600, (secs / 60) % 60, secs % 60);
    let sec = trim_frac(s * 1_000_000_000 + rem, 1_000_000_000);
    match (h, m) {
        (0, 0) => format!("{sec}s"),
        (0, m) => format!("{m}m{sec}s"),
        (h, m) => format!("{h}h{m}m{sec}s"),
    }
}

fn trim_frac(n: u128, unit: u128) -> String {
    let (i, f) = (n / unit, n % unit);
    if f == 0 {
        return i.to_string();
    }
    let width = unit.to_string().len() - 1;
    let frac = format!("{f:0width$}");
    format!("{i}.{}", frac.trim_end_matches('0'))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_like_go() {
        let ms = |s: &str| parse_go_duration(s).map(|(n, d)| (n, d.as_millis()));
        assert_eq!(ms("30s"), Ok((false, 30_000)));
        assert_eq!(ms("1m30s"), Ok((false, 90_000)));
        assert_eq!(ms("1.5h"), Ok((false, 5_400_000)));
        assert_eq!(ms(".5s"), Ok((false, 500)));
        assert_eq!(ms("0"), Ok((false, 0)));
        assert_eq!(ms("-1s"), Ok((true, 1000)));
        assert_eq!(parse_go_duration("1500us").unwrap().1.as_micros(), 1500);
        assert_eq!(parse_go_duration("1µs").unwrap().1.as_nanos(), 1000);
        assert_eq!(
            parse_go_duration("1").unwrap_err().to_string(),
            "time: missing unit in duration \"1\""
        );
        assert_eq!(
            parse_go_duration("1x").unwrap_err().to_string(),
            "time: unknown unit \"x\" in duration \"1x\""
        );
        assert!(parse_go_duration("").is_err());
        assert!(parse_go_duration(".s").is_err());
        assert!(parse_go_duration("s").is_err());
        assert!(parse_go_duration("9999999999999h").is_err());
    }

    #[test]
    fn formats_like_go() {
        let f = |s: &str| format_go_duration(parse_go_duration(s).unwrap().1);
        assert_eq!(f("5m"), "5m0s");
        assert_eq!(f("3s"), "3s");
        assert_eq!(f("0"), "0s");
        assert_eq!(f("1.5s"), "1.5s");
        assert_eq!(f("300ms"), "300ms");
        assert_eq!(f("2h"), "2h0m0s");
    }
}
