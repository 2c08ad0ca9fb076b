//! `users`: one row per `/etc/passwd` entry.

use crate::accounts::accounts;
use crate::table::{Column, HostTable, Row, ScanContext, TableError};

/// osquery's `users` table.
pub struct Users;

impl HostTable for Users {
    const NAME: &'static str = "users";
    const COLUMNS: &'static [Column] = &[
        Column::bigint("uid").index(),
        Column::bigint("gid"),
        Column::bigint("uid_signed"),
        Column::bigint("gid_signed"),
        Column::text("username").index(),
        Column::text("description"),
        Column::text("directory"),
        Column::text("shell"),
        Column::text("uuid"),
        // Windows' extended column: declared on Linux too so fleet queries naming it run.
        Column::text("type").hidden(),
    ];

    fn rows(&self, _cx: &mut ScanContext<'_>) -> Result<Vec<Row>, TableError> {
        Ok(accounts()
            .into_iter()
            .map(|a| {
                vec![
                    a.uid.into(),
                    a.gid.into(),
                    (a.uid as i32).into(),
                    (a.gid as i32).into(),
                    a.name.into(),
                    a.gecos.into(),
                    a.home.into(),
                    a.shell.into(),
                    "".into(),
                    "".into(),
                ]
            })
            .collect())
    }
}
