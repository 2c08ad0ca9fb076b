//! `uptime`: one row from `/proc/uptime`.

use crate::hostfs;
use crate::table::{Column, HostTable, Row, ScanContext, TableError};

/// osquery's `uptime` table.
pub struct Uptime;

impl HostTable for Uptime {
    const NAME: &'static str = "uptime";
    const COLUMNS: &'static [Column] = &[
        Column::integer("days"),
        Column::integer("hours"),
        Column::integer("minutes"),
        Column::integer("seconds"),
        Column::bigint("total_seconds"),
    ];

    fn rows(&self, _cx: &mut ScanContext<'_>) -> Result<Vec<Row>, TableError> {
        let total = hostfs::read("/proc/uptime")
            .and_then(|t| t.split_whitespace().next()?.parse::<f64>().ok())
            .ok_or_else(|| {
                TableError::Source("cannot read /proc/uptime; is /proc mounted?".into())
            })? as i64;
        Ok(vec![vec![
            (total / 86_400).into(),
            (total % 86_400 / 3600).into(),
            (total % 3600 / 60).into(),
            (total % 60).into(),
            total.into(),
        ]])
    }
}
