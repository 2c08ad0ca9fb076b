//! `groups`: one row per `/etc/group` entry.

use crate::accounts::groups;
use crate::table::{Column, HostTable, Row, ScanContext, TableError};

/// osquery's `groups` table.
pub struct Groups;

impl HostTable for Groups {
    const NAME: &'static str = "groups";
    const COLUMNS: &'static [Column] = &[
        Column::bigint("gid").index(),
        Column::bigint("gid_signed"),
        Column::text("groupname"),
    ];

    fn rows(&self, _cx: &mut ScanContext<'_>) -> Result<Vec<Row>, TableError> {
        Ok(groups()
            .into_iter()
            .map(|g| vec![g.gid.into(), (g.gid as i32).into(), g.name.into()])
            .collect())
    }
}
