//! `file`: metadata of the files named by `WHERE path = '...'` or listed in
//! `WHERE directory = '...'`. Like osquery, the table needs one of those constraints and
//! returns no rows (with a warning) without it.

use std::fs::Metadata;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::Path;
use std::time::UNIX_EPOCH;

use crate::table::{Column, HostTable, Row, ScanContext, TableError};

/// osquery's `file` table.
pub struct File;

impl HostTable for File {
    const NAME: &'static str = "file";
    const COLUMNS: &'static [Column] = &[
        Column::text("path").required(),
        Column::text("directory").required(),
        Column::text("filename"),
        Column::bigint("inode"),
        Column::bigint("uid"),
        Column::bigint("gid"),
        Column::text("mode"),
        Column::bigint("device"),
        Column::bigint("size"),
        Column::integer("block_size"),
        Column::bigint("atime"),
        Column::bigint("mtime"),
        Column::bigint("ctime"),
        Column::bigint("btime"),
        Column::integer("hard_links"),
        Column::integer("symlink"),
        Column::text("type"),
    ];

    fn rows(&self, cx: &mut ScanContext<'_>) -> Result<Vec<Row>, TableError> {
        let mut rows = Vec::new();
        for path in requested_paths(cx)? {
            cx.check_deadline()?;
            if let Some(row) = file_row(&path) {
                rows.push(row);
            }
        }
        Ok(rows)
    }
}

/// The paths named by `path` constraints plus the entries of `directory` constraints,
/// shared with `hash`.
pub(crate) fn requested_paths(cx: &ScanContext<'_>) -> Result<Vec<String>, TableError> {
    let mut paths = cx.constraints.texts("path").unwrap_or_default();
    for dir in cx.constraints.texts("directory").unwrap_or_default() {
        cx.check_deadline()?;
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        let mut names: Vec<String> = entries
            .flatten()
            .map(|e| {
                Path::new(&dir)
                    .join(e.file_name())
                    .to_string_lossy()
                    .into_owned()
            })
            .collect();
        names.sort();
        paths.extend(names);
    }
    Ok(paths)
}

/// The directory column for a path: its parent, as written.
pub(crate) fn parent_dir(path: &str) -> String {
    Path::new(path)
        .parent()
        .map(|p| p.to_string_lossy().into_owned())
        .unwrap_or_default()
}

fn file_row(path: &str) -> Option<Row> {
    let link = std::fs::symlink_metadata(path).ok()?;
    let symlink = link.file_type().is_symlink();
    // A dangling link still gets a row, described by the link itself.
    let meta = std::fs::metadata(path).unwrap_or(link);
    let filename = Path::new(path)
        .file_name()
        .map(|f| f.to_string_lossy().into_owned())
        .unwrap_or_default();
    let btime = meta
        .created()
        .ok()
        .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
        .map_or(0, |d| d.as_secs() as i64);
    Some(vec![
        path.into(),
        parent_dir(path).into(),
        filename.into(),
        meta.ino().into(),
        meta.uid().into(),
        meta.gid().into(),
        format!("{:04o}", meta.mode() & 0o7777).into(),
        meta.dev().into(),
        meta.size().into(),
        meta.blksize().into(),
        meta.atime().into(),
        meta.mtime().into(),
        meta.ctime().into(),
        btime.into(),
        meta.nlink().into(),
        symlink.into(),
        file_type(&meta).into(),
    ])
}

fn file_type(meta: &Metadata) -> &'static str {
    let t = meta.file_type();
    if t.is_file() {
        "regular"
    } else if t.is_dir() {
        "directory"
    } else if t.is_symlink() {
        "symbolic"
    } else if t.is_char_device() {
        "character"
    } else if t.is_block_device() {
        "block"
    } else if t.is_fifo() {
        "fifo"
    } else if t.is_socket() {
        "socket"
    } else {
        "unknown"
    }
}
