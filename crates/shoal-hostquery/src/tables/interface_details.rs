//! `interface_details`: one row per network interface, from `/sys/class/net` and the
//! counters of `/proc/net/dev`.

use crate::hostfs;
use crate::table::{Column, HostTable, Row, ScanContext, TableError};

/// osquery's `interface_details` table.
pub struct InterfaceDetails;

impl HostTable for InterfaceDetails {
    const NAME: &'static str = "interface_details";
    const COLUMNS: &'static [Column] = &[
        Column::text("interface"),
        Column::text("mac"),
        Column::integer("type"),
        Column::integer("mtu"),
        Column::integer("metric"),
        Column::integer("flags"),
        Column::bigint("ipackets"),
        Column::bigint("opackets"),
        Column::bigint("ibytes"),
        Column::bigint("obytes"),
        Column::bigint("ierrors"),
        Column::bigint("oerrors"),
        Column::bigint("idrops"),
        Column::bigint("odrops"),
        Column::bigint("collisions"),
        Column::bigint("last_change"),
        Column::bigint("link_speed"),
        Column::text("pci_slot"),
    ];

    fn rows(&self, _cx: &mut ScanContext<'_>) -> Result<Vec<Row>, TableError> {
        let stats = procfs::net::dev_status().unwrap_or_default();
        let mut names: Vec<String> = std::fs::read_dir("/sys/class/net")
            .map(|d| {
                d.flatten()
                    .map(|e| e.file_name().to_string_lossy().into_owned())
                    .collect()
            })
            .unwrap_or_default();
        names.sort();
        Ok(names
            .into_iter()
            .map(|name| {
                let sys = |f: &str| hostfs::read_trimmed(format!("/sys/class/net/{name}/{f}"));
                let int = |f: &str| sys(f).and_then(|v| v.parse::<i64>().ok());
                let flags = sys("flags")
                    .and_then(|f| i64::from_str_radix(f.trim_start_matches("0x"), 16).ok());
                let pci_slot = hostfs::read(format!("/sys/class/net/{name}/device/uevent"))
                    .and_then(|u| {
                        u.lines()
                            .find_map(|l| l.strip_prefix("PCI_SLOT_NAME=").map(str::to_string))
                    })
                    .unwrap_or_default();
                let s = stats.get(&name);
                let stat = |f: fn(&procfs::net::DeviceStatus) -> u64| s.map(f).unwrap_or(0);
                vec![
                    name.clone().into(),
                    sys("address").unwrap_or_default().into(),
                    int("type").into(),
                    int("mtu").into(),
                    0i64.into(),
                    flags.into(),
                    stat(|d| d.recv_packets).into(),
                    stat(|d| d.sent_packets).into(),
                    stat(|d| d.recv_bytes).into(),
                    stat(|d| d.sent_bytes).into(),
                    stat(|d| d.recv_errs).into(),
                    stat(|d| d.sent_errs).into(),
                    stat(|d| d.recv_drop).into(),
                    stat(|d| d.sent_drop).into(),
                    stat(|d| d.sent_colls).into(),
                    (-1i64).into(),
                    // Virtual interfaces report -1 or fail to read; osquery shows 0.
                    int("speed").filter(|s| *s > 0).unwrap_or(0).into(),
                    pci_slot.into(),
                ]
            })
            .collect())
    }
}
