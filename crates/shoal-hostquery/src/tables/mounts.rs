//! `mounts`: one row per entry of `/proc/mounts`, with `statvfs(3)` sizes as osquery's
//! Linux table reports them (`blocks` is the total block count; all six size columns are 0
//! when `statvfs` fails).

use std::ffi::CString;

use crate::hostfs;
use crate::table::{Column, HostTable, Row, ScanContext, TableError};

/// osquery's `mounts` table.
pub struct Mounts;

impl HostTable for Mounts {
    const NAME: &'static str = "mounts";
    const COLUMNS: &'static [Column] = &[
        Column::text("device"),
        Column::text("device_alias"),
        Column::text("path"),
        Column::text("type"),
        Column::bigint("blocks_size"),
        Column::bigint("blocks"),
        Column::bigint("blocks_free"),
        Column::bigint("blocks_available"),
        Column::bigint("inodes"),
        Column::bigint("inodes_free"),
        Column::text("flags"),
    ];

    fn rows(&self, cx: &mut ScanContext<'_>) -> Result<Vec<Row>, TableError> {
        let text = hostfs::read("/proc/mounts").ok_or_else(|| {
            TableError::Source("cannot read /proc/mounts; is /proc mounted?".into())
        })?;
        let mut rows = Vec::new();
        for line in text.lines() {
            cx.check_deadline()?;
            let f: Vec<String> = line.split_whitespace().map(unescape).collect();
            if f.len() < 4 {
                continue;
            }
            let alias = std::fs::canonicalize(&f[0])
                .map(|p| p.to_string_lossy().into_owned())
                .unwrap_or_else(|_| f[0].clone());
            let s = statvfs(&f[1]).unwrap_or_default();
            rows.push(vec![
                f[0].clone().into(),
                alias.into(),
                f[1].clone().into(),
                f[2].clone().into(),
                s[0].into(),
                s[1].into(),
                s[2].into(),
                s[3].into(),
                s[4].into(),
                s[5].into(),
                f[3].clone().into(),
            ]);
        }
        Ok(rows)
    }
}

/// `/proc/mounts` escapes space, tab, newline and backslash as octal (`\040`).
fn unescape(field: &str) -> String {
    let mut out = String::with_capacity(field.len());
    let mut rest = field;
    while let Some(i) = rest.find('\\') {
        out.push_str(&rest[..i]);
        let code = rest
            .get(i + 1..i + 4)
            .and_then(|o| u8::from_str_radix(o, 8).ok());
        match code {
            Some(c) => {
                out.push(c as char);
                rest = &rest[i + 4..];
            }
            None => {
                out.push('\\');
                rest = &rest[i + 1..];
            }
        }
    }
    out.push_str(rest);
    out
}

/// [block size, blocks, free, available, inodes, free inodes].
fn statvfs(path: &str) -> Option<[u64; 6]> {
    let c = CString::new(path).ok()?;
    let mut s = std::mem::MaybeUninit::<libc::statvfs>::uninit();
    // SAFETY: `c` is a valid NUL-terminated path and `s` is a correctly sized out-buffer
    // that statvfs fills completely when it returns 0.
    let rc = unsafe { libc::statvfs(c.as_ptr(), s.as_mut_ptr()) };
    if rc != 0 {
        return None;
    }
    // SAFETY: statvfs returned 0, so the struct is initialised.
    let s = unsafe { s.assume_init() };
    #[allow(clippy::unnecessary_cast)] // field widths differ between targets
    Some([
        s.f_bsize as u64,
        s.f_blocks as u64,
        s.f_bfree as u64,
        s.f_bavail as u64,
        s.f_files as u64,
        s.f_ffree as u64,
    ])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn octal_escapes_in_mount_paths_are_decoded() {
        assert_eq!(unescape("/mnt/my\\040disk"), "/mnt/my disk");
        assert_eq!(unescape("/plain"), "/plain");
    }
}
