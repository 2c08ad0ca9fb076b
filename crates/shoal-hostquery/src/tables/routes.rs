//! `routes`: the main routing table, IPv4 from `/proc/net/route` and IPv6 from
//! `/proc/net/ipv6_route`.

use std::net::Ipv6Addr;

use crate::hostfs;
use crate::table::{Column, HostTable, Row, ScanContext, TableError};

/// osquery's `routes` table.
pub struct Routes;

/// `RTF_GATEWAY`.
const GATEWAY: u32 = 0x2;

impl HostTable for Routes {
    const NAME: &'static str = "routes";
    const COLUMNS: &'static [Column] = &[
        Column::text("destination"),
        Column::integer("netmask"),
        Column::text("gateway"),
        Column::text("source"),
        Column::integer("flags"),
        Column::text("interface"),
        Column::integer("mtu"),
        Column::integer("metric"),
        Column::text("type").index(),
        Column::integer("hopcount"),
    ];

    fn rows(&self, _cx: &mut ScanContext<'_>) -> Result<Vec<Row>, TableError> {
        let mut rows = Vec::new();
        for r in procfs::net::route().unwrap_or_default() {
            let flags = u32::from(r.flags);
            rows.push(route_row(
                r.destination.to_string(),
                u32::from(r.mask).count_ones(),
                r.gateway.to_string(),
                flags,
                r.iface,
                r.mtu,
                r.metrics,
            ));
        }
        let v6 = hostfs::read("/proc/net/ipv6_route").unwrap_or_default();
        rows.extend(v6.lines().filter_map(parse_ipv6_route));
        Ok(rows)
    }
}

fn route_row(
    dest: String,
    prefix: u32,
    gateway: String,
    flags: u32,
    iface: String,
    mtu: u32,
    metric: u32,
) -> Row {
    let kind = if flags & GATEWAY != 0 {
        "gateway"
    } else {
        "local"
    };
    vec![
        dest.into(),
        prefix.into(),
        gateway.into(),
        "".into(),
        flags.into(),
        iface.into(),
        mtu.into(),
        metric.into(),
        kind.into(),
        0i64.into(),
    ]
}

/// `dest prefix src src_prefix gateway metric refcnt use flags iface`, addresses in hex.
fn parse_ipv6_route(line: &str) -> Option<Row> {
    let f: Vec<&str> = line.split_whitespace().collect();
    if f.len() < 10 {
        return None;
    }
    let addr = |h: &str| {
        u128::from_str_radix(h, 16)
            .ok()
            .map(|n| Ipv6Addr::from(n).to_string())
    };
    let hex = |h: &str| u32::from_str_radix(h, 16).ok();
    let gateway = addr(f[4])?;
    let gateway = if gateway == "::" {
        String::new()
    } else {
        gateway
    };
    Some(route_row(
        addr(f[0])?,
        hex(f[1])?,
        gateway,
        hex(f[8])?,
        f[9].to_string(),
        0,
        hex(f[5])?,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::value::Value;

    #[test]
    fn ipv6_route_lines_parse() {
        let row = parse_ipv6_route(
            "fd000000000000000000000000000000 40 00000000000000000000000000000000 00 00000000000000000000000000000000 00000100 00000001 00000000 00000001     eth0",
        )
        .unwrap();
        assert_eq!(row[0], Value::from("fd00::"));
        assert_eq!(row[1], Value::Integer(64));
        assert_eq!(row[5], Value::from("eth0"));
        assert_eq!(row[7], Value::Integer(256));
    }
}
