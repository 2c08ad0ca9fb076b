//! Fleet metrics: the compact host sample an agent puts on its heartbeats, and the report the
//! orchestrator builds from the latest sample of every connected node, grouped by a label.
//!
//! Prometheus cannot scrape edge nodes behind NAT, so the nodes push: each heartbeat carries
//! one [`HostSample`], the orchestrator keeps only the latest per node (in memory), and
//! `/metrics/fleet` (Prometheus text) or `/api/v1/orchestrator/fleet/metrics` (a
//! [`FleetReport`] as JSON) serve them. A node that disconnects takes its sample with it.

use serde::{Deserialize, Serialize};

use crate::time::UnixNanos;

/// One reading of a host, taken by its agent just before a heartbeat.
///
/// Every field has a default, so a sample from an agent that reads less (no sensors, no
/// `/proc`) still decodes; a missing number reads as 0.
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct HostSample {
    /// When the agent took it, by the agent's clock.
    pub sampled_at: UnixNanos,
    /// Busy share of all CPUs, 0–100: since the previous sample, or since boot for an agent's
    /// first sample.
    #[serde(rename = "CPUPercent")]
    pub cpu_percent: f64,
    /// Memory in use in bytes: total minus what the kernel reports available (page cache that
    /// can be dropped is not "used").
    pub memory_used: u64,
    /// Physical memory in bytes.
    pub memory_total: u64,
    /// Bytes in use on the filesystem holding the agent's data dir (where inputs and results
    /// are staged).
    pub disk_used: u64,
    /// Size of that filesystem in bytes.
    pub disk_total: u64,
    /// Run-queue load average over 1 minute.
    pub load1: f64,
    /// Over 5 minutes.
    pub load5: f64,
    /// Over 15 minutes.
    pub load15: f64,
    /// The hottest temperature sensor, in degrees Celsius; `None` on a host without readable
    /// sensors (most VMs and containers).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub temperature_c: Option<f64>,
}

impl HostSample {
    /// Share of memory in use, 0–1 (0 when the total is unknown).
    pub fn memory_ratio(&self) -> f64 {
        ratio(self.memory_used, self.memory_total)
    }

    /// Share of the data dir's filesystem in use, 0–1 (0 when its size is unknown).
    pub fn disk_ratio(&self) -> f64 {
        ratio(self.disk_used, self.disk_total)
    }
}

fn ratio(used: u64, total: u64) -> f64 {
    if total == 0 {
        0.0
    } else {
        used as f64 / total as f64
    }
}

/// A node's latest sample as the orchestrator serves it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct FleetNode {
    /// The node.
    #[serde(rename = "NodeID")]
    pub node_id: String,
    /// Its value of the report's grouping label; empty when it has none.
    #[serde(default)]
    pub group: String,
    /// Executions running on it, from the same heartbeat.
    #[serde(default)]
    pub running_executions: u32,
    /// When the orchestrator received the heartbeat, by the orchestrator's clock.
    #[serde(default)]
    pub received_at: UnixNanos,
    /// The reading.
    #[serde(default)]
    pub sample: HostSample,
}

/// The nodes that share a value of the grouping label, aggregated. Sizes and execution counts
/// are sums over the group; percentages, ratios and loads are averages or maxima, as named.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct FleetGroup {
    /// The label's value; empty for the nodes that do not have the label.
    pub value: String,
    /// Nodes with a current sample in the group.
    pub nodes: u32,
    /// Mean CPU busy percent over the group's nodes.
    #[serde(rename = "CPUPercentAvg")]
    pub cpu_percent_avg: f64,
    /// The busiest node's CPU percent.
    #[serde(rename = "CPUPercentMax")]
    pub cpu_percent_max: f64,
    /// Memory in use, summed.
    pub memory_used: u64,
    /// Memory, summed.
    pub memory_total: u64,
    /// The fullest node's memory ratio, 0–1.
    pub memory_used_ratio_max: f64,
    /// Data-dir filesystem bytes in use, summed.
    pub disk_used: u64,
    /// Data-dir filesystem sizes, summed.
    pub disk_total: u64,
    /// The fullest node's disk ratio, 0–1.
    pub disk_used_ratio_max: f64,
    /// Mean 1-minute load.
    pub load1_avg: f64,
    /// Mean 5-minute load.
    pub load5_avg: f64,
    /// Mean 15-minute load.
    pub load15_avg: f64,
    /// The highest 1-minute load.
    pub load1_max: f64,
    /// The hottest sensor of the group; `None` when no node in it has sensors.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub temperature_c_max: Option<f64>,
    /// Executions running, summed.
    pub running_executions: u64,
}

/// What `/api/v1/orchestrator/fleet/metrics` answers: the fleet grouped by one label, and,
/// when asked, each node's own sample.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct FleetReport {
    /// The label the groups are by (`region` unless asked otherwise).
    pub by: String,
    /// Connected nodes with a current sample.
    pub reporting: u32,
    /// One entry per value of the label, sorted by value. Empty when no reporting node has
    /// the label (see `notes`).
    pub groups: Vec<FleetGroup>,
    /// Groups left out beyond the cap (a label with a value per node, like `hostname`).
    pub groups_omitted: u32,
    /// Per-node samples, busiest CPU first; only when asked (`per_node=true`).
    pub nodes: Vec<FleetNode>,
    /// Nodes left out of `nodes` beyond the cap.
    pub nodes_omitted: u32,
    /// Anything the reader should know: a label no node has, nodes without the label,
    /// a cap that applied.
    pub notes: Vec<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_sample_without_sensors_or_fields_still_decodes_and_ratios_guard_zero_totals() {
        let s: HostSample = serde_json::from_str(r#"{"CPUPercent": 12.5, "MemoryUsed": 5}"#)
            .expect("partial sample");
        assert_eq!(s.cpu_percent, 12.5);
        assert_eq!(s.temperature_c, None);
        assert_eq!(s.memory_ratio(), 0.0, "unknown total");
        let json = serde_json::to_string(&s).unwrap();
        assert!(!json.contains("TemperatureC"), "{json}");
        let full = HostSample {
            disk_used: 1,
            disk_total: 4,
            temperature_c: Some(41.0),
            ..s
        };
        assert_eq!(full.disk_ratio(), 0.25);
        let back: HostSample =
            serde_json::from_str(&serde_json::to_string(&full).unwrap()).unwrap();
        assert_eq!(back, full);
    }
}
