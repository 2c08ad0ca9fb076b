//! Fleet metrics: the latest host sample of every connected node, and the report built from
//! them, grouped by a label (see `shoal_types::fleet`).
//!
//! Samples never touch the engine or the store: a node's link task puts the sample of each
//! heartbeat here, replacing the one before, and takes it out when the link ends (however it
//! ends: closed, replaced, timed out for silence, rejected, revoked or deleted; each drops the
//! session). A report also leaves out any sample older than the disconnect timeout, so a
//! node that falls silent vanishes from the metrics when it is marked disconnected, even
//! before its link is torn down.
//!
//! [`report`] is a pure function of the samples, the nodes' labels and the time, so the rules
//! (grouping, caps, notes, staleness) are tested without a clock or a socket.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::{Arc, Mutex};

use shoal_types::HostSample;
use shoal_types::fleet::{FleetGroup, FleetNode, FleetReport};
use shoal_types::time::UnixNanos;

use crate::metrics::Exposition;

/// The label fleet metrics are grouped by when none is asked for.
pub const DEFAULT_GROUP_LABEL: &str = "region";

/// Most nodes a report lists one by one (`per_node=true`): the busiest ones. Per-node series of
/// a larger fleet would cost Prometheus more than they tell; the groups cover every node.
pub const NODE_CAP: usize = 1_000;

/// Most groups a report has: grouping by a label with a value per node (`hostname`) would
/// be per-node series by another name.
pub const GROUP_CAP: usize = 1_000;

/// How many label names an "unknown label" note lists.
const LABELS_LISTED: usize = 20;

/// A node's latest sample as it arrived.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Latest {
    /// The link session it came over.
    pub session: u64,
    /// When the heartbeat arrived, by the orchestrator's clock (an edge node's own clock may be
    /// off by minutes; staleness is judged by ours).
    pub received_at: UnixNanos,
    /// Executions running, from the same heartbeat.
    pub running: u32,
    /// The reading.
    pub sample: HostSample,
}

/// The latest sample per node, shared by the link tasks and the API handle.
#[derive(Debug, Clone, Default)]
pub(crate) struct FleetSamples(Arc<Mutex<HashMap<String, Latest>>>);

impl FleetSamples {
    /// Keeps `latest` as the node's sample, replacing the one before.
    pub fn record(&self, node_id: &str, latest: Latest) {
        self.0
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(node_id.to_string(), latest);
    }

    /// Forgets the node's sample if it came over `session`: a newer session of the same node
    /// may already have sent its own.
    pub fn node_gone(&self, node_id: &str, session: u64) {
        let mut map = self.0.lock().unwrap_or_else(|p| p.into_inner());
        if map.get(node_id).is_some_and(|l| l.session == session) {
            map.remove(node_id);
        }
    }

    /// Every node's latest sample now.
    pub fn snapshot(&self) -> Vec<(String, Latest)> {
        self.0
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
            .map(|(id, l)| (id.clone(), *l))
            .collect()
    }
}

/// Builds the report: `samples` of the nodes in `labels` (the known, connected nodes and their
/// labels; samples of other nodes are left out) that are at most `max_age` old at `now`,
/// grouped by the label `by`; each node's own sample too when `per_node`.
pub(crate) fn report(
    samples: Vec<(String, Latest)>,
    labels: &HashMap<String, BTreeMap<String, String>>,
    by: &str,
    per_node: bool,
    now: UnixNanos,
    max_age: i64,
) -> FleetReport {
    let mut nodes: Vec<FleetNode> = Vec::new();
    let mut known_labels = BTreeSet::new();
    let mut unlabelled = 0;
    for (node_id, latest) in samples {
        let Some(node_labels) = labels.get(&node_id) else {
            continue;
        };
        if now - latest.received_at > max_age {
            continue;
        }
        known_labels.extend(node_labels.keys().cloned());
        let group = match node_labels.get(by) {
            Some(v) => v.clone(),
            None => {
                unlabelled += 1;
                String::new()
            }
        };
        nodes.push(FleetNode {
            node_id,
            group,
            running_executions: latest.running,
            received_at: latest.received_at,
            sample: latest.sample,
        });
    }
    let mut out = FleetReport {
        by: by.to_string(),
        reporting: nodes.len() as u32,
        ..Default::default()
    };
    if nodes.is_empty() {
        out.notes.push(
            "no connected node has sent a host sample yet (agents send one with every heartbeat)"
                .into(),
        );
        return out;
    }
    if unlabelled == nodes.len() {
        let listed: Vec<&str> = known_labels
            .iter()
            .take(LABELS_LISTED)
            .map(String::as_str)
            .collect();
        out.notes.push(format!(
            "no reporting node has the label {by:?}, so there are no groups; labels they have: {}",
            listed.join(", ")
        ));
    } else {
        if unlabelled > 0 {
            out.notes.push(format!(
                "{unlabelled} of {} nodes have no label {by:?}: they are grouped under the empty value",
                nodes.len()
            ));
        }
        let mut groups: BTreeMap<&str, Vec<&FleetNode>> = BTreeMap::new();
        for n in &nodes {
            groups.entry(n.group.as_str()).or_default().push(n);
        }
        let total = groups.len();
        out.groups = groups
            .into_iter()
            .take(GROUP_CAP)
            .map(|(value, members)| aggregate(value, &members))
            .collect();
        if total > GROUP_CAP {
            out.groups_omitted = (total - GROUP_CAP) as u32;
            out.notes.push(format!(
                "{} groups beyond the first {GROUP_CAP} (by value) left out: label {by:?} has a value for almost every node; group by one with fewer values",
                out.groups_omitted
            ));
        }
    }
    if per_node {
        nodes.sort_by(|a, b| {
            b.sample
                .cpu_percent
                .total_cmp(&a.sample.cpu_percent)
                .then_with(|| a.node_id.cmp(&b.node_id))
        });
        if nodes.len() > NODE_CAP {
            out.nodes_omitted = (nodes.len() - NODE_CAP) as u32;
            nodes.truncate(NODE_CAP);
            out.notes.push(format!(
                "per-node samples of the {NODE_CAP} busiest nodes only; {} more left out (the groups count every node)",
                out.nodes_omitted
            ));
        }
        out.nodes = nodes;
    }
    out
}

/// One group's aggregates.
fn aggregate(value: &str, members: &[&FleetNode]) -> FleetGroup {
    let n = members.len() as f64;
    let sum = |f: fn(&HostSample) -> f64| members.iter().map(|m| f(&m.sample)).sum::<f64>();
    let max = |f: fn(&HostSample) -> f64| {
        members
            .iter()
            .map(|m| f(&m.sample))
            .fold(f64::NEG_INFINITY, f64::max)
    };
    FleetGroup {
        value: value.to_string(),
        nodes: members.len() as u32,
        cpu_percent_avg: sum(|s| s.cpu_percent) / n,
        cpu_percent_max: max(|s| s.cpu_percent),
        memory_used: members.iter().map(|m| m.sample.memory_used).sum(),
        memory_total: members.iter().map(|m| m.sample.memory_total).sum(),
        memory_used_ratio_max: max(HostSample::memory_ratio),
        disk_used: members.iter().map(|m| m.sample.disk_used).sum(),
        disk_total: members.iter().map(|m| m.sample.disk_total).sum(),
        disk_used_ratio_max: max(HostSample::disk_ratio),
        load1_avg: sum(|s| s.load1) / n,
        load5_avg: sum(|s| s.load5) / n,
        load15_avg: sum(|s| s.load15) / n,
        load1_max: max(|s| s.load1),
        temperature_c_max: members
            .iter()
            .filter_map(|m| m.sample.temperature_c)
            .reduce(f64::max),
        running_executions: members
            .iter()
            .map(|m| u64::from(m.running_executions))
            .sum(),
    }
}

/// A group series of `/metrics/fleet`: name, help, and its value for a group (`None`: no
/// sample, as for the temperature of a group without sensors).
type GroupSeries = (&'static str, &'static str, fn(&FleetGroup) -> Option<f64>);

/// The group series, in the order they are written. `docs/metrics.md` lists them.
const GROUP_SERIES: &[GroupSeries] = &[
    (
        "shoal_fleet_nodes",
        "Nodes with a current host sample, per group.",
        |g| Some(g.nodes.into()),
    ),
    (
        "shoal_fleet_cpu_percent_avg",
        "Mean CPU busy percent of the group's nodes.",
        |g| Some(g.cpu_percent_avg),
    ),
    (
        "shoal_fleet_cpu_percent_max",
        "CPU busy percent of the group's busiest node.",
        |g| Some(g.cpu_percent_max),
    ),
    (
        "shoal_fleet_memory_used_bytes",
        "Memory in use (total minus available), summed over the group.",
        |g| Some(g.memory_used as f64),
    ),
    (
        "shoal_fleet_memory_total_bytes",
        "Physical memory, summed over the group.",
        |g| Some(g.memory_total as f64),
    ),
    (
        "shoal_fleet_memory_used_ratio_max",
        "Memory in use over total (0-1) of the group's fullest node.",
        |g| Some(g.memory_used_ratio_max),
    ),
    (
        "shoal_fleet_disk_used_bytes",
        "Bytes in use on the filesystem of each agent's data dir, summed over the group.",
        |g| Some(g.disk_used as f64),
    ),
    (
        "shoal_fleet_disk_total_bytes",
        "Size of the filesystem of each agent's data dir, summed over the group.",
        |g| Some(g.disk_total as f64),
    ),
    (
        "shoal_fleet_disk_used_ratio_max",
        "Data-dir filesystem use over size (0-1) of the group's fullest node.",
        |g| Some(g.disk_used_ratio_max),
    ),
    (
        "shoal_fleet_load1_avg",
        "Mean 1-minute load average of the group's nodes.",
        |g| Some(g.load1_avg),
    ),
    (
        "shoal_fleet_load5_avg",
        "Mean 5-minute load average of the group's nodes.",
        |g| Some(g.load5_avg),
    ),
    (
        "shoal_fleet_load15_avg",
        "Mean 15-minute load average of the group's nodes.",
        |g| Some(g.load15_avg),
    ),
    (
        "shoal_fleet_load1_max",
        "Highest 1-minute load average in the group.",
        |g| Some(g.load1_max),
    ),
    (
        "shoal_fleet_temperature_celsius_max",
        "Hottest temperature sensor in the group (groups without sensors have no sample).",
        |g| g.temperature_c_max,
    ),
    (
        "shoal_fleet_running_executions",
        "Executions running, summed over the group.",
        |g| Some(g.running_executions as f64),
    ),
];

/// A per-node series of `/metrics/fleet?per_node=true`.
type NodeSeries = (&'static str, &'static str, fn(&FleetNode) -> Option<f64>);

/// The per-node series. `docs/metrics.md` lists them.
const NODE_SERIES: &[NodeSeries] = &[
    (
        "shoal_node_cpu_percent",
        "The node's CPU busy percent since its previous sample.",
        |n| Some(n.sample.cpu_percent),
    ),
    (
        "shoal_node_memory_used_bytes",
        "The node's memory in use (total minus available).",
        |n| Some(n.sample.memory_used as f64),
    ),
    (
        "shoal_node_memory_total_bytes",
        "The node's physical memory.",
        |n| Some(n.sample.memory_total as f64),
    ),
    (
        "shoal_node_disk_used_bytes",
        "Bytes in use on the filesystem of the node's data dir.",
        |n| Some(n.sample.disk_used as f64),
    ),
    (
        "shoal_node_disk_total_bytes",
        "Size of the filesystem of the node's data dir.",
        |n| Some(n.sample.disk_total as f64),
    ),
    (
        "shoal_node_load1",
        "The node's 1-minute load average.",
        |n| Some(n.sample.load1),
    ),
    (
        "shoal_node_load5",
        "The node's 5-minute load average.",
        |n| Some(n.sample.load5),
    ),
    (
        "shoal_node_load15",
        "The node's 15-minute load average.",
        |n| Some(n.sample.load15),
    ),
    (
        "shoal_node_temperature_celsius",
        "The node's hottest temperature sensor (nodes without sensors have no sample).",
        |n| n.sample.temperature_c,
    ),
    (
        "shoal_node_running_executions",
        "Executions running on the node.",
        |n| Some(n.running_executions.into()),
    ),
];

/// Writes a report in Prometheus text format: one family per group series with the grouping
/// label, then the per-node families (with `node_id` too) when the report has nodes. Notes
/// become `#` comment lines, which Prometheus ignores and a person reading the page sees.
pub fn render(report: &FleetReport, out: &mut Exposition) {
    for note in &report.notes {
        out.comment(&format!("note: {note}"));
    }
    out.gauge(
        "shoal_fleet_reporting_nodes",
        "Connected nodes with a current host sample, in all.",
        report.reporting.into(),
    );
    let label = prometheus_label(&report.by);
    for (name, help, value) in GROUP_SERIES {
        out.header(name, "gauge", help);
        for g in &report.groups {
            if let Some(v) = value(g) {
                out.sample(name, &[(&label, &g.value)], v);
            }
        }
    }
    if report.nodes.is_empty() {
        return;
    }
    for (name, help, value) in NODE_SERIES {
        out.header(name, "gauge", help);
        for n in &report.nodes {
            if let Some(v) = value(n) {
                out.sample(name, &[("node_id", &n.node_id), (&label, &n.group)], v);
            }
        }
    }
}

/// A node label's name as a Prometheus label name: characters other than `[a-zA-Z0-9_]`
/// become `_`, a leading digit gets a `_` before it, and names Prometheus or the per-node
/// series reserve (`__*`, `node_id`) get a `label_` prefix.
pub fn prometheus_label(key: &str) -> String {
    let mut name: String = key
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '_' {
                c
            } else {
                '_'
            }
        })
        .collect();
    if name.is_empty() || name.starts_with(|c: char| c.is_ascii_digit()) {
        name.insert(0, '_');
    }
    if name.starts_with("__") || name == "node_id" {
        name.insert_str(0, "label_");
    }
    name
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECOND: i64 = 1_000_000_000;

    fn sample(cpu: f64, mem_used: u64, temp: Option<f64>) -> HostSample {
        HostSample {
            cpu_percent: cpu,
            memory_used: mem_used,
            memory_total: 100,
            disk_used: 10,
            disk_total: 40,
            load1: cpu / 10.0,
            temperature_c: temp,
            ..Default::default()
        }
    }

    fn latest(received_at: UnixNanos, s: HostSample) -> Latest {
        Latest {
            session: 1,
            received_at,
            running: 2,
            sample: s,
        }
    }

    fn labels(nodes: &[(&str, &[(&str, &str)])]) -> HashMap<String, BTreeMap<String, String>> {
        nodes
            .iter()
            .map(|(id, l)| {
                let l = l.iter().map(|(k, v)| (k.to_string(), v.to_string()));
                (id.to_string(), l.collect())
            })
            .collect()
    }

    #[test]
    fn groups_sum_sizes_average_and_max_rates_and_take_the_hottest_sensor() {
        let known = labels(&[
            ("n-1", &[("region", "eu")]),
            ("n-2", &[("region", "eu")]),
            ("n-3", &[("region", "us")]),
        ]);
        let samples = vec![
            ("n-1".to_string(), latest(0, sample(20.0, 50, Some(40.0)))),
            ("n-2".to_string(), latest(0, sample(60.0, 90, None))),
            ("n-3".to_string(), latest(0, sample(5.0, 10, None))),
        ];
        let r = report(samples, &known, "region", false, SECOND, 15 * SECOND);
        assert_eq!(r.reporting, 3);
        assert!(r.notes.is_empty(), "{:?}", r.notes);
        assert!(r.nodes.is_empty(), "per-node only when asked");
        let [eu, us] = &r.groups[..] else {
            panic!("{:?}", r.groups)
        };
        assert_eq!((eu.value.as_str(), eu.nodes), ("eu", 2));
        assert_eq!(eu.cpu_percent_avg, 40.0);
        assert_eq!(eu.cpu_percent_max, 60.0);
        assert_eq!((eu.memory_used, eu.memory_total), (140, 200));
        assert_eq!(eu.memory_used_ratio_max, 0.9);
        assert_eq!(eu.disk_used_ratio_max, 0.25);
        assert_eq!(eu.load1_max, 6.0);
        assert_eq!(eu.temperature_c_max, Some(40.0));
        assert_eq!(eu.running_executions, 4);
        assert_eq!(us.temperature_c_max, None, "no sensors in us");
    }

    #[test]
    fn a_sample_older_than_the_disconnect_timeout_or_of_an_unknown_node_is_not_served() {
        let known = labels(&[
            ("n-old", &[("region", "eu")]),
            ("n-new", &[("region", "eu")]),
        ]);
        let samples = vec![
            ("n-old".to_string(), latest(0, sample(1.0, 1, None))),
            (
                "n-new".to_string(),
                latest(10 * SECOND, sample(1.0, 1, None)),
            ),
            (
                "n-gone".to_string(),
                latest(10 * SECOND, sample(1.0, 1, None)),
            ),
        ];
        let now = 16 * SECOND;
        let r = report(samples.clone(), &known, "region", true, now, 15 * SECOND);
        assert_eq!(r.reporting, 1);
        assert_eq!(r.nodes.len(), 1);
        assert_eq!(r.nodes[0].node_id, "n-new");
        assert_eq!(r.groups[0].nodes, 1);
        // At exactly the timeout the old one still counts.
        let r = report(samples, &known, "region", true, 15 * SECOND, 15 * SECOND);
        assert_eq!(r.reporting, 2);
    }

    #[test]
    fn a_label_no_node_has_gives_no_groups_and_a_note_naming_the_labels_there_are() {
        let known = labels(&[("n-1", &[("region", "eu"), ("rack", "4")])]);
        let samples = vec![("n-1".to_string(), latest(0, sample(1.0, 1, None)))];
        let r = report(samples, &known, "regoin", true, 0, SECOND);
        assert!(r.groups.is_empty());
        assert_eq!(r.nodes.len(), 1, "per-node samples are still served");
        assert_eq!(r.nodes[0].group, "");
        let note = r.notes.join("\n");
        assert!(note.contains("\"regoin\""), "{note}");
        assert!(note.contains("rack, region"), "{note}");
    }

    #[test]
    fn nodes_without_the_label_are_grouped_under_the_empty_value_with_a_note() {
        let known = labels(&[("n-1", &[("region", "eu")]), ("n-2", &[])]);
        let samples = vec![
            ("n-1".to_string(), latest(0, sample(1.0, 1, None))),
            ("n-2".to_string(), latest(0, sample(1.0, 1, None))),
        ];
        let r = report(samples, &known, "region", false, 0, SECOND);
        let values: Vec<&str> = r.groups.iter().map(|g| g.value.as_str()).collect();
        assert_eq!(values, ["", "eu"]);
        assert!(
            r.notes[0].starts_with("1 of 2 nodes have no label"),
            "{:?}",
            r.notes
        );
    }

    #[test]
    fn per_node_samples_are_busiest_first_and_capped_with_a_note() {
        let n = NODE_CAP + 5;
        let ids: Vec<String> = (0..n).map(|i| format!("n-{i:05}")).collect();
        let known: HashMap<_, _> = ids
            .iter()
            .map(|id| (id.clone(), BTreeMap::from([("region".into(), "eu".into())])))
            .collect();
        let samples = ids
            .iter()
            .enumerate()
            .map(|(i, id)| (id.clone(), latest(0, sample(i as f64 / 100.0, 1, None))))
            .collect();
        let r = report(samples, &known, "region", true, 0, SECOND);
        assert_eq!(r.nodes.len(), NODE_CAP);
        assert_eq!(r.nodes_omitted, 5);
        assert_eq!(
            r.nodes[0].node_id,
            format!("n-{:05}", n - 1),
            "busiest first"
        );
        assert_eq!(r.groups[0].nodes as usize, n, "groups count every node");
        assert!(
            r.notes.iter().any(|m| m.contains("busiest")),
            "{:?}",
            r.notes
        );
    }

    #[test]
    fn a_label_with_a_value_per_node_is_capped_at_the_group_cap() {
        let n = GROUP_CAP + 2;
        let known: HashMap<_, _> = (0..n)
            .map(|i| {
                let id = format!("n-{i:05}");
                (id.clone(), BTreeMap::from([("hostname".into(), id)]))
            })
            .collect();
        let samples = known
            .keys()
            .map(|id| (id.clone(), latest(0, sample(1.0, 1, None))))
            .collect();
        let r = report(samples, &known, "hostname", false, 0, SECOND);
        assert_eq!(r.groups.len(), GROUP_CAP);
        assert_eq!(r.groups_omitted, 2);
        assert!(
            r.notes.iter().any(|m| m.contains("fewer values")),
            "{:?}",
            r.notes
        );
    }

    #[test]
    fn a_newer_session_keeps_its_sample_when_the_old_session_ends() {
        let samples = FleetSamples::default();
        samples.record("n-1", latest(0, sample(1.0, 1, None)));
        let newer = Latest {
            session: 2,
            ..latest(1, sample(2.0, 1, None))
        };
        samples.record("n-1", newer);
        samples.node_gone("n-1", 1);
        assert_eq!(samples.snapshot(), vec![("n-1".to_string(), newer)]);
        samples.node_gone("n-1", 2);
        assert!(samples.snapshot().is_empty());
    }

    #[test]
    fn the_exposition_has_one_series_per_group_and_metric_and_node_ids_only_per_node() {
        let known = labels(&[("n-1", &[("topology.io/zone", "a")])]);
        let samples = vec![("n-1".to_string(), latest(0, sample(1.0, 1, Some(50.0))))];
        let grouped = report(
            samples.clone(),
            &known,
            "topology.io/zone",
            false,
            0,
            SECOND,
        );
        let mut out = Exposition::default();
        render(&grouped, &mut out);
        let text = out.finish();
        assert!(
            text.contains("shoal_fleet_memory_used_bytes{topology_io_zone=\"a\"} 1\n"),
            "{text}"
        );
        assert!(!text.contains("node_id"), "{text}");
        let series = text.lines().filter(|l| !l.starts_with('#')).count();
        assert_eq!(series, GROUP_SERIES.len() + 1, "{text}");

        let per_node = report(samples, &known, "topology.io/zone", true, 0, SECOND);
        let mut out = Exposition::default();
        render(&per_node, &mut out);
        let text = out.finish();
        assert!(
            text.contains(
                "shoal_node_temperature_celsius{node_id=\"n-1\",topology_io_zone=\"a\"} 50\n"
            ),
            "{text}"
        );
    }

    #[test]
    fn label_names_are_made_valid_for_prometheus() {
        assert_eq!(prometheus_label("region"), "region");
        assert_eq!(prometheus_label("devstack-node"), "devstack_node");
        assert_eq!(prometheus_label("1zone"), "_1zone");
        assert_eq!(prometheus_label("node_id"), "label_node_id");
        assert_eq!(prometheus_label("__name__"), "label___name__");
    }
}
