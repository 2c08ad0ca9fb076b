//! `cpu_info`: one row per physical CPU package, from `/proc/cpuinfo`. osquery reads SMBIOS
//! for this table; `/proc/cpuinfo` is readable without root and gives the same model,
//! vendor, core and clock figures.

use std::collections::BTreeMap;

use crate::hostfs;
use crate::table::{Column, HostTable, Row, ScanContext, TableError};

/// osquery's `cpu_info` table.
pub struct CpuInfo;

impl HostTable for CpuInfo {
    const NAME: &'static str = "cpu_info";
    const COLUMNS: &'static [Column] = &[
        Column::text("device_id"),
        Column::text("model"),
        Column::text("manufacturer"),
        Column::text("processor_type"),
        Column::integer("cpu_status"),
        Column::text("number_of_cores"),
        Column::integer("logical_processors"),
        Column::text("address_width"),
        Column::integer("current_clock_speed"),
        Column::integer("max_clock_speed"),
        Column::text("socket_designation"),
    ];

    fn rows(&self, _cx: &mut ScanContext<'_>) -> Result<Vec<Row>, TableError> {
        let processors = processors();
        let max_mhz = hostfs::read_trimmed("/sys/devices/system/cpu/cpu0/cpufreq/cpuinfo_max_freq")
            .and_then(|khz| khz.parse::<i64>().ok())
            .map(|khz| khz / 1000);
        let mut packages: BTreeMap<String, Vec<&Processor>> = BTreeMap::new();
        for p in &processors {
            packages
                .entry(p.get("physical id").unwrap_or("0").to_string())
                .or_default()
                .push(p);
        }
        let address_width = if cfg!(target_pointer_width = "64") {
            "64"
        } else {
            "32"
        };
        Ok(packages
            .into_iter()
            .map(|(id, ps)| {
                let first = ps[0];
                let mhz = first
                    .get("cpu MHz")
                    .and_then(|m| m.parse::<f64>().ok())
                    .map(|m| m as i64);
                let cores = first
                    .get("cpu cores")
                    .map(str::to_string)
                    .unwrap_or_else(|| physical_cores(&ps).to_string());
                vec![
                    format!("CPU{id}").into(),
                    first.get("model name").into(),
                    first.get("vendor_id").into(),
                    "Central Processor".into(),
                    1i64.into(),
                    cores.into(),
                    ps.len().into(),
                    address_width.into(),
                    mhz.into(),
                    max_mhz.or(mhz).into(),
                    "".into(),
                ]
            })
            .collect())
    }
}

/// One `processor : N` block of `/proc/cpuinfo`.
#[derive(Debug, Default)]
pub(crate) struct Processor(Vec<(String, String)>);

impl Processor {
    /// The value of `key`, if the block has it.
    pub(crate) fn get(&self, key: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }
}

/// Every logical processor in `/proc/cpuinfo`.
pub(crate) fn processors() -> Vec<Processor> {
    hostfs::read("/proc/cpuinfo")
        .map(|t| parse_cpuinfo(&t))
        .unwrap_or_default()
}

/// Distinct (physical id, core id) pairs: the physical core count.
pub(crate) fn physical_cores(processors: &[&Processor]) -> usize {
    let mut cores: Vec<(Option<&str>, Option<&str>)> = processors
        .iter()
        .map(|p| (p.get("physical id"), p.get("core id")))
        .collect();
    cores.sort_unstable();
    cores.dedup();
    cores.len()
}

fn parse_cpuinfo(text: &str) -> Vec<Processor> {
    text.split("\n\n")
        .filter(|block| !block.trim().is_empty())
        .map(|block| {
            Processor(
                block
                    .lines()
                    .filter_map(|l| l.split_once(':'))
                    .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
                    .collect(),
            )
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpuinfo_blocks_parse_into_processors_with_physical_cores() {
        let ps = parse_cpuinfo(
            "processor\t: 0\nphysical id\t: 0\ncore id\t: 0\n\nprocessor\t: 1\nphysical id\t: 0\ncore id\t: 0\n\nprocessor\t: 2\nphysical id\t: 0\ncore id\t: 1\n",
        );
        assert_eq!(ps.len(), 3);
        let refs: Vec<&Processor> = ps.iter().collect();
        assert_eq!(physical_cores(&refs), 2);
    }
}
