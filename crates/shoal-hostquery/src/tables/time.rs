//! `time`: one row with the current UTC time, split as osquery splits it.

use std::time::{SystemTime, UNIX_EPOCH};

use crate::hostfs;
use crate::table::{Column, HostTable, Row, ScanContext, TableError};

/// osquery's `time` table.
pub struct Time;

impl HostTable for Time {
    const NAME: &'static str = "time";
    const COLUMNS: &'static [Column] = &[
        Column::text("weekday"),
        Column::integer("year"),
        Column::integer("month"),
        Column::integer("day"),
        Column::integer("hour"),
        Column::integer("minutes"),
        Column::integer("seconds"),
        Column::text("timezone"),
        Column::text("local_timezone"),
        Column::integer("unix_time"),
        Column::text("timestamp"),
        Column::text("datetime"),
        Column::text("iso_8601"),
    ];

    fn rows(&self, _cx: &mut ScanContext<'_>) -> Result<Vec<Row>, TableError> {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs() as i64)
            .unwrap_or(0);
        Ok(vec![time_row(now, local_timezone())])
    }
}

const WEEKDAYS: [&str; 7] = [
    "Thursday",
    "Friday",
    "Saturday",
    "Sunday",
    "Monday",
    "Tuesday",
    "Wednesday",
];
pub(crate) const MONTHS: [&str; 12] = [
    "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
];

fn time_row(unix: i64, local_tz: String) -> Row {
    let days = unix.div_euclid(86_400);
    let secs = unix.rem_euclid(86_400);
    let (y, m, d) = civil_from_days(days);
    let (hh, mm, ss) = (secs / 3600, secs % 3600 / 60, secs % 60);
    let weekday = WEEKDAYS[days.rem_euclid(7) as usize];
    let iso = format!("{y:04}-{m:02}-{d:02}T{hh:02}:{mm:02}:{ss:02}Z");
    let timestamp = format!(
        "{} {} {d:02} {hh:02}:{mm:02}:{ss:02} {y} UTC",
        &weekday[..3],
        MONTHS[m as usize - 1]
    );
    vec![
        weekday.into(),
        y.into(),
        m.into(),
        d.into(),
        hh.into(),
        mm.into(),
        ss.into(),
        "UTC".into(),
        local_tz.into(),
        unix.into(),
        timestamp.into(),
        iso.clone().into(),
        iso.into(),
    ]
}

/// Unix seconds as SQLite's `datetime()` writes them (`YYYY-MM-DD HH:MM:SS`, UTC), so that
/// `time > datetime('now', '-5 minutes')` compares as text.
pub(crate) fn sqlite_datetime(unix: i64) -> String {
    let (y, m, d) = civil_from_days(unix.div_euclid(86_400));
    let secs = unix.rem_euclid(86_400);
    format!(
        "{y:04}-{m:02}-{d:02} {:02}:{:02}:{:02}",
        secs / 3600,
        secs % 3600 / 60,
        secs % 60
    )
}

/// (year, month 1-12, day) to days since 1970-01-01, Howard Hinnant's algorithm.
pub(crate) fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y.rem_euclid(400);
    let mp = if m > 2 { m - 3 } else { m + 9 };
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// Days since 1970-01-01 to (year, month, day), Howard Hinnant's algorithm.
fn civil_from_days(z: i64) -> (i64, i64, i64) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    (yoe + era * 400 + i64::from(m <= 2), m, d)
}

/// The zone name from `TZ`, `/etc/timezone` or the `/etc/localtime` link; `UTC` otherwise.
fn local_timezone() -> String {
    if let Ok(tz) = std::env::var("TZ")
        && !tz.is_empty()
    {
        return tz.trim_start_matches(':').to_string();
    }
    if let Some(tz) = hostfs::read_trimmed("/etc/timezone").filter(|t| !t.is_empty()) {
        return tz;
    }
    std::fs::read_link("/etc/localtime")
        .ok()
        .and_then(|p| {
            p.to_str()
                .and_then(|s| s.split("zoneinfo/").nth(1))
                .map(str::to_string)
        })
        .unwrap_or_else(|| "UTC".into())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::value::Value;

    #[test]
    fn unix_time_splits_into_utc_fields() {
        // 2024-02-29T13:05:09Z, a Thursday.
        let row = time_row(1_709_211_909, "UTC".into());
        assert_eq!(row[0], Value::from("Thursday"));
        assert_eq!(
            &row[1..7],
            &[
                2024.into(),
                2.into(),
                29.into(),
                13.into(),
                5.into(),
                9.into()
            ]
        );
        assert_eq!(row[10], Value::from("Thu Feb 29 13:05:09 2024 UTC"));
        assert_eq!(row[12], Value::from("2024-02-29T13:05:09Z"));
    }
}
