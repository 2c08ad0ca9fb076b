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
