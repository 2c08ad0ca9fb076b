//! `hash`: MD5, SHA-1 and SHA-256 of the regular files named by `WHERE path = '...'` or
//! listed in `WHERE directory = '...'`. Like osquery, the table needs one of those
//! constraints and returns no rows (with a warning) without it. Hashing stops at the
//! query's deadline.

use std::io::Read;

use md5::Md5;
use sha1::Sha1;
use sha2::{Digest, Sha256};

use crate::table::{Column, HostTable, Row, ScanContext, TableError};
use crate::tables::file::{parent_dir, requested_paths};

/// osquery's `hash` table.
pub struct Hash;

impl HostTable for Hash {
    const NAME: &'static str = "hash";
    const COLUMNS: &'static [Column] = &[
        Column::text("path").required(),
        Column::text("directory").required(),
        Column::text("md5"),
        Column::text("sha1"),
        Column::text("sha256"),
    ];

    fn rows(&self, cx: &mut ScanContext<'_>) -> Result<Vec<Row>, TableError> {
        let mut rows = Vec::new();
        for path in requested_paths(cx)? {
            if let Some([md5, sha1, sha256]) = digests(&path, cx)? {
                rows.push(vec![
                    path.clone().into(),
                    parent_dir(&path).into(),
                    md5.into(),
                    sha1.into(),
                    sha256.into(),
                ]);
            }
        }
        Ok(rows)
    }
}

/// Hex digests of a regular file; `None` for anything else or an unreadable file.
fn digests(path: &str, cx: &ScanContext<'_>) -> Result<Option<[String; 3]>, TableError> {
    if !std::fs::metadata(path).is_ok_and(|m| m.is_file()) {
        return Ok(None);
    }
    let Ok(mut file) = std::fs::File::open(path) else {
        return Ok(None);
    };
    let (mut md5, mut sha1, mut sha256) = (Md5::new(), Sha1::new(), Sha256::new());
    let mut buf = vec![0u8; 1 << 20];
    loop {
        cx.check_deadline()?;
        let n = match file.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(_) => return Ok(None),
        };
        md5.update(&buf[..n]);
        sha1.update(&buf[..n]);
        sha256.update(&buf[..n]);
    }
    Ok(Some([
        hex(&md5.finalize()),
        hex(&sha1.finalize()),
        hex(&sha256.finalize()),
    ]))
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
