//! `--data-allow`, `--data-memory-limit`, `--data-timeout` and `--data-max-rows`: what a
//! compute node lets the `analytics` engine read (SQL over its Parquet, CSV and JSON files),
//! shared by `serve` and `devstack`.
//!
//! ```text
//! shoal serve --compute --data-allow /data/sales --data-memory-limit 512MiB
//! shoal devstack --data-allow '/data=/tmp/ddw/{region}'   # each node its own files
//! ```

use clap::Args;
use shoal_executors::ExecutorRegistry;

/// A compute node's data policy, as flags. Without `--data-allow` the node offers no
/// `analytics` engine, and queries naming it say so for each node.
#[derive(Args, Clone, Debug)]
pub struct AnalyticsFlags {
    /// Compute node: let analytics queries (`shoal query --engine analytics`) read the files
    /// under DIR, read-only (repeatable). NAME=DIR shows DIR to queries as NAME, e.g.
    /// /data=/srv/shards/eu; in devstack, {region} and {node} in DIR become each node's
    /// region label and index. Off by default.
    #[arg(long = "data-allow", value_name = "DIR")]
    pub data_allow: Vec<String>,
    /// Compute node: memory one analytics query's aggregates, sorts and joins may hold, e.g.
    /// 256MiB; past it the query fails with a clear error (nothing spills to disk).
    #[arg(
        long = "data-memory-limit",
        value_name = "BYTES",
        default_value = "256MiB"
    )]
    pub data_memory_limit: String,
    /// Compute node: longest an analytics query may run, e.g. 60s (a query may ask for less).
    #[arg(long = "data-timeout", value_name = "DURATION", default_value = "60s")]
    pub data_timeout: String,
    /// Compute node: most rows an analytics answer may have (a query may ask for fewer).
    #[arg(long = "data-max-rows", value_name = "N", default_value_t = 100_000)]
    pub data_max_rows: usize,
    /// Compute node: largest file an analytics job with `Format: parquet` may write to its
    /// results, e.g. 1GiB; past it the job fails and leaves no partial file.
    #[arg(long = "data-max-file", value_name = "BYTES", default_value = "1GiB")]
    pub data_max_file: String,
}

impl Default for AnalyticsFlags {
    fn default() -> Self {
        AnalyticsFlags {
            data_allow: vec![],
            data_memory_limit: "256MiB".into(),
            data_timeout: "60s".into(),
            data_max_rows: 100_000,
            data_max_file: "1GiB".into(),
        }
    }
}

/// The policy the flags describe.
#[cfg(feature = "analytics")]
pub type NodeDataPolicy = shoal_executors::analytics::DataPolicy;
/// Without the `analytics` engine in the build there is nothing to configure.
#[cfg(not(feature = "analytics"))]
pub type NodeDataPolicy = ();

impl AnalyticsFlags {
    /// Reads the flags into a node's policy, with `{region}` and `{node}` in directories
    /// replaced; errors name the flag and the bad value.
    #[cfg(feature = "analytics")]
    pub fn policy(&self, region: &str, node: &str) -> anyhow::Result<NodeDataPolicy> {
        use shoal_executors::analytics::{DataDir, DataPolicy};
        let memory_limit = shoal_types::resources::parse_byte_size(&self.data_memory_limit)
            .filter(|b| *b > 0)
            .ok_or_else(|| {
                anyhow::anyhow!(
                    "--data-memory-limit {:?} is not a size in bytes; write it like 256MiB",
                    self.data_memory_limit
                )
            })?;
        let timeout = humantime::parse_duration(&self.data_timeout)
            .ok()
            .filter(|d| !d.is_zero())
            .ok_or_else(|| {
                anyhow::anyhow!(
                    "--data-timeout {:?} is not a duration; write it like 60s or 5m",
                    self.data_timeout
                )
            })?;
        anyhow::ensure!(self.data_max_rows > 0, "--data-max-rows must be at least 1");
        let max_file_bytes = shoal_types::resources::parse_byte_size(&self.data_max_file)
            .filter(|b| *b > 0)
            .ok_or_else(|| {
                anyhow::anyhow!(
                    "--data-max-file {:?} is not a size in bytes; write it like 1GiB or 200MiB",
                    self.data_max_file
                )
            })?;
        let allow = self
            .data_allow
            .iter()
            .map(|d| {
                let d = d.replace("{region}", region).replace("{node}", node);
                DataDir::parse(&d).map_err(|e| anyhow::anyhow!("--data-allow {e}"))
            })
            .collect::<anyhow::Result<_>>()?;
        Ok(DataPolicy {
            allow,
            memory_limit: usize::try_from(memory_limit).unwrap_or(usize::MAX),
            timeout,
            max_rows: self.data_max_rows,
            max_file_bytes,
            ..DataPolicy::default()
        })
    }

    /// Without the `analytics` engine in the build, `--data-allow` is an error.
    #[cfg(not(feature = "analytics"))]
    pub fn policy(&self, _region: &str, _node: &str) -> anyhow::Result<NodeDataPolicy> {
        anyhow::ensure!(
            self.data_allow.is_empty(),
            "--data-allow: this shoal was built without the analytics engine (cargo feature analytics)"
        );
        Ok(())
    }
}

/// Offers the `analytics` engine under `policy`, or marks it unavailable with the reason.
pub fn install(registry: &mut ExecutorRegistry, policy: &NodeDataPolicy) {
    #[cfg(feature = "analytics")]
    shoal_executors::analytics::install(registry, policy.clone());
    #[cfg(not(feature = "analytics"))]
    let _ = (registry, policy);
}

#[cfg(all(test, feature = "analytics"))]
mod tests {
    use clap::Parser;

    use super::*;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        data: AnalyticsFlags,
    }

    fn flags(args: &[&str]) -> AnalyticsFlags {
        Cli::try_parse_from(std::iter::once("t").chain(args.iter().copied()))
            .unwrap()
            .data
    }

    #[test]
    fn placeholders_become_each_nodes_region_and_index() {
        let p = flags(&["--data-allow", "/data=/tmp/ddw/{region}/{node}"])
            .policy("eu", "2")
            .unwrap();
        assert_eq!(p.allow[0].name, std::path::Path::new("/data"));
        assert_eq!(p.allow[0].real, std::path::Path::new("/tmp/ddw/eu/2"));
        assert_eq!(p.memory_limit, 256 << 20);
        assert_eq!(p.max_file_bytes, 1 << 30);
        let p = flags(&["--data-max-file", "200MiB"])
            .policy("eu", "0")
            .unwrap();
        assert_eq!(p.max_file_bytes, 200 << 20);
    }

    #[test]
    fn bad_values_name_the_flag() {
        for (args, flag) in [
            (vec!["--data-allow", "rel/dir"], "--data-allow"),
            (vec!["--data-memory-limit", "lots"], "--data-memory-limit"),
            (vec!["--data-timeout", "soon"], "--data-timeout"),
            (vec!["--data-max-rows", "0"], "--data-max-rows"),
            (vec!["--data-max-file", "big"], "--data-max-file"),
            (vec!["--data-max-file", "0"], "--data-max-file"),
        ] {
            let err = flags(&args).policy("eu", "0").unwrap_err().to_string();
            assert!(err.starts_with(flag), "{args:?}: {err}");
        }
    }
}
