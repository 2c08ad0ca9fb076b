//! `process_open_sockets`: one row per (process, socket) pair. `WHERE pid = N` inspects only
//! that process's descriptors.

use crate::sockets::{owners, sockets};
use crate::table::{Column, HostTable, Row, ScanContext, TableError};

/// osquery's `process_open_sockets` table.
pub struct ProcessOpenSockets;

impl HostTable for ProcessOpenSockets {
    const NAME: &'static str = "process_open_sockets";
    const COLUMNS: &'static [Column] = &[
        Column::integer("pid").index(),
        Column::bigint("fd"),
        Column::bigint("socket"),
        Column::integer("family"),
        Column::integer("protocol"),
        Column::text("local_address"),
        Column::text("remote_address"),
        Column::integer("local_port"),
        Column::integer("remote_port"),
        Column::text("path"),
        Column::text("state"),
        Column::text("net_namespace"),
    ];

    fn rows(&self, cx: &mut ScanContext<'_>) -> Result<Vec<Row>, TableError> {
        let pids = cx.constraints.integers("pid").map(|p| {
            p.into_iter()
                .filter_map(|p| i32::try_from(p).ok())
                .collect()
        });
        let owners = owners(pids, cx)?;
        let mut rows = Vec::new();
        for s in sockets() {
            for o in owners.get(&s.inode).into_iter().flatten() {
                rows.push(vec![
                    o.pid.into(),
                    o.fd.into(),
                    s.inode.into(),
                    s.family.into(),
                    s.protocol.into(),
                    s.local_address.clone().into(),
                    s.remote_address.clone().into(),
                    s.local_port.into(),
                    s.remote_port.into(),
                    s.path.clone().into(),
                    s.state.clone().into(),
                    o.net_namespace.clone().into(),
                ]);
            }
        }
        Ok(rows)
    }
}
