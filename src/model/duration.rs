//! Durations as users write them (`90s`, `5m`, `1m30s`, plain seconds).

use std::time::Duration;

/// Parses a duration: `300` (seconds), or a sequence of `<number><unit>` with units `h`, `m`,
/// `s`, `ms` (`90s`, `5m`, `1m30s`, Go's `5m0s`). Zero is refused: a timeout must be positive.
/// The error is a phrase for the config error `InvalidDuration`.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    if s.is_empty() {
        return Err("it is empty".into());
    }
    let total = if s.bytes().all(|b| b.is_ascii_digit()) {
        let secs: u64 = s.parse().map_err(|_| "it is too large".to_owned())?;
        Duration::from_secs(secs)
    } else {
        let mut total = Duration::ZERO;
        let mut rest = s;
        while !rest.is_empty() {
            let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
            if digits == 0 {
                return Err(format!(
                    "expected a number at {rest:?} (fractions are not supported)"
                ));
            }
            let n: u64 = rest[..digits]
                .parse()
                .map_err(|_| "it is too large".to_owned())?;
            rest = &rest[digits..];
            let (unit, len) = if rest.starts_with("ms") {
                (Duration::from_millis(1), 2)
            } else if rest.starts_with('h') {
                (Duration::from_secs(3600), 1)
            } else if rest.starts_with('m') {
                (Duration::from_secs(60), 1)
            } else if rest.starts_with('s') {
                (Duration::from_secs(1), 1)
            } else {
                return Err(format!(
                    "unknown or missing unit after {n} (use h, m, s or ms)"
                ));
            };
            rest = &rest[len..];
            let part = u32::try_from(n)
                .ok()
                .and_then(|n| unit.checked_mul(n))
                .ok_or_else(|| "it is too large".to_owned())?;
            total = total
                .checked_add(part)
                .ok_or_else(|| "it is too large".to_owned())?;
        }
        total
    };
    if total.is_zero() {
        return Err("it must be longer than zero".into());
    }
    Ok(total)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        let d = |s| parse_duration(s).unwrap();
        assert_eq!(d("300"), Duration::from_secs(300));
        assert_eq!(d("90s"), Duration::from_secs(90));
        assert_eq!(d("5m"), Duration::from_secs(300));
        assert_eq!(d("1h"), Duration::from_secs(3600));
        assert_eq!(d("1m30s"), Duration::from_secs(90));
        assert_eq!(d("5m0s"), Duration::from_secs(300));
        assert_eq!(d("1h2m3s500ms"), Duration::from_millis(3_723_500));
        assert_eq!(d(" 2m "), Duration::from_secs(120));
        for bad in [
            "",
            "0",
            "0s",
            "5x",
            "m",
            "1.5h",
            "-5m",
            "5 m",
            "99999999999999999999",
        ] {
            assert!(parse_duration(bad).is_err(), "{bad:?} accepted");
        }
    }
}
