//! `interface_addresses`: one row per IP address of each network interface (from the
//! kernel's address list through `sysinfo`).

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use sysinfo::Networks;

use crate::table::{Column, HostTable, Row, ScanContext, TableError};

/// osquery's `interface_addresses` table.
pub struct InterfaceAddresses;

impl HostTable for InterfaceAddresses {
    const NAME: &'static str = "interface_addresses";
    const COLUMNS: &'static [Column] = &[
        Column::text("interface"),
        Column::text("address"),
        Column::text("mask"),
        Column::text("broadcast"),
        Column::text("point_to_point"),
        Column::text("type"),
    ];

    fn rows(&self, _cx: &mut ScanContext<'_>) -> Result<Vec<Row>, TableError> {
        let networks = Networks::new_with_refreshed_list()
            .map_err(|e| TableError::Source(format!("cannot list network interfaces: {e}")))?;
        let mut interfaces: Vec<(String, &sysinfo::NetworkData)> = networks
            .iter()
            .map(|(n, d)| (n.to_string_lossy().into_owned(), d))
            .collect();
        interfaces.sort_by(|a, b| a.0.cmp(&b.0));
        let mut rows = Vec::new();
        for (name, data) in &interfaces {
            for net in data.ip_networks() {
                let (mask, broadcast) = match net.addr {
                    IpAddr::V4(a) => {
                        let bits = u32::MAX
                            .checked_shl(32 - u32::from(net.prefix.min(32)))
                            .unwrap_or(0);
                        let mask = Ipv4Addr::from(bits);
                        let broadcast = if name == "lo" || net.prefix >= 31 {
                            String::new()
                        } else {
                            Ipv4Addr::from(u32::from(a) | !bits).to_string()
                        };
                        (mask.to_string(), broadcast)
                    }
                    IpAddr::V6(_) => {
                        let bits = u128::MAX
                            .checked_shl(128 - u32::from(net.prefix.min(128)))
                            .unwrap_or(0);
                        (Ipv6Addr::from(bits).to_string(), String::new())
                    }
                };
                rows.push(vec![
                    name.as_str().into(),
                    net.addr.to_string().into(),
                    mask.into(),
                    broadcast.into(),
                    "".into(),
                    "unknown".into(),
                ]);
            }
        }
        Ok(rows)
    }
}
