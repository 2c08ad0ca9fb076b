//! Reading the lines of log files for the tables that return them (`file_lines`,
//! `nginx_access`).
//!
//! A scan names its files with `WHERE path = '...'` or `WHERE path GLOB '...'`; they are
//! expanded under the node's `--log-allow` directories ([`crate::allowed::resolve`]), so a
//! query can read no file the node did not offer, and a symlink counts where it leads. A
//! pattern that matches nothing on this node yields no rows and a warning (the node simply
//! has no such log); a pattern outside the allowed directories fails the query, naming them.
//!
//! Reading is bounded: one scan reads at most [`SCAN_BYTES`] of text over all its files,
//! newest file first, from the end of each file (the recent lines are the ones an outage
//! investigation wants), or from the byte offset a `since` constraint gives. What is left
//! unread is reported as a warning naming the file and the `since` that reads it. Every
//! file is read line by line under the query's deadline; compressed files are skipped with
//! a warning.

use std::fs::File;
use std::io::{BufRead, BufReader, Read, Seek, SeekFrom};
use std::path::Path;

use crate::allowed::{Found, ResolveError, resolve};
use crate::table::{ScanContext, TableError};

/// Most bytes of text one scan of a log table reads, over all its files.
pub const SCAN_BYTES: u64 = 32 << 20;

/// Lines between deadline checks.
const CHECK_EVERY: usize = 1024;

/// One line of a log file, without its line ending.
#[derive(Debug)]
pub(crate) struct LogLine<'a> {
    /// The file, as queries name it.
    pub path: &'a str,
    /// Byte offset of the line's first byte in the file.
    pub offset: u64,
    /// The line (invalid UTF-8 replaced).
    pub text: &'a str,
}

/// The files a scan of `table` names, newest first, or a warning-only empty list.
fn files(table: &str, cx: &mut ScanContext<'_>) -> Result<Vec<(Found, u64)>, TableError> {
    let mut patterns = cx.constraints.texts("path").unwrap_or_default();
    patterns.extend(
        cx.constraints
            .globs("path")
            .unwrap_or_default()
            .iter()
            .cloned(),
    );
    let mut found = Vec::new();
    for pattern in patterns {
        match resolve(table, &[pattern], cx.readable(), "--log-allow") {
            Ok(files) => found.extend(files),
            Err(ResolveError::NoMatch(m)) => cx.warn(m),
            Err(ResolveError::Refused(m)) => return Err(TableError::Source(m)),
        }
    }
    found.sort();
    found.dedup();
    let mut dated: Vec<(Found, u64, std::time::SystemTime)> = found
        .into_iter()
        .filter_map(|f| {
            let meta = std::fs::metadata(&f.real).ok()?;
            let modified = meta.modified().unwrap_or(std::time::UNIX_EPOCH);
            Some((f, meta.len(), modified))
        })
        .collect();
    dated.sort_by(|a, b| b.2.cmp(&a.2).then_with(|| a.0.cmp(&b.0)));
    Ok(dated.into_iter().map(|(f, len, _)| (f, len)).collect())
}

/// The `since` constraint of the scan: the byte offset reading starts at (0 when absent or
/// negative).
pub(crate) fn since(cx: &ScanContext<'_>) -> Option<u64> {
    cx.constraints
        .integers("since")
        .and_then(|v| v.first().copied())
        .map(|s| s.max(0) as u64)
}

/// Calls `each` for every line the scan of `table` reads, in file order within each file.
pub(crate) fn for_each_line(
    table: &str,
    cx: &mut ScanContext<'_>,
    mut each: impl FnMut(&LogLine<'_>),
) -> Result<(), TableError> {
    let since = since(cx);
    let mut budget = SCAN_BYTES;
    for (file, len) in files(table, cx)? {
        let name = file.name.to_string_lossy().into_owned();
        let real = file.real;
        if budget == 0 {
            cx.warn(format!(
                "{table}: {name} was not read: the scan's {} MiB were spent on newer files; query it alone",
                SCAN_BYTES >> 20
            ));
            continue;
        }
        let wanted_from = since.unwrap_or(0).min(len);
        // Without `since`, the newest `budget` bytes; with it, from there on.
        let start = match since {
            Some(_) => wanted_from,
            None => len.saturating_sub(budget),
        };
        let end = len.min(start.saturating_add(budget));
        if is_compressed(&real) {
            cx.warn(format!(
                "{table}: {name} is compressed and was not read; decompress it to query it"
            ));
            continue;
        }
        let span = Span {
            table,
            name: &name,
            real: &real,
            len,
            start,
            end,
        };
        let read = span.read(cx, &mut each)?;
        budget = budget.saturating_sub(read.bytes);
        if read.first > wanted_from {
            cx.warn(format!(
                "{table}: read {name} from byte {} of {len} (the scan reads at most {} MiB); add since = {} to read the part before",
                read.first,
                SCAN_BYTES >> 20,
                wanted_from.max(read.first.saturating_sub(SCAN_BYTES))
            ));
        }
        if read.next < len {
            cx.warn(format!(
                "{table}: stopped reading {name} at byte {} of {len} (the scan reads at most {} MiB); add since = {} to read on",
                read.next,
                SCAN_BYTES >> 20,
                read.next
            ));
        }
    }
    Ok(())
}

/// What one file's read covered.
struct Covered {
    /// Offset of the first whole line read.
    first: u64,
    /// Offset just past the last line read.
    next: u64,
    /// Bytes read.
    bytes: u64,
}

/// One file of a scan and the part of it to read.
struct Span<'a> {
    table: &'a str,
    name: &'a str,
    real: &'a Path,
    /// The file's length when the scan began.
    len: u64,
    start: u64,
    end: u64,
}

impl Span<'_> {
    /// Reads the whole lines that start in `[start, end)`: a line cut by `start` is skipped,
    /// a line that runs past `end` is left for a later scan. A last line without its newline
    /// is read: the log's writer may still be on it.
    fn read(
        &self,
        cx: &ScanContext<'_>,
        each: &mut impl FnMut(&LogLine<'_>),
    ) -> Result<Covered, TableError> {
        let unreadable = |e: std::io::Error| {
            TableError::Source(format!("{}: cannot read {}: {e}", self.table, self.name))
        };
        let mut file = File::open(self.real).map_err(unreadable)?;
        let mut offset = self.start;
        if offset > 0 {
            // Start on a line boundary: after the newline at or past `start - 1`.
            file.seek(SeekFrom::Start(offset - 1)).map_err(unreadable)?;
            let mut cut = Vec::new();
            let n = BufReader::new(&mut file)
                .read_until(b'\n', &mut cut)
                .map_err(unreadable)?;
            offset = offset - 1 + n as u64;
            file.seek(SeekFrom::Start(offset)).map_err(unreadable)?;
        }
        let first = offset;
        let share = self.end.saturating_sub(offset);
        let mut reader = BufReader::with_capacity(1 << 16, file.take(share));
        let mut buf = Vec::new();
        let mut lines = 0usize;
        loop {
            buf.clear();
            let n = reader.read_until(b'\n', &mut buf).map_err(unreadable)?;
            if n == 0 {
                break;
            }
            let whole = buf.last() == Some(&b'\n') || offset + n as u64 >= self.len;
            if !whole {
                break;
            }
            let text = String::from_utf8_lossy(&buf);
            each(&LogLine {
                path: self.name,
                offset,
                text: text.trim_end_matches(['\n', '\r']),
            });
            offset += n as u64;
            lines += 1;
            if lines.is_multiple_of(CHECK_EVERY) {
                cx.check_deadline()?;
            }
        }
        Ok(Covered {
            first,
            next: offset,
            bytes: offset - first,
        })
    }
}

/// Whether a file starts with the gzip, zstd, bzip2 or xz magic bytes.
fn is_compressed(path: &Path) -> bool {
    let mut head = [0u8; 6];
    let Ok(mut f) = File::open(path) else {
        return false;
    };
    let n = f.read(&mut head).unwrap_or(0);
    let head = &head[..n];
    head.starts_with(&[0x1f, 0x8b])
        || head.starts_with(&[0x28, 0xb5, 0x2f, 0xfd])
        || head.starts_with(b"BZh")
        || head.starts_with(&[0xfd, b'7', b'z', b'X', b'Z', 0])
}
