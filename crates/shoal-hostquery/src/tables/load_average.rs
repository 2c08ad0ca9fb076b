//! `load_average`: three rows (`1m`, `5m`, `15m`) from `/proc/loadavg`.

use crate::hostfs;
use crate::table::{Column, HostTable, Row, ScanContext, TableError};

/// osquery's `load_average` table.
pub struct LoadAverage;

impl HostTable for LoadAverage {
    const NAME: &'static str = "load_average";
    const COLUMNS: &'static [Column] = &[Column::text("period"), Column::text("average")];

    fn rows(&self, _cx: &mut ScanContext<'_>) -> Result<Vec<Row>, TableError> {
        let text = hostfs::read("/proc/loadavg").unwrap_or_default();
        Ok(["1m", "5m", "15m"]
            .iter()
            .zip(text.split_whitespace())
            .map(|(period, avg)| vec![(*period).into(), avg.into()])
            .collect())
    }
}
