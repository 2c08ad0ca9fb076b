//! `crontab`: the jobs of `/etc/crontab`, `/etc/cron.d/*` and the user crontabs in
//! `/var/spool/cron/crontabs`, one row per job line. As in osquery, the user field of
//! system crontabs stays part of `command`.

use std::path::Path;

use crate::hostfs;
use crate::table::{Column, HostTable, Row, ScanContext, TableError};

/// osquery's `crontab` table.
pub struct Crontab;

impl HostTable for Crontab {
    const NAME: &'static str = "crontab";
    const COLUMNS: &'static [Column] = &[
        Column::text("event"),
        Column::text("minute"),
        Column::text("hour"),
        Column::text("day_of_month"),
        Column::text("month"),
        Column::text("day_of_week"),
        Column::text("command"),
        Column::text("path"),
    ];

    fn rows(&self, _cx: &mut ScanContext<'_>) -> Result<Vec<Row>, TableError> {
        let mut files = vec!["/etc/crontab".to_string()];
        for dir in ["/etc/cron.d", "/var/spool/cron/crontabs", "/var/spool/cron"] {
            let Ok(entries) = std::fs::read_dir(dir) else {
                continue;
            };
            let mut found: Vec<String> = entries
                .flatten()
                .filter(|e| e.file_type().is_ok_and(|t| t.is_file()))
                .map(|e| {
                    Path::new(dir)
                        .join(e.file_name())
                        .to_string_lossy()
                        .into_owned()
                })
                .collect();
            found.sort();
            files.extend(found);
        }
        let mut rows = Vec::new();
        for path in files {
            if let Some(text) = hostfs::read(&path) {
                rows.extend(text.lines().filter_map(|l| parse_line(l, &path)));
            }
        }
        Ok(rows)
    }
}

fn parse_line(line: &str, path: &str) -> Option<Row> {
    let line = line.trim();
    if line.is_empty() || line.starts_with('#') {
        return None;
    }
    let first = line.split_whitespace().next()?;
    if let Some(event) = first.strip_prefix('@') {
        let command = line[first.len()..].trim();
        return Some(vec![
            format!("@{event}").into(),
            "".into(),
            "".into(),
            "".into(),
            "".into(),
            "".into(),
            command.into(),
            path.into(),
        ]);
    }
    // Environment assignments (`SHELL=/bin/sh`) are not jobs.
    if first.contains('=') {
        return None;
    }
    let mut rest = line;
    let mut times = Vec::with_capacity(5);
    for _ in 0..5 {
        let t = rest.split_whitespace().next()?;
        times.push(t.to_string());
        rest = rest[rest.find(t)? + t.len()..].trim_start();
    }
    let mut row: Row = vec!["".into()];
    row.extend(times.into_iter().map(Into::into));
    row.push(rest.into());
    row.push(path.into());
    Some(row)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::value::Value;

    #[test]
    fn job_lines_split_into_schedule_and_command() {
        let row = parse_line(
            "17 *\t* * *\troot    cd / && run-parts --report /etc/cron.hourly",
            "/etc/crontab",
        )
        .unwrap();
        assert_eq!(
            &row[1..6],
            &["17".into(), "*".into(), "*".into(), "*".into(), "*".into()]
        );
        assert_eq!(
            row[6],
            Value::from("root    cd / && run-parts --report /etc/cron.hourly")
        );
        let event = parse_line("@reboot /usr/bin/thing", "/x").unwrap();
        assert_eq!(
            (event[0].clone(), event[6].clone()),
            (Value::from("@reboot"), Value::from("/usr/bin/thing"))
        );
        assert_eq!(parse_line("SHELL=/bin/sh", "/x"), None);
        assert_eq!(parse_line("# m h dom mon dow", "/x"), None);
    }
}
