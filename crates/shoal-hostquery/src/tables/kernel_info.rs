//! `kernel_info`: one row from `/proc/version` and `/proc/cmdline`.

use crate::hostfs;
use crate::table::{Column, HostTable, Row, ScanContext, TableError};

/// osquery's `kernel_info` table.
pub struct KernelInfo;

impl HostTable for KernelInfo {
    const NAME: &'static str = "kernel_info";
    const COLUMNS: &'static [Column] = &[
        Column::text("version"),
        Column::text("arguments"),
        Column::text("path"),
        Column::text("device"),
    ];

    fn rows(&self, _cx: &mut ScanContext<'_>) -> Result<Vec<Row>, TableError> {
        let version = hostfs::read("/proc/version").unwrap_or_default();
        let version = version
            .split_whitespace()
            .nth(2)
            .unwrap_or_default()
            .to_string();
        let arguments = hostfs::read_trimmed("/proc/cmdline").unwrap_or_default();
        let arg = |key: &str| {
            arguments
                .split_whitespace()
                .find_map(|a| a.strip_prefix(key))
                .unwrap_or_default()
                .to_string()
        };
        Ok(vec![vec![
            version.into(),
            arguments.clone().into(),
            arg("BOOT_IMAGE=").into(),
            arg("root=").into(),
        ]])
    }
}
