//! The string syntaxes kubelet parses inside its configuration: Go durations
//! (`metav1.Duration`, Go's `time.ParseDuration`), resource quantities (`100m`, `1Gi`,
//! `resource.ParseQuantity`) and percentages (`10%`). Each parser says only whether the text is
//! well-formed (and its size where a range applies); its error is a phrase that never repeats
//! the text.

/// Nanoseconds in one of each unit Go's `time.ParseDuration` knows.
const DURATION_UNITS: &[(&str, u128)] = &[
    ("ns", 1),
    ("us", 1_000),
    ("µs", 1_000),
    ("μs", 1_000),
    ("ms", 1_000_000),
    ("s", 1_000_000_000),
    ("m", 60_000_000_000),
    ("h", 3_600_000_000_000),
];

/// A Go duration string (`10s`, `1m30s`, `1.5h`, `-5m`, `0`) in nanoseconds, as
/// `time.ParseDuration` reads it: an optional sign, then one or more `<number><unit>` with an
/// optional decimal fraction; a bare `0` needs no unit. Go refuses anything beyond 2^63-1 ns.
pub(super) fn parse_go_duration(text: &str) -> Result<i128, &'static str> {
    let (negative, body) = match text.as_bytes().first() {
        Some(b'-') => (true, &text[1..]),
        Some(b'+') => (false, &text[1..]),
        _ => (false, text),
    };
    if body == "0" {
        return Ok(0);
    }
    if body.is_empty() {
        return Err("is empty");
    }
    let mut total: u128 = 0;
    let mut rest = body;
    while !rest.is_empty() {
        let whole_len = rest.bytes().take_while(u8::is_ascii_digit).count();
        let (whole, after) = rest.split_at(whole_len);
        let (fraction, after) = match after.strip_prefix('.') {
            Some(tail) => {
                let len = tail.bytes().take_while(u8::is_ascii_digit).count();
                tail.split_at(len)
            }
            None => ("", after),
        };
        if whole.is_empty() && fraction.is_empty() {
            return Err("needs a number before each unit");
        }
        let unit_len = after
            .char_indices()
            .find(|(_, c)| !c.is_alphabetic())
            .map_or(after.len(), |(i, _)| i);
        let (unit, tail) = after.split_at(unit_len);
        let Some(&(_, scale)) = DURATION_UNITS.iter().find(|(name, _)| *name == unit) else {
            return Err(if unit.is_empty() {
                "needs a unit after each number (ns, us, ms, s, m, h)"
            } else {
                "has a unit Go does not know (use ns, us, ms, s, m or h)"
            });
        };
        total = total
            .checked_add(scaled(whole, fraction, scale).ok_or(TOO_LONG)?)
            .ok_or(TOO_LONG)?;
        if total > i64::MAX as u128 {
            return Err(TOO_LONG);
        }
        rest = tail;
    }
    let total = total as i128;
    Ok(if negative { -total } else { total })
}

const TOO_LONG: &str = "is longer than Go's largest duration (about 292 years)";

/// `whole.fraction` units of `scale` nanoseconds, truncated to whole nanoseconds as Go does.
fn scaled(whole: &str, fraction: &str, scale: u128) -> Option<u128> {
    let whole: u128 = if whole.is_empty() {
        0
    } else {
        whole.parse().ok()?
    };
    let mut ns = whole.checked_mul(scale)?;
    // Digits beyond the 20th cannot change whole nanoseconds of a duration that fits in i64.
    let digits = &fraction[..fraction.len().min(20)];
    if !digits.is_empty() {
        let numerator: u128 = digits.parse().ok()?;
        ns = ns.checked_add(numerator * scale / 10u128.pow(digits.len() as u32))?;
    }
    Some(ns)
}

/// A duration in nanoseconds as a Go duration string would say it (`300ms`, `1s`, `5m`), for
/// range messages: the largest unit that divides it.
pub(super) fn show_duration(ns: i128) -> String {
    if ns == 0 {
        return "0s".into();
    }
    for (unit, scale) in [
        ("h", 3_600_000_000_000i128),
        ("m", 60_000_000_000),
        ("s", 1_000_000_000),
        ("ms", 1_000_000),
        ("us", 1_000),
    ] {
        if ns % scale == 0 {
            return format!("{}{unit}", ns / scale);
        }
    }
    format!("{ns}ns")
}

/// Whether a resource quantity (`resource.ParseQuantity`) is well-formed and negative:
/// `<sign>?<digits>[.<digits>]<suffix>` with suffix one of `Ki Mi Gi Ti Pi Ei`,
/// `n u m k M G T P E`, nothing, or a decimal exponent (`e3`, `E-2`).
pub(super) fn parse_quantity(text: &str) -> Result<Sign, &'static str> {
    const SHAPE: &str = "is not a resource quantity (like `100m`, `512Mi`, `2Gi` or `1.5`)";
    let (negative, body) = split_sign(text);
    let number_len = body
        .bytes()
        .take_while(|b| b.is_ascii_digit() || *b == b'.')
        .count();
    let (number, suffix) = body.split_at(number_len);
    if !is_decimal(number) {
        return Err(SHAPE);
    }
    let suffix_ok = matches!(
        suffix,
        "" | "Ki"
            | "Mi"
            | "Gi"
            | "Ti"
            | "Pi"
            | "Ei"
            | "n"
            | "u"
            | "m"
            | "k"
            | "M"
            | "G"
            | "T"
            | "P"
            | "E"
    ) || suffix.strip_prefix(['e', 'E']).is_some_and(|exp| {
        let (_, digits) = split_sign(exp);
        !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit())
    });
    if !suffix_ok {
        return Err(SHAPE);
    }
    let zero = number.bytes().all(|b| b == b'0' || b == b'.');
    Ok(if negative && !zero {
        Sign::Negative
    } else {
        Sign::NotNegative
    })
}

/// Whether a quantity is below zero.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Sign {
    Negative,
    NotNegative,
}

/// A percentage `<number>%` between 0 and 100, as kubelet reads eviction thresholds (a decimal
/// is allowed) or `qosReserved` (`integer`: whole percents only).
pub(super) fn parse_percent(text: &str, integer: bool) -> Result<(), &'static str> {
    let Some(number) = text.strip_suffix('%') else {
        return Err("is not a percentage (like `10%`)");
    };
    let well_formed = if integer {
        !number.is_empty() && number.bytes().all(|b| b.is_ascii_digit())
    } else {
        is_decimal(number)
    };
    if !well_formed {
        return Err(if integer {
            "is not a whole percentage (like `50%`)"
        } else {
            "is not a percentage (like `10%` or `7.5%`)"
        });
    }
    match number.parse::<f64>() {
        Ok(p) if (0.0..=100.0).contains(&p) => Ok(()),
        _ => Err("is a percentage above 100%"),
    }
}

/// `digits`, `digits.digits`, `digits.` or `.digits`.
fn is_decimal(s: &str) -> bool {
    let mut parts = s.splitn(2, '.');
    let whole = parts.next().unwrap_or("");
    let fraction = parts.next().unwrap_or("");
    (!whole.is_empty() || !fraction.is_empty())
        && whole.bytes().all(|b| b.is_ascii_digit())
        && fraction.bytes().all(|b| b.is_ascii_digit())
}

fn split_sign(s: &str) -> (bool, &str) {
    match s.as_bytes().first() {
        Some(b'-') => (true, &s[1..]),
        Some(b'+') => (false, &s[1..]),
        _ => (false, s),
    }
}
