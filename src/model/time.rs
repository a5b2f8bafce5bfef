//! Wall-clock times as the API server writes and reads them: `metav1.Time`, the HTTP `Date`
//! header, the clock skew estimated from it, and durations in words for messages. Pure: the
//! caller supplies every time (the reporter reads it from [`crate::host::Host::now`]).

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use time::macros::format_description;

/// `metav1.Time` format: RFC 3339, whole seconds, `Z`.
pub fn k8s_time(t: SystemTime) -> String {
    time::OffsetDateTime::from(t)
        .format(format_description!(
            "[year]-[month]-[day]T[hour]:[minute]:[second]Z"
        ))
        .unwrap_or_default()
}

/// Parses an HTTP `Date` header (`Fri, 27 Nov 2026 06:08:10 GMT`).
pub fn parse_http_date(s: &str) -> Option<SystemTime> {
    let t = time::PrimitiveDateTime::parse(
        s.trim(),
        format_description!(
            "[weekday repr:short], [day] [month repr:short] [year] [hour]:[minute]:[second] GMT"
        ),
    )
    .ok()?
    .assume_utc();
    Some(SystemTime::from(t))
}

/// Seconds since the epoch, negative before it.
fn unix_f64(t: SystemTime) -> f64 {
    match t.duration_since(UNIX_EPOCH) {
        Ok(d) => d.as_secs_f64(),
        Err(e) => -e.duration().as_secs_f64(),
    }
}

/// Seconds the server is ahead of us, from its `Date` (1 s resolution: take the middle of the
/// second) and our clock when the answer arrived.
pub fn clock_skew(server_date: SystemTime, received_at: SystemTime) -> f64 {
    unix_f64(server_date) + 0.5 - unix_f64(received_at)
}

/// A duration in whole days, hours or minutes, for people ("3 days", "5 hours").
pub fn human_duration(d: Duration) -> String {
    let s = d.as_secs();
    if s >= 2 * 86400 {
        format!("{} days", s / 86400)
    } else if s >= 2 * 3600 {
        format!("{} hours", s / 3600)
    } else {
        format!("{} minutes", s / 60)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn http_dates_and_skew() {
        let d = parse_http_date("Fri, 27 Nov 2026 06:08:10 GMT").unwrap();
        assert_eq!(k8s_time(d), "2026-11-27T06:08:10Z");
        assert!(parse_http_date("yesterday").is_none());
        let skew = clock_skew(d, d + Duration::from_millis(300));
        assert!((skew - 0.2).abs() < 1e-6, "{skew}");
        assert!(clock_skew(d + Duration::from_secs(3600), d) > 3599.0);
    }
}

/// serde `with` for an `Option<SystemTime>` as whole seconds since the Unix epoch (the state and
/// status files' format).
pub mod opt_unix_seconds {
    use serde::{Deserialize, Deserializer, Serializer};
    use std::time::{Duration, SystemTime, UNIX_EPOCH};

    pub fn serialize<S: Serializer>(t: &Option<SystemTime>, s: S) -> Result<S::Ok, S::Error> {
        match t {
            Some(t) => s.serialize_some(&t.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs())),
            None => s.serialize_none(),
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<SystemTime>, D::Error> {
        Ok(Option::<u64>::deserialize(d)?.map(|s| UNIX_EPOCH + Duration::from_secs(s)))
    }
}
