//! `os_version`: one row from `/etc/os-release`, parsed as osquery's Linux table does.

use crate::hostfs;
use crate::table::{Column, HostTable, Row, ScanContext, TableError};

/// osquery's `os_version` table.
pub struct OsVersion;

impl HostTable for OsVersion {
    const NAME: &'static str = "os_version";
    const COLUMNS: &'static [Column] = &[
        Column::text("name"),
        Column::text("version"),
        Column::integer("major"),
        Column::integer("minor"),
        Column::integer("patch"),
        Column::text("build"),
        Column::text("platform"),
        Column::text("platform_like"),
        Column::text("codename"),
        Column::text("arch"),
    ];

    fn rows(&self, _cx: &mut ScanContext<'_>) -> Result<Vec<Row>, TableError> {
        let text = hostfs::read("/etc/os-release")
            .or_else(|| hostfs::read("/usr/lib/os-release"))
            .unwrap_or_default();
        Ok(vec![from_os_release(&text, hostfs::machine_arch())])
    }
}

fn from_os_release(text: &str, arch: String) -> Row {
    let kv = hostfs::key_values(text);
    let get = |k: &str| kv.iter().find(|(key, _)| key == k).map(|(_, v)| v.clone());
    let codename = get("VERSION_CODENAME").or_else(|| {
        kv.iter()
            .find(|(k, _)| k.ends_with("CODENAME"))
            .map(|(_, v)| v.clone())
    });
    let parts: Vec<i64> = get("VERSION_ID")
        .unwrap_or_default()
        .split('.')
        .map(|p| p.parse().unwrap_or(0))
        .collect();
    let part = |i: usize| parts.get(i).copied().unwrap_or(0);
    vec![
        get("NAME").unwrap_or_else(|| "Unknown".into()).into(),
        get("VERSION").unwrap_or_default().into(),
        part(0).into(),
        part(1).into(),
        part(2).into(),
        get("BUILD_ID").unwrap_or_default().into(),
        get("ID").unwrap_or_default().into(),
        get("ID_LIKE").unwrap_or_default().into(),
        codename.unwrap_or_default().into(),
        arch.into(),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::value::Value;

    #[test]
    fn os_release_maps_to_osquery_columns() {
        let row = from_os_release(
            "PRETTY_NAME=\"Debian GNU/Linux 12 (bookworm)\"\nNAME=\"Debian GNU/Linux\"\nVERSION_ID=\"12\"\nVERSION=\"12 (bookworm)\"\nVERSION_CODENAME=bookworm\nID=debian\n",
            "x86_64".into(),
        );
        assert_eq!(row[0], Value::from("Debian GNU/Linux"));
        assert_eq!(row[1], Value::from("12 (bookworm)"));
        assert_eq!(row[2], Value::Integer(12));
        assert_eq!(row[3], Value::Integer(0));
        assert_eq!(row[6], Value::from("debian"));
        assert_eq!(row[8], Value::from("bookworm"));
    }
}
