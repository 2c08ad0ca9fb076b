//! `system_info`: one row identifying the machine: names, CPU, memory, DMI hardware strings.

use crate::hostfs;
use crate::table::{Column, HostTable, Row, ScanContext, TableError};
use crate::tables::cpu_info::{physical_cores, processors};

/// osquery's `system_info` table.
pub struct SystemInfo;

impl HostTable for SystemInfo {
    const NAME: &'static str = "system_info";
    const COLUMNS: &'static [Column] = &[
        Column::text("hostname"),
        Column::text("uuid"),
        Column::text("cpu_type"),
        Column::text("cpu_subtype"),
        Column::text("cpu_brand"),
        Column::integer("cpu_physical_cores"),
        Column::integer("cpu_logical_cores"),
        Column::integer("cpu_sockets"),
        Column::text("cpu_microcode"),
        Column::bigint("physical_memory"),
        Column::text("hardware_vendor"),
        Column::text("hardware_model"),
        Column::text("hardware_version"),
        Column::text("hardware_serial"),
        Column::text("board_vendor"),
        Column::text("board_model"),
        Column::text("board_version"),
        Column::text("board_serial"),
        Column::text("computer_name"),
        Column::text("local_hostname"),
    ];

    fn rows(&self, _cx: &mut ScanContext<'_>) -> Result<Vec<Row>, TableError> {
        let name = host_name();
        let cpus = processors();
        let refs: Vec<_> = cpus.iter().collect();
        let first = cpus.first();
        let mut sockets: Vec<Option<&str>> = cpus.iter().map(|p| p.get("physical id")).collect();
        sockets.sort_unstable();
        sockets.dedup();
        let memory = super::memory_info::meminfo().get("MemTotal").copied();
        let dmi =
            |f: &str| hostfs::read_trimmed(format!("/sys/class/dmi/id/{f}")).unwrap_or_default();
        Ok(vec![vec![
            name.clone().into(),
            machine_uuid().into(),
            hostfs::machine_arch().into(),
            first.and_then(|p| p.get("model")).into(),
            first.and_then(|p| p.get("model name")).into(),
            physical_cores(&refs).into(),
            cpus.len().into(),
            sockets.len().into(),
            first.and_then(|p| p.get("microcode")).into(),
            memory.into(),
            dmi("sys_vendor").into(),
            dmi("product_name").into(),
            dmi("product_version").into(),
            dmi("product_serial").into(),
            dmi("board_vendor").into(),
            dmi("board_name").into(),
            dmi("board_version").into(),
            dmi("board_serial").into(),
            name.clone().into(),
            name.into(),
        ]])
    }
}

/// The host name as `gethostname(2)` returns it.
pub(crate) fn host_name() -> String {
    hostname::get()
        .ok()
        .map(|h| h.to_string_lossy().into_owned())
        .or_else(|| hostfs::read_trimmed("/proc/sys/kernel/hostname"))
        .unwrap_or_default()
}

/// The SMBIOS product UUID where readable (root only), else `/etc/machine-id` written as a
/// UUID, so the column identifies the machine either way.
pub(crate) fn machine_uuid() -> String {
    if let Some(uuid) =
        hostfs::read_trimmed("/sys/class/dmi/id/product_uuid").filter(|u| !u.is_empty())
    {
        return uuid.to_uppercase();
    }
    let id = hostfs::read_trimmed("/etc/machine-id").unwrap_or_default();
    if id.len() == 32 && id.bytes().all(|b| b.is_ascii_hexdigit()) {
        let u = id.to_uppercase();
        format!(
            "{}-{}-{}-{}-{}",
            &u[..8],
            &u[8..12],
            &u[12..16],
            &u[16..20],
            &u[20..]
        )
    } else {
        id
    }
}
