//! `bench/RESULTS.md`: one fragment per scenario under `bench/results/`, assembled into one page.
//!
//! Each scenario rewrites only its own fragment, so a `--only S2` run keeps the other figures,
//! and scripts outside this runner (the Docker and S3 benchmarks) add fragments the same way.

use std::path::Path;

use anyhow::Context;

/// One scenario's results.
pub struct Section {
    /// File name stem and sort key, e.g. `s02-latency`.
    pub id: &'static str,
    /// Heading.
    pub title: String,
    /// Markdown body: what was measured, a table, and the ratio to the floor or peer.
    pub body: String,
}

/// The machine, for the record: cores, memory and CPU model.
pub fn machine() -> String {
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    let mem_gib = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|m| {
            m.lines()
                .find_map(|l| l.strip_prefix("MemTotal:"))
                .and_then(|v| v.split_whitespace().next()?.parse::<f64>().ok())
        })
        .map_or(0.0, |kb| kb / 1024.0 / 1024.0);
    let model = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|c| {
            c.lines()
                .find_map(|l| l.strip_prefix("model name"))
                .map(|v| v.trim_start_matches([' ', '\t', ':']).to_string())
        })
        .unwrap_or_else(|| std::env::consts::ARCH.to_string());
    format!("{cores} cores, {mem_gib:.0} GiB memory, {model}")
}

/// The current commit (short), or `unknown`.
pub fn commit() -> String {
    std::process::Command::new("git")
        .args(["rev-parse", "--short", "HEAD"])
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_else(|| "unknown".into())
}

/// Today's date and time (UTC), from the system clock.
pub fn now_utc() -> String {
    let out = std::process::Command::new("date")
        .args(["-u", "+%Y-%m-%d %H:%M UTC"])
        .output();
    out.ok()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_default()
}

/// Writes a scenario's fragment, stamped with machine, date, commit and mode.
pub fn write_fragment(dir: &Path, s: &Section, mode: &str, secs: f64) -> anyhow::Result<()> {
    std::fs::create_dir_all(dir)?;
    let profile = std::env::var("SHOAL_BENCH_PROFILE").unwrap_or_else(|_| "release".into());
    let text = format!(
        "## {}\n\n_{} · {} · commit {} · {profile} build · {mode} mode · ran {secs:.0} s_\n\n{}\n",
        s.title,
        now_utc(),
        machine(),
        commit(),
        s.body.trim_end()
    );
    let path = dir.join(format!("{}.md", s.id));
    std::fs::write(&path, text).with_context(|| format!("cannot write {}", path.display()))
}

/// Rebuilds `RESULTS.md` from every fragment in `dir`, in file-name order.
pub fn assemble(dir: &Path, out: &Path) -> anyhow::Result<()> {
    let mut names: Vec<_> = std::fs::read_dir(dir)
        .with_context(|| format!("cannot read {}", dir.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "md"))
        .collect();
    names.sort();
    let mut text = String::from(
        "# Benchmark results\n\n\
         Written by `bench/run.sh` (the `shoal-bench` runner); do not edit by hand. Each section\n\
         says when, on what machine and at which commit it was measured. Figures are medians with\n\
         their spread (p10–p90 unless stated); ratios compare Shoal with the machine's floor or a\n\
         peer measured in the same run.\n\n",
    );
    for p in names {
        text.push_str(&std::fs::read_to_string(&p)?);
        text.push('\n');
    }
    std::fs::write(out, text).with_context(|| format!("cannot write {}", out.display()))
}
