//! The orchestrator's own metrics, and the Prometheus text format they are served in.
//!
//! Counters and histograms are plain atomics updated where things happen (the engine, the
//! link tasks); gauges (jobs by state, nodes by status) are read at scrape time from the
//! store and the node table, so they can never drift. Every orchestrator has its own
//! [`Metrics`] (no global registry), so tests running several in one process see only their
//! own. No series carries a node or job id: the series count stays fixed whatever the fleet's
//! size. `docs/metrics.md` lists every series.

use std::fmt::Write;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use shoal_types::JobType;
use shoal_types::answer::Coverage;

/// Upper bounds (seconds) of the latency histograms' buckets.
const LATENCY_BUCKETS: [f64; 14] = [
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.5, 2.5, 10.0, 60.0,
];

/// A latency histogram with fixed buckets.
#[derive(Debug, Default)]
pub struct Histogram {
    buckets: [AtomicU64; LATENCY_BUCKETS.len()],
    count: AtomicU64,
    sum_nanos: AtomicU64,
}

impl Histogram {
    /// Records one observation.
    pub fn observe(&self, d: Duration) {
        let secs = d.as_secs_f64();
        if let Some(i) = LATENCY_BUCKETS.iter().position(|b| secs <= *b) {
            self.buckets[i].fetch_add(1, Ordering::Relaxed);
        }
        self.count.fetch_add(1, Ordering::Relaxed);
        self.sum_nanos
            .fetch_add(d.as_nanos().min(u64::MAX as u128) as u64, Ordering::Relaxed);
    }

    /// How many observations were recorded.
    pub fn count(&self) -> u64 {
        self.count.load(Ordering::Relaxed)
    }
}

/// What the orchestrator counts as it works.
#[derive(Debug, Default)]
pub struct Metrics {
    /// Accepted submissions by job type (batch, ops, daemon, service).
    submitted: [AtomicU64; 4],
    /// Link frames received from nodes.
    pub frames_in: AtomicU64,
    /// Link frames sent to nodes.
    pub frames_out: AtomicU64,
    /// Stored messages resent to nodes after they reconnected.
    pub replayed: AtomicU64,
    /// Time of each engine store transaction, commit included.
    pub store_tx: Histogram,
    /// Time of each job evaluation (placement plan).
    pub plan: Histogram,
    /// Time from a fleet query's submission to its end (every node answered, or the
    /// deadline passed).
    pub query_fanout: Histogram,
    /// Fleet queries ended.
    queries: AtomicU64,
    /// Nodes fleet queries asked, by what came of it: answered, errored, unreachable.
    query_nodes: [AtomicU64; 3],
}

const QUERY_OUTCOMES: [&str; 3] = ["answered", "errored", "unreachable"];

const JOB_TYPES: [JobType; 4] = [
    JobType::Batch,
    JobType::Ops,
    JobType::Daemon,
    JobType::Service,
];

impl Metrics {
    /// Counts an accepted submission.
    pub fn submitted(&self, job_type: JobType) {
        if let Some(i) = JOB_TYPES.iter().position(|t| *t == job_type) {
            self.submitted[i].fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Counts an ended fleet query: its time and what each node asked did.
    pub fn query_done(&self, coverage: &Coverage, wall: Duration) {
        self.query_fanout.observe(wall);
        self.queries.fetch_add(1, Ordering::Relaxed);
        let counts = [coverage.answered, coverage.errored, coverage.unreachable];
        for (n, c) in self.query_nodes.iter().zip(counts) {
            n.fetch_add(c as u64, Ordering::Relaxed);
        }
    }

    /// Writes the counters and histograms in Prometheus text format.
    pub fn render(&self, out: &mut Exposition) {
        out.header(
            "shoal_jobs_submitted_total",
            "counter",
            "Jobs accepted by the orchestrator, by job type.",
        );
        for (t, n) in JOB_TYPES.iter().zip(&self.submitted) {
            out.sample(
                "shoal_jobs_submitted_total",
                &[("type", &t.to_string())],
                n.load(Ordering::Relaxed) as f64,
            );
        }
        out.header(
            "shoal_link_frames_total",
            "counter",
            "Agent link frames, by direction (in = from nodes).",
        );
        for (dir, n) in [("in", &self.frames_in), ("out", &self.frames_out)] {
            out.sample(
                "shoal_link_frames_total",
                &[("dir", dir)],
                n.load(Ordering::Relaxed) as f64,
            );
        }
        out.counter(
            "shoal_link_replayed_total",
            "Stored messages resent to nodes after a reconnect.",
            self.replayed.load(Ordering::Relaxed) as f64,
        );
        out.histogram(
            "shoal_store_tx_seconds",
            "Time of each engine store transaction, commit included.",
            &self.store_tx,
        );
        out.histogram(
            "shoal_scheduler_plan_seconds",
            "Time of each job evaluation (placement plan).",
            &self.plan,
        );
        out.histogram(
            "shoal_query_fanout_seconds",
            "Time from a fleet query's submission to its end (all nodes answered, or the deadline).",
            &self.query_fanout,
        );
        out.counter(
            "shoal_queries_total",
            "Fleet queries ended.",
            self.queries.load(Ordering::Relaxed) as f64,
        );
        out.header(
            "shoal_query_nodes_total",
            "counter",
            "Nodes asked by fleet queries, by outcome; answered / all is the fleet's coverage.",
        );
        for (outcome, n) in QUERY_OUTCOMES.iter().zip(&self.query_nodes) {
            out.sample(
                "shoal_query_nodes_total",
                &[("outcome", outcome)],
                n.load(Ordering::Relaxed) as f64,
            );
        }
    }
}

/// A Prometheus text-format (0.0.4) document being written.
#[derive(Debug, Default)]
pub struct Exposition(String);

impl Exposition {
    /// `# HELP` and `# TYPE` lines of a metric family.
    pub fn header(&mut self, name: &str, kind: &str, help: &str) {
        let _ = writeln!(self.0, "# HELP {name} {help}");
        let _ = writeln!(self.0, "# TYPE {name} {kind}");
    }

    /// One sample line; label values are escaped.
    pub fn sample(&mut self, name: &str, labels: &[(&str, &str)], value: f64) {
        self.0.push_str(name);
        if !labels.is_empty() {
            self.0.push('{');
            for (i, (k, v)) in labels.iter().enumerate() {
                if i > 0 {
                    self.0.push(',');
                }
                let v = v
                    .replace('\\', "\\\\")
                    .replace('"', "\\\"")
                    .replace('\n', "\\n");
                let _ = write!(self.0, "{k}=\"{v}\"");
            }
            self.0.push('}');
        }
        let _ = writeln!(self.0, " {value}");
    }

    /// A `#` comment line (neither HELP nor TYPE), which parsers skip; for notes a person
    /// reading the page should see.
    pub fn comment(&mut self, text: &str) {
        let _ = writeln!(self.0, "# {}", text.replace('\n', " "));
    }

    /// A counter family with one unlabelled sample.
    pub fn counter(&mut self, name: &str, help: &str, value: f64) {
        self.header(name, "counter", help);
        self.sample(name, &[], value);
    }

    /// A gauge family with one unlabelled sample.
    pub fn gauge(&mut self, name: &str, help: &str, value: f64) {
        self.header(name, "gauge", help);
        self.sample(name, &[], value);
    }

    /// A histogram family: cumulative `_bucket`s, `_sum` and `_count`.
    pub fn histogram(&mut self, name: &str, help: &str, h: &Histogram) {
        self.header(name, "histogram", help);
        let bucket = format!("{name}_bucket");
        let mut cumulative = 0;
        for (bound, n) in LATENCY_BUCKETS.iter().zip(&h.buckets) {
            cumulative += n.load(Ordering::Relaxed);
            self.sample(&bucket, &[("le", &bound.to_string())], cumulative as f64);
        }
        let count = h.count.load(Ordering::Relaxed);
        self.sample(&bucket, &[("le", "+Inf")], count as f64);
        let sum = h.sum_nanos.load(Ordering::Relaxed) as f64 / 1e9;
        self.sample(&format!("{name}_sum"), &[], sum);
        self.sample(&format!("{name}_count"), &[], count as f64);
    }

    /// The document.
    pub fn finish(self) -> String {
        self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_histogram_renders_cumulative_buckets_sum_and_count() {
        let h = Histogram::default();
        h.observe(Duration::from_micros(50));
        h.observe(Duration::from_millis(3));
        h.observe(Duration::from_secs(10));
        let mut e = Exposition::default();
        e.histogram("t_seconds", "test", &h);
        let text = e.finish();
        assert!(text.contains("# TYPE t_seconds histogram\n"), "{text}");
        assert!(
            text.contains("t_seconds_bucket{le=\"0.0001\"} 1\n"),
            "{text}"
        );
        assert!(
            text.contains("t_seconds_bucket{le=\"0.005\"} 2\n"),
            "{text}"
        );
        assert!(text.contains("t_seconds_bucket{le=\"2.5\"} 2\n"), "{text}");
        assert!(text.contains("t_seconds_bucket{le=\"+Inf\"} 3\n"), "{text}");
        assert!(text.contains("t_seconds_count 3\n"), "{text}");
        assert!(text.contains("t_seconds_sum 10.00305\n"), "{text}");
    }

    #[test]
    fn label_values_are_escaped_and_submissions_counted_by_type() {
        let m = Metrics::default();
        m.submitted(JobType::Ops);
        m.submitted(JobType::Ops);
        let mut e = Exposition::default();
        m.render(&mut e);
        e.sample("x", &[("route", "a\"b\\c")], 1.0);
        let text = e.finish();
        assert!(
            text.contains("shoal_jobs_submitted_total{type=\"ops\"} 2\n"),
            "{text}"
        );
        assert!(
            text.contains("shoal_jobs_submitted_total{type=\"batch\"} 0\n"),
            "{text}"
        );
        assert!(text.contains("x{route=\"a\\\"b\\\\c\"} 1\n"), "{text}");
    }

    #[test]
    fn ended_queries_count_their_nodes_by_outcome_and_their_time() {
        let m = Metrics::default();
        let coverage = Coverage {
            targeted: 5,
            answered: 3,
            errored: 1,
            unreachable: 1,
            ..Coverage::default()
        };
        m.query_done(&coverage, Duration::from_secs(4));
        m.query_done(&coverage, Duration::from_millis(20));
        let mut e = Exposition::default();
        m.render(&mut e);
        let text = e.finish();
        for line in [
            "shoal_queries_total 2\n",
            "shoal_query_nodes_total{outcome=\"answered\"} 6\n",
            "shoal_query_nodes_total{outcome=\"errored\"} 2\n",
            "shoal_query_nodes_total{outcome=\"unreachable\"} 2\n",
            "shoal_query_fanout_seconds_bucket{le=\"0.025\"} 1\n",
            "shoal_query_fanout_seconds_bucket{le=\"10\"} 2\n",
            "shoal_query_fanout_seconds_count 2\n",
        ] {
            assert!(text.contains(line), "{line} in {text}");
        }
    }
}
