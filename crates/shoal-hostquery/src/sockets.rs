//! The host's sockets from `/proc/net/{tcp,tcp6,udp,udp6,unix}`, and which process owns
//! each (by matching socket inodes against `/proc/<pid>/fd`). Shared by
//! `process_open_sockets` and `listening_ports`, which osquery derives from the same data.

use std::collections::HashMap;

use procfs::net::TcpState;
use procfs::process::{FDTarget, Process};

use crate::table::{ScanContext, TableError};
use crate::tables::processes::all_pids;

/// `AF_UNIX`.
pub(crate) const AF_UNIX: i64 = 1;
/// `AF_INET`.
pub(crate) const AF_INET: i64 = 2;
/// `AF_INET6`.
pub(crate) const AF_INET6: i64 = 10;

/// One socket of the host's network namespace.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Socket {
    pub(crate) inode: u64,
    pub(crate) family: i64,
    /// IP protocol number: 6 TCP, 17 UDP, 0 for UNIX sockets.
    pub(crate) protocol: i64,
    pub(crate) local_address: String,
    pub(crate) local_port: i64,
    pub(crate) remote_address: String,
    pub(crate) remote_port: i64,
    pub(crate) path: String,
    pub(crate) state: String,
}

/// A process holding a socket open.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Owner {
    pub(crate) pid: i32,
    pub(crate) fd: i32,
    pub(crate) net_namespace: String,
}

/// Every TCP, UDP and UNIX socket in `/proc/net`.
pub(crate) fn sockets() -> Vec<Socket> {
    let mut out = Vec::new();
    for (entries, family) in [
        (procfs::net::tcp(), AF_INET),
        (procfs::net::tcp6(), AF_INET6),
    ] {
        for e in entries.unwrap_or_default() {
            out.push(Socket {
                inode: e.inode,
                family,
                protocol: 6,
                local_address: e.local_address.ip().to_string(),
                local_port: e.local_address.port().into(),
                remote_address: e.remote_address.ip().to_string(),
                remote_port: e.remote_address.port().into(),
                path: String::new(),
                state: tcp_state(&e.state).into(),
            });
        }
    }
    for (entries, family) in [
        (procfs::net::udp(), AF_INET),
        (procfs::net::udp6(), AF_INET6),
    ] {
        for e in entries.unwrap_or_default() {
            out.push(Socket {
                inode: e.inode,
                family,
                protocol: 17,
                local_address: e.local_address.ip().to_string(),
                local_port: e.local_address.port().into(),
                remote_address: e.remote_address.ip().to_string(),
                remote_port: e.remote_address.port().into(),
                path: String::new(),
                state: String::new(),
            });
        }
    }
    for e in procfs::net::unix().unwrap_or_default() {
        out.push(Socket {
            inode: e.inode,
            family: AF_UNIX,
            protocol: 0,
            local_address: String::new(),
            local_port: 0,
            remote_address: String::new(),
            remote_port: 0,
            path: e
                .path
                .map(|p| p.to_string_lossy().into_owned())
                .unwrap_or_default(),
            state: String::new(),
        });
    }
    out
}

/// Socket inode → the processes holding it, for the given pids (all when `None`).
/// Processes this agent may not inspect are skipped.
pub(crate) fn owners(
    pids: Option<Vec<i32>>,
    cx: &ScanContext<'_>,
) -> Result<HashMap<u64, Vec<Owner>>, TableError> {
    let mut map: HashMap<u64, Vec<Owner>> = HashMap::new();
    for pid in pids.unwrap_or_else(all_pids) {
        cx.check_deadline()?;
        let Ok(process) = Process::new(pid) else {
            continue;
        };
        let Ok(fds) = process.fd() else { continue };
        let net_namespace = std::fs::read_link(format!("/proc/{pid}/ns/net"))
            .ok()
            .and_then(|l| {
                let l = l.to_string_lossy().into_owned();
                Some(l.strip_prefix("net:[")?.strip_suffix(']')?.to_string())
            })
            .unwrap_or_default();
        for fd in fds.flatten() {
            if let FDTarget::Socket(inode) = fd.target {
                map.entry(inode).or_default().push(Owner {
                    pid,
                    fd: fd.fd,
                    net_namespace: net_namespace.clone(),
                });
            }
        }
    }
    Ok(map)
}

fn tcp_state(state: &TcpState) -> &'static str {
    match state {
        TcpState::Established => "ESTABLISHED",
        TcpState::SynSent => "SYN_SENT",
        TcpState::SynRecv => "SYN_RECV",
        TcpState::FinWait1 => "FIN_WAIT1",
        TcpState::FinWait2 => "FIN_WAIT2",
        TcpState::TimeWait => "TIME_WAIT",
        TcpState::Close => "CLOSED",
        TcpState::CloseWait => "CLOSE_WAIT",
        TcpState::LastAck => "LAST_ACK",
        TcpState::Listen => "LISTEN",
        TcpState::Closing => "CLOSING",
        TcpState::NewSynRecv => "NEW_SYN_RECV",
    }
}
