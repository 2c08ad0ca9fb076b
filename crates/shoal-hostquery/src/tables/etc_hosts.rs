//! `etc_hosts`: one row per address line of `/etc/hosts`.

use crate::hostfs;
use crate::table::{Column, HostTable, Row, ScanContext, TableError};

/// osquery's `etc_hosts` table.
pub struct EtcHosts;

impl HostTable for EtcHosts {
    const NAME: &'static str = "etc_hosts";
    const COLUMNS: &'static [Column] = &[Column::text("address"), Column::text("hostnames")];

    fn rows(&self, _cx: &mut ScanContext<'_>) -> Result<Vec<Row>, TableError> {
        Ok(parse_hosts(&hostfs::read("/etc/hosts").unwrap_or_default()))
    }
}

fn parse_hosts(text: &str) -> Vec<Row> {
    text.lines()
        .filter_map(|line| {
            let line = line.split('#').next().unwrap_or_default();
            let mut fields = line.split_whitespace();
            let address = fields.next()?;
            let names: Vec<&str> = fields.collect();
            Some(vec![address.into(), names.join(" ").into()])
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::value::Value;

    #[test]
    fn hosts_lines_drop_comments_and_join_names() {
        let rows = parse_hosts("# c\n127.0.0.1\tlocalhost  lh # x\n\n::1 ip6-localhost\n");
        assert_eq!(rows.len(), 2);
        assert_eq!(
            rows[0],
            vec![Value::from("127.0.0.1"), Value::from("localhost lh")]
        );
    }
}
