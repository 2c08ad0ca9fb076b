//! `memory_info`: one row from `/proc/meminfo`, in bytes.

use std::collections::HashMap;

use crate::hostfs;
use crate::table::{Column, HostTable, Row, ScanContext, TableError};

/// osquery's `memory_info` table.
pub struct MemoryInfo;

impl HostTable for MemoryInfo {
    const NAME: &'static str = "memory_info";
    const COLUMNS: &'static [Column] = &[
        Column::bigint("memory_total"),
        Column::bigint("memory_free"),
        Column::bigint("memory_available"),
        Column::bigint("buffers"),
        Column::bigint("cached"),
        Column::bigint("swap_cached"),
        Column::bigint("active"),
        Column::bigint("inactive"),
        Column::bigint("swap_total"),
        Column::bigint("swap_free"),
    ];

    fn rows(&self, _cx: &mut ScanContext<'_>) -> Result<Vec<Row>, TableError> {
        let m = meminfo();
        let keys = [
            "MemTotal",
            "MemFree",
            "MemAvailable",
            "Buffers",
            "Cached",
            "SwapCached",
            "Active",
            "Inactive",
            "SwapTotal",
            "SwapFree",
        ];
        Ok(vec![
            keys.iter().map(|k| m.get(*k).copied().into()).collect(),
        ])
    }
}

/// `/proc/meminfo` in bytes, by key.
pub(crate) fn meminfo() -> HashMap<String, u64> {
    hostfs::read("/proc/meminfo")
        .map(|t| parse_meminfo(&t))
        .unwrap_or_default()
}

fn parse_meminfo(text: &str) -> HashMap<String, u64> {
    text.lines()
        .filter_map(|l| {
            let (k, rest) = l.split_once(':')?;
            let mut parts = rest.split_whitespace();
            let n: u64 = parts.next()?.parse().ok()?;
            let bytes = if parts.next() == Some("kB") {
                n * 1024
            } else {
                n
            };
            Some((k.to_string(), bytes))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn meminfo_kilobytes_become_bytes() {
        let m = parse_meminfo("MemTotal:       16384 kB\nHugePages_Total:       0\n");
        assert_eq!(m["MemTotal"], 16384 * 1024);
        assert_eq!(m["HugePages_Total"], 0);
    }
}
