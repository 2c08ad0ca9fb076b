//! `listening_ports`: bound sockets, as osquery derives them from the open sockets: every
//! IPv4/IPv6 socket whose remote port is 0 (TCP listeners, bound UDP sockets) and every
//! named UNIX socket. A socket whose owner this agent cannot see gets `pid` -1.

use crate::sockets::{AF_UNIX, owners, sockets};
use crate::table::{Column, HostTable, Row, ScanContext, TableError};

/// osquery's `listening_ports` table.
pub struct ListeningPorts;

impl HostTable for ListeningPorts {
    const NAME: &'static str = "listening_ports";
    const COLUMNS: &'static [Column] = &[
        Column::integer("pid"),
        Column::integer("port"),
        Column::integer("protocol"),
        Column::integer("family"),
        Column::text("address"),
        Column::bigint("fd"),
        Column::bigint("socket"),
        Column::text("path"),
        Column::text("net_namespace"),
    ];

    fn rows(&self, cx: &mut ScanContext<'_>) -> Result<Vec<Row>, TableError> {
        let bound: Vec<_> = sockets()
            .into_iter()
            .filter(|s| {
                if s.family == AF_UNIX {
                    !s.path.is_empty()
                } else {
                    s.remote_port == 0
                }
            })
            // A TCP socket that is neither listening nor connected is not a listener.
            .filter(|s| s.protocol != 6 || s.state == "LISTEN")
            .collect();
        let owners = owners(None, cx)?;
        let mut rows = Vec::new();
        for s in bound {
            let found = owners.get(&s.inode).map(Vec::as_slice).unwrap_or_default();
            let row = |pid: i64, fd: i64, ns: &str| -> Row {
                vec![
                    pid.into(),
                    s.local_port.into(),
                    s.protocol.into(),
                    s.family.into(),
                    s.local_address.clone().into(),
                    fd.into(),
                    s.inode.into(),
                    s.path.clone().into(),
                    ns.into(),
                ]
            };
            if found.is_empty() {
                rows.push(row(-1, -1, ""));
            }
            for o in found {
                rows.push(row(o.pid.into(), o.fd.into(), &o.net_namespace));
            }
        }
        Ok(rows)
    }
}
