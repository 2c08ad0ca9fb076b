//! `osquery_info`: one row describing the agent answering the query (Shoal, not osquery),
//! so fleet queries that join it (`SELECT * FROM time, osquery_info`) run unchanged.

use std::sync::OnceLock;
use std::time::{SystemTime, UNIX_EPOCH};

use crate::table::{Column, HostTable, Row, ScanContext, TableError};
use crate::tables::os_version::OsVersion;
use crate::tables::system_info::machine_uuid;

/// osquery's `osquery_info` table.
pub struct OsqueryInfo;

/// When this process first answered a query: the agent's start, near enough.
static STARTED: OnceLock<i64> = OnceLock::new();

impl HostTable for OsqueryInfo {
    const NAME: &'static str = "osquery_info";
    const COLUMNS: &'static [Column] = &[
        Column::integer("pid"),
        Column::text("uuid"),
        Column::text("instance_id"),
        Column::text("version"),
        Column::text("config_hash"),
        Column::integer("config_valid"),
        Column::text("extensions"),
        Column::text("build_platform"),
        Column::text("build_distro"),
        Column::integer("start_time"),
        Column::integer("watcher"),
        Column::integer("platform_mask"),
    ];

    fn rows(&self, cx: &mut ScanContext<'_>) -> Result<Vec<Row>, TableError> {
        let started = *STARTED.get_or_init(|| {
            SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map(|d| d.as_secs() as i64)
                .unwrap_or(0)
        });
        let uuid = machine_uuid();
        let distro = crate::HostTable::rows(&OsVersion, cx)?
            .first()
            .and_then(|r| r.get(6).map(|v| v.to_osquery_string()))
            .unwrap_or_default();
        Ok(vec![vec![
            std::process::id().into(),
            uuid.clone().into(),
            format!("shoal-{uuid}").to_lowercase().into(),
            concat!("shoal-", env!("CARGO_PKG_VERSION")).into(),
            "".into(),
            1i64.into(),
            "inactive".into(),
            std::env::consts::OS.into(),
            distro.into(),
            started.into(),
            (-1i64).into(),
            // osquery's bitmask: POSIX (1) | LINUX (8).
            9i64.into(),
        ]])
    }
}
