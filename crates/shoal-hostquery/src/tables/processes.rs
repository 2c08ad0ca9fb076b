//! `processes`: one row per process in `/proc`. `WHERE pid = N` (or `IN`) reads only those
//! processes. A process that exits while it is being read is left out. Besides `stat`, a
//! process's files (`status`, `exe`, `cmdline`, `cwd`, `root`, `io`, `cgroup`) are read only
//! when the statement reads a column they fill.

use std::path::Path;

use procfs::process::Process;

use crate::hostfs;
use crate::table::{Column, HostTable, Row, ScanContext, TableError};

/// osquery's `processes` table.
pub struct Processes;

impl HostTable for Processes {
    const NAME: &'static str = "processes";
    const COLUMNS: &'static [Column] = &[
        Column::bigint("pid").index(),
        Column::text("name"),
        Column::text("path"),
        Column::text("cmdline"),
        Column::text("state"),
        Column::text("cwd"),
        Column::text("root"),
        Column::bigint("uid"),
        Column::bigint("gid"),
        Column::bigint("euid"),
        Column::bigint("egid"),
        Column::bigint("suid"),
        Column::bigint("sgid"),
        Column::integer("on_disk"),
        Column::bigint("wired_size"),
        Column::bigint("resident_size"),
        Column::bigint("total_size"),
        Column::bigint("user_time"),
        Column::bigint("system_time"),
        Column::bigint("disk_bytes_read"),
        Column::bigint("disk_bytes_written"),
        Column::bigint("start_time"),
        Column::bigint("parent"),
        Column::bigint("pgroup"),
        Column::integer("threads"),
        Column::integer("nice"),
        Column::text("cgroup_path"),
    ];

    fn rows(&self, cx: &mut ScanContext<'_>) -> Result<Vec<Row>, TableError> {
        let pids: Vec<i32> = match cx.constraints.integers("pid") {
            Some(pids) => pids
                .into_iter()
                .filter_map(|p| i32::try_from(p).ok())
                .collect(),
            None => all_pids(),
        };
        let clock = Clock {
            ticks: procfs::ticks_per_second().max(1),
            boot: procfs::boot_time_secs().unwrap_or(0),
        };
        let reads = Reads::wanted(cx);
        let mut rows = Vec::with_capacity(pids.len());
        for pid in pids {
            cx.check_deadline()?;
            if let Some(row) = Process::new(pid)
                .ok()
                .and_then(|p| process_row(&p, clock, reads))
            {
                rows.push(row);
            }
        }
        Ok(rows)
    }
}

#[derive(Clone, Copy)]
struct Clock {
    ticks: u64,
    boot: u64,
}

/// Which of a process's files (beyond `stat`) the statement's columns need.
#[derive(Clone, Copy)]
struct Reads {
    status: bool,
    exe: bool,
    cmdline: bool,
    cwd: bool,
    root: bool,
    io: bool,
    cgroup: bool,
}

impl Reads {
    fn wanted(cx: &ScanContext<'_>) -> Self {
        Reads {
            status: cx.wants_any(&["name", "uid", "gid", "euid", "egid", "suid", "sgid"]),
            exe: cx.wants_any(&["path", "on_disk"]),
            cmdline: cx.wants("cmdline"),
            cwd: cx.wants("cwd"),
            root: cx.wants("root"),
            io: cx.wants_any(&["disk_bytes_read", "disk_bytes_written"]),
            cgroup: cx.wants("cgroup_path"),
        }
    }
}

/// Every numeric entry of `/proc`.
pub(crate) fn all_pids() -> Vec<i32> {
    std::fs::read_dir("/proc")
        .map(|d| {
            d.filter_map(|e| e.ok()?.file_name().to_str()?.parse().ok())
                .collect()
        })
        .unwrap_or_default()
}

fn process_row(p: &Process, clock: Clock, reads: Reads) -> Option<Row> {
    let stat = p.stat().ok()?;
    let status = reads.status.then(|| p.status().ok()).flatten();
    let (path, on_disk) = match reads.exe.then(|| p.exe()) {
        None => (None, None),
        Some(Ok(exe)) => {
            let s = exe.to_string_lossy().into_owned();
            match s.strip_suffix(" (deleted)") {
                Some(gone) => (Some(gone.to_string()), Some(0i64)),
                None => {
                    let exists = Path::new(&s).exists();
                    (Some(s), Some(i64::from(exists)))
                }
            }
        }
        Some(Err(_)) => (Some(String::new()), Some(-1)),
    };
    let cmdline = reads
        .cmdline
        .then(|| p.cmdline().map(|a| a.join(" ")).unwrap_or_default());
    let link = |wanted: bool, read: fn(&Process) -> procfs::ProcResult<std::path::PathBuf>| {
        wanted.then(|| {
            read(p)
                .map(|p| p.to_string_lossy().into_owned())
                .unwrap_or_default()
        })
    };
    let io = reads.io.then(|| p.io().ok()).flatten();
    let ms = |t: u64| (t * 1000 / clock.ticks) as i64;
    let cgroup = reads.cgroup.then(|| {
        hostfs::read(format!("/proc/{}/cgroup", p.pid()))
            .and_then(|t| {
                t.lines()
                    .find_map(|l| l.strip_prefix("0::").map(str::to_string))
            })
            .unwrap_or_default()
    });
    let name = status
        .as_ref()
        .map(|s| s.name.clone())
        .unwrap_or_else(|| stat.comm.clone());
    let id = |f: fn(&procfs::process::Status) -> u32| {
        reads
            .status
            .then(|| status.as_ref().map(|s| i64::from(f(s))).unwrap_or(-1))
    };
    let page = procfs::page_size();
    Some(vec![
        p.pid().into(),
        name.into(),
        path.into(),
        cmdline.into(),
        stat.state.to_string().into(),
        link(reads.cwd, Process::cwd).into(),
        link(reads.root, Process::root).into(),
        id(|s| s.ruid).into(),
        id(|s| s.rgid).into(),
        id(|s| s.euid).into(),
        id(|s| s.egid).into(),
        id(|s| s.suid).into(),
        id(|s| s.sgid).into(),
        on_disk.into(),
        0i64.into(),
        (stat.rss * page).into(),
        stat.vsize.into(),
        ms(stat.utime).into(),
        ms(stat.stime).into(),
        io.as_ref().map(|i| i.read_bytes).into(),
        io.as_ref().map(|i| i.write_bytes).into(),
        (clock.boot + stat.starttime / clock.ticks).into(),
        stat.ppid.into(),
        stat.pgrp.into(),
        stat.num_threads.into(),
        stat.nice.into(),
        cgroup.into(),
    ])
}
