//! `deb_packages`: the installed packages of dpkg's status database
//! (`<admindir>/status`, admindir `/var/lib/dpkg` unless `WHERE admindir = '...'`).
//! `size` is dpkg's `Installed-Size` as recorded (KiB), as osquery reports it.

use crate::hostfs;
use crate::table::{Column, HostTable, Row, ScanContext, TableError};

/// osquery's `deb_packages` table.
pub struct DebPackages;

const DEFAULT_ADMINDIR: &str = "/var/lib/dpkg";

impl HostTable for DebPackages {
    const NAME: &'static str = "deb_packages";
    const COLUMNS: &'static [Column] = &[
        Column::text("name"),
        Column::text("version"),
        Column::text("source"),
        Column::bigint("size"),
        Column::text("arch"),
        Column::text("revision"),
        Column::text("status"),
        Column::text("maintainer"),
        Column::text("section"),
        Column::text("priority"),
        Column::text("admindir").index(),
    ];

    fn rows(&self, cx: &mut ScanContext<'_>) -> Result<Vec<Row>, TableError> {
        let dirs = cx
            .constraints
            .texts("admindir")
            .unwrap_or_else(|| vec![DEFAULT_ADMINDIR.into()]);
        let mut rows = Vec::new();
        for dir in dirs {
            if let Some(text) = hostfs::read(format!("{}/status", dir.trim_end_matches('/'))) {
                rows.extend(parse_status(&text, &dir));
            }
        }
        Ok(rows)
    }
}

fn parse_status(text: &str, admindir: &str) -> Vec<Row> {
    text.split("\n\n")
        .filter_map(|stanza| {
            let field = |name: &str| {
                stanza.lines().find_map(|l| {
                    l.strip_prefix(name)
                        .and_then(|r| r.strip_prefix(':'))
                        .map(|v| v.trim().to_string())
                })
            };
            let name = field("Package")?;
            let status = field("Status").unwrap_or_default();
            if status.ends_with("not-installed") {
                return None;
            }
            let version = field("Version").unwrap_or_default();
            let revision = version
                .rsplit_once('-')
                .map(|(_, r)| r.to_string())
                .unwrap_or_default();
            // "Source: name (version)" keeps only the name.
            let source = field("Source")
                .map(|s| s.split_whitespace().next().unwrap_or_default().to_string())
                .unwrap_or_default();
            let size = field("Installed-Size").and_then(|s| s.parse::<i64>().ok());
            Some(vec![
                name.into(),
                version.into(),
                source.into(),
                size.into(),
                field("Architecture").into(),
                revision.into(),
                status.into(),
                field("Maintainer").into(),
                field("Section").into(),
                field("Priority").into(),
                admindir.into(),
            ])
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::value::Value;

    #[test]
    fn status_stanzas_become_rows_and_removed_packages_are_skipped() {
        let text = "Package: bash\nStatus: install ok installed\nPriority: required\nSection: shells\nInstalled-Size: 7175\nMaintainer: Matthias Klose <doko@debian.org>\nArchitecture: amd64\nSource: bash (5.2.15-2)\nVersion: 5.2.15-2+b2\nDescription: GNU shell\n multi-line\n\nPackage: gone\nStatus: purge ok not-installed\n";
        let rows = parse_status(text, "/var/lib/dpkg");
        assert_eq!(rows.len(), 1);
        assert_eq!(rows[0][0], Value::from("bash"));
        assert_eq!(rows[0][2], Value::from("bash"));
        assert_eq!(rows[0][3], Value::Integer(7175));
        assert_eq!(rows[0][5], Value::from("2+b2"));
    }
}
