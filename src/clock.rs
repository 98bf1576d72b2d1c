//! Unix seconds, RFC 3339 and the admin's durations (`90d`, `12h`, `30m`).

use std::time::{Duration, SystemTime, UNIX_EPOCH};

pub fn now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}

/// The longest duration an admin can give: a century is "never" for any practical purpose.
const MAX_DURATION: i64 = 100 * 366 * 86400;

/// The last second RFC 3339 can write (9999-12-31T23:59:59Z).
const MAX_RFC3339: i64 = 253_402_300_799;

/// `2026-11-29T09:30:00Z`.
pub fn rfc3339(unix: i64) -> String {
    let t = UNIX_EPOCH + Duration::from_secs(unix.clamp(0, MAX_RFC3339) as u64);
    humantime::format_rfc3339_seconds(t).to_string()
}

/// Parses a duration such as `90d`, `12h`, `30m` or `45s` into seconds.
pub fn parse_duration(text: &str) -> Result<i64, String> {
    let d = humantime::parse_duration(text.trim()).map_err(|_| {
        format!("invalid duration {text:?}: use a number and a unit, like 90d, 12h, 30m or 45s")
    })?;
    if d.is_zero() {
        return Err(format!(
            "invalid duration {text:?}: it must be longer than zero"
        ));
    }
    i64::try_from(d.as_secs())
        .ok()
        .filter(|s| *s <= MAX_DURATION)
        .ok_or_else(|| format!("duration {text:?} is too long: at most 100 years"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_take_days_hours_minutes_seconds() {
        assert_eq!(parse_duration("90d"), Ok(90 * 86400));
        assert_eq!(parse_duration("12h"), Ok(12 * 3600));
        assert_eq!(parse_duration("30m"), Ok(1800));
        assert_eq!(parse_duration("45s"), Ok(45));
        assert!(parse_duration("banana").is_err());
        assert!(parse_duration("0s").is_err());
        assert!(parse_duration("99999999d").is_err());
    }

    #[test]
    fn times_print_as_utc_rfc3339() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00Z");
        assert_eq!(rfc3339(1_800_000_000), "2027-01-15T08:00:00Z");
        assert_eq!(rfc3339(i64::MAX), "9999-12-31T23:59:59Z");
    }
}
