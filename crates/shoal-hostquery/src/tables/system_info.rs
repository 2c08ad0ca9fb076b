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

    fn rows(&self, cx: &mut ScanContext<'_>) -> Result<Vec<Row>, TableError> {
        // Each source is read only when a column it fills is wanted; the rest stay NULL.
        let name = cx
            .wants_any(&["hostname", "computer_name", "local_hostname"])
            .then(host_name);
        let named = |column: &str| cx.wants(column).then(|| name.clone()).flatten();
        let cpus = if cx.wants_any(CPUINFO_COLUMNS) {
            processors()
        } else {
            Vec::new()
        };
        let first = cpus.first();
        let cpu = |column: &str, key: &str| {
            cx.wants(column)
                .then(|| first.and_then(|p| p.get(key)))
                .flatten()
        };
        let sockets = cx.wants("cpu_sockets").then(|| {
            let mut ids: Vec<Option<&str>> = cpus.iter().map(|p| p.get("physical id")).collect();
            ids.sort_unstable();
            ids.dedup();
            ids.len()
        });
        let memory = cx
            .wants("physical_memory")
            .then(|| super::memory_info::meminfo().get("MemTotal").copied())
            .flatten();
        let dmi = |column: &str, file: &str| {
            cx.wants(column).then(|| {
                hostfs::read_trimmed(format!("/sys/class/dmi/id/{file}")).unwrap_or_default()
            })
        };
        Ok(vec![vec![
            named("hostname").into(),
            cx.wants("uuid").then(machine_uuid).into(),
            cx.wants("cpu_type").then(hostfs::machine_arch).into(),
            cpu("cpu_subtype", "model").into(),
            cpu("cpu_brand", "model name").into(),
            cx.wants("cpu_physical_cores")
                .then(|| physical_cores(&cpus.iter().collect::<Vec<_>>()))
                .into(),
            cx.wants("cpu_logical_cores").then_some(cpus.len()).into(),
            sockets.into(),
            cpu("cpu_microcode", "microcode").into(),
            memory.into(),
            dmi("hardware_vendor", "sys_vendor").into(),
            dmi("hardware_model", "product_name").into(),
            dmi("hardware_version", "product_version").into(),
            dmi("hardware_serial", "product_serial").into(),
            dmi("board_vendor", "board_vendor").into(),
            dmi("board_model", "board_name").into(),
            dmi("board_version", "board_version").into(),
            dmi("board_serial", "board_serial").into(),
            named("computer_name").into(),
            named("local_hostname").into(),
        ]])
    }
}

/// The columns filled from `/proc/cpuinfo`.
const CPUINFO_COLUMNS: &[&str] = &[
    "cpu_subtype",
    "cpu_brand",
    "cpu_physical_cores",
    "cpu_logical_cores",
    "cpu_sockets",
    "cpu_microcode",
];

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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::table::{Constraints, UsedColumns};
    use crate::value::Value;

    fn row(wanted: &[&str]) -> Row {
        let constraints = Constraints::none();
        let used = UsedColumns::named(SystemInfo::COLUMNS, wanted);
        let mut cx =
            ScanContext::new(&constraints, None).with_used_columns(SystemInfo::COLUMNS, used);
        let mut rows = SystemInfo.rows(&mut cx).unwrap();
        assert_eq!(rows.len(), 1);
        rows.remove(0)
    }

    #[test]
    fn only_wanted_columns_are_filled() {
        let hostname = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap();
        let r = row(&["hostname"]);
        assert_eq!(r[0], Value::from(hostname.trim()));
        assert!(r[1..].iter().all(|v| *v == Value::Null), "{r:?}");

        let r = row(&["cpu_logical_cores", "physical_memory"]);
        for (column, value) in SystemInfo::COLUMNS.iter().zip(&r) {
            let filled = matches!(column.name, "cpu_logical_cores" | "physical_memory");
            assert_eq!(*value != Value::Null, filled, "{}: {value:?}", column.name);
        }
    }
}
