//! Time as Bacalhau's wire format carries it: int64 Unix nanoseconds for model timestamps and
//! RFC 3339 strings for history events.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Nanoseconds since the Unix epoch.
pub type UnixNanos = i64;

/// Converts a system time to Unix nanoseconds (saturating outside i64's range).
pub fn to_unix_nanos(t: SystemTime) -> UnixNanos {
    match t.duration_since(UNIX_EPOCH) {
        Ok(d) => i64::try_from(d.as_nanos()).unwrap_or(i64::MAX),
        Err(_) => 0,
    }
}

/// Converts Unix nanoseconds back to a system time (negative values clamp to the epoch).
pub fn from_unix_nanos(n: UnixNanos) -> SystemTime {
    UNIX_EPOCH + Duration::from_nanos(n.max(0) as u64)
}

/// Formats Unix nanoseconds as RFC 3339 with nanosecond precision (UTC).
pub fn rfc3339(n: UnixNanos) -> String {
    humantime::format_rfc3339_nanos(from_unix_nanos(n)).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_through_system_time() {
        let n = 1_700_000_000_123_456_789;
        assert_eq!(to_unix_nanos(from_unix_nanos(n)), n);
        assert_eq!(rfc3339(n), "2023-11-14T22:13:20.123456789Z");
    }
}

/// The job `Meta` key that sets, per job, how long a node may be disconnected before its
/// batch and service work is re-placed elsewhere: a duration (`90s`, `30m`, `2h`, `1h30m`) or
/// `never` (wait for the node however long it is away). Bacalhau ignores unknown `Meta` keys,
/// so the job file stays valid for Bacalhau.
pub const NODE_LOST_GRACE_META: &str = "shoal.io/node-lost-grace";

/// Parses a Go-style duration (`90s`, `1h30m`, `500ms`; a bare number is seconds) into nanos.
pub fn parse_duration(s: &str) -> Result<UnixNanos, String> {
    let s = s.trim();
    if let Ok(secs) = s.parse::<u64>() {
        return Ok(secs as i64 * 1_000_000_000);
    }
    let mut total: i64 = 0;
    let mut rest = s;
    if rest.is_empty() {
        return Err("empty duration; use e.g. 90s, 30m or 2h".into());
    }
    while !rest.is_empty() {
        let digits = rest
            .find(|c: char| !c.is_ascii_digit() && c != '.')
            .ok_or_else(|| format!("{s:?} has a number without a unit; use s, m or h"))?;
        let (num, tail) = rest.split_at(digits);
        let value: f64 = num
            .parse()
            .map_err(|_| format!("{s:?} is not a duration; use e.g. 90s, 30m or 2h"))?;
        let unit_len = tail
            .find(|c: char| c.is_ascii_digit())
            .unwrap_or(tail.len());
        let (unit, next) = tail.split_at(unit_len);
        let scale: f64 = match unit {
            "ns" => 1.0,
            "us" | "µs" => 1e3,
            "ms" => 1e6,
            "s" => 1e9,
            "m" => 60e9,
            "h" => 3600e9,
            other => {
                return Err(format!(
                    "{s:?} has an unknown unit {other:?}; use ms, s, m or h"
                ));
            }
        };
        total = total.saturating_add((value * scale) as i64);
        rest = next;
    }
    Ok(total)
}

/// Formats nanos the way Go (and so Bacalhau's messages) print a duration, to the second:
/// `45s`, `6m0s`, `1h2m3s`. Negative durations print as `0s`.
pub fn go_duration(nanos: UnixNanos) -> String {
    let secs = nanos.max(0) / 1_000_000_000;
    let (h, m, s) = (secs / 3600, secs / 60 % 60, secs % 60);
    if h > 0 {
        format!("{h}h{m}m{s}s")
    } else if m > 0 {
        format!("{m}m{s}s")
    } else {
        format!("{s}s")
    }
}

/// A span of time written as a Go duration on the wire (`30s`, `5m`, `1h30m`, `500ms`), held
/// as nanoseconds.
///
/// Reads what [`parse_duration`] reads (a bare number is seconds) and writes the shortest text
/// that reads back to the same value: whole seconds as Go prints them (`1m30s`), anything finer
/// in `ms` or `ns`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct GoDuration(pub i64);

impl GoDuration {
    /// A duration of whole seconds.
    pub const fn from_secs(secs: i64) -> Self {
        GoDuration(secs.saturating_mul(1_000_000_000))
    }

    /// The length in nanoseconds.
    pub const fn nanos(self) -> i64 {
        self.0
    }

    /// Whether the duration is zero (or negative, which nothing writes).
    pub const fn is_zero(&self) -> bool {
        self.0 <= 0
    }
}

impl std::fmt::Display for GoDuration {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let n = self.0.max(0);
        if n % 1_000_000_000 == 0 {
            f.write_str(&go_duration(n))
        } else if n % 1_000_000 == 0 {
            write!(f, "{}ms", n / 1_000_000)
        } else {
            write!(f, "{n}ns")
        }
    }
}

impl std::str::FromStr for GoDuration {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        parse_duration(s).map(GoDuration)
    }
}

impl serde::Serialize for GoDuration {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> serde::Deserialize<'de> for GoDuration {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        match serde_json::Value::deserialize(d)? {
            serde_json::Value::String(s) => s.parse().map_err(serde::de::Error::custom),
            serde_json::Value::Number(n) => n
                .as_i64()
                .filter(|&secs| secs >= 0)
                .map(GoDuration::from_secs)
                .ok_or_else(|| serde::de::Error::custom(format!("{n} is not a duration"))),
            other => Err(serde::de::Error::custom(format!(
                "expected a duration such as 30s, got {other}"
            ))),
        }
    }
}

#[cfg(test)]
mod duration_tests {
    use super::{go_duration, parse_duration};

    const S: i64 = 1_000_000_000;

    #[test]
    fn go_durations_parse() {
        assert_eq!(parse_duration("90s"), Ok(90 * S));
        assert_eq!(parse_duration("1h30m"), Ok(5400 * S));
        assert_eq!(parse_duration("500ms"), Ok(S / 2));
        assert_eq!(parse_duration("45"), Ok(45 * S));
    }

    #[test]
    fn bad_durations_say_what_to_write() {
        assert!(parse_duration("soon").unwrap_err().contains("90s"));
        assert!(parse_duration("5x").unwrap_err().contains("unknown unit"));
        assert!(parse_duration("").is_err());
    }

    #[test]
    fn go_durations_write_back_to_the_same_value() {
        for text in ["30s", "1m30s", "1h0m0s", "500ms", "1500ms", "7ns", "0s"] {
            let d: super::GoDuration = text.parse().unwrap();
            assert_eq!(d.to_string().parse::<super::GoDuration>(), Ok(d), "{text}");
        }
        assert_eq!(super::GoDuration::from_secs(90).to_string(), "1m30s");
        let json = serde_json::to_string(&super::GoDuration(S / 2)).unwrap();
        assert_eq!(json, "\"500ms\"");
    }

    #[test]
    fn durations_read_like_go() {
        assert_eq!(go_duration(45 * S), "45s");
        assert_eq!(go_duration(360 * S), "6m0s");
        assert_eq!(go_duration(3723 * S + 5), "1h2m3s");
    }
}
