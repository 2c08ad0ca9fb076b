//! `file_lines`: the lines of the log files named by `WHERE path = '...'` or
//! `WHERE path GLOB '...'`, under the directories the node allows (`--log-allow`). Fleet's
//! `file_lines` table (path, line), plus the byte `offset` of each line and a hidden
//! `since` that starts reading at a byte offset: pass the largest `offset` seen plus one to
//! get only the lines written after it. See [`crate::logfiles`] for the bounds.

use crate::logfiles::{for_each_line, since};
use crate::table::{Column, HostTable, Row, ScanContext, TableError};

/// Fleet's `file_lines` table.
pub struct FileLines;

impl HostTable for FileLines {
    const NAME: &'static str = "file_lines";
    const COLUMNS: &'static [Column] = &[
        Column::text("path").required().glob(),
        Column::text("line"),
        Column::bigint("offset"),
        Column::bigint("since").hidden().index(),
    ];

    fn rows(&self, cx: &mut ScanContext<'_>) -> Result<Vec<Row>, TableError> {
        let since = since(cx).unwrap_or(0) as i64;
        let mut rows = Vec::new();
        for_each_line(Self::NAME, cx, |line| {
            rows.push(vec![
                line.path.into(),
                line.text.into(),
                (line.offset as i64).into(),
                since.into(),
            ]);
        })?;
        Ok(rows)
    }
}
