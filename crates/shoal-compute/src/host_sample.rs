//! The host sample an agent puts on each heartbeat (see `shoal_types::fleet`): CPU, memory,
//! disk, load and temperature, read from `/proc`, `/sys` and `statvfs(2)`.
//!
//! Every reading is a handful of small in-memory files, so sampling runs inline before each
//! heartbeat. A file that cannot be read leaves its field at 0 (or the temperature `None`):
//! a host without sensors, or an agent in a container that hides part of `/proc`, still
//! heartbeats. The roots are settings ([`HostRoots`]) so that an agent in a container can read
//! the host's own `/proc` and `/sys` mounted elsewhere (as node_exporter's `--path.procfs`),
//! and so that tests can point them at a tree they wrote.

use std::path::{Path, PathBuf};

use shoal_types::HostSample;
use shoal_types::time::UnixNanos;

/// Where the host's `/proc` and `/sys` are.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostRoots {
    /// The host's procfs (`/proc`).
    pub proc: PathBuf,
    /// The host's sysfs (`/sys`).
    pub sys: PathBuf,
}

impl Default for HostRoots {
    fn default() -> Self {
        HostRoots {
            proc: "/proc".into(),
            sys: "/sys".into(),
        }
    }
}

/// Readings below or above these are not a real sensor (thermal zones of some boards read 0 or
/// -273 °C when absent, others a garbage maximum).
const PLAUSIBLE_CELSIUS: std::ops::RangeInclusive<f64> = -40.0..=200.0;

/// Takes samples of one host; keeps the previous CPU counters so that each sample's CPU
/// percent covers the time since the one before.
#[derive(Debug)]
pub(crate) struct HostSampler {
    roots: HostRoots,
    /// The filesystem whose use is reported (the agent's data dir).
    data_dir: PathBuf,
    /// Temperature inputs found at start (sensors do not come and go while a host runs).
    sensors: Vec<PathBuf>,
    /// The CPU counters of the last sample that saw the clock tick, and its figure.
    last_cpu: Option<(CpuTimes, f64)>,
}

impl HostSampler {
    /// A sampler of the host under `roots`, reporting the disk of `data_dir`'s filesystem.
    pub fn new(roots: HostRoots, data_dir: &Path) -> Self {
        let sensors = temperature_inputs(&roots.sys);
        HostSampler {
            roots,
            data_dir: data_dir.to_path_buf(),
            sensors,
            last_cpu: None,
        }
    }

    /// Reads the host now; `now` is stamped as the sample's time.
    pub fn sample(&mut self, now: UnixNanos) -> HostSample {
        let cpu = read(&self.roots.proc.join("stat")).and_then(|s| CpuTimes::parse(&s));
        let cpu_percent = match (cpu, self.last_cpu) {
            // Sampled again before the kernel's clock ticked: nothing new to say.
            (Some(now), Some((before, percent))) if now.total <= before.total => percent,
            (Some(now), before) => {
                let since = before.map(|(b, _)| b).unwrap_or_default();
                let percent = now.busy_percent_since(&since);
                self.last_cpu = Some((now, percent));
                percent
            }
            (None, _) => 0.0,
        };
        let (memory_used, memory_total) = read(&self.roots.proc.join("meminfo"))
            .map(|m| memory(&m))
            .unwrap_or_default();
        let [load1, load5, load15] = read(&self.roots.proc.join("loadavg"))
            .and_then(|l| loadavg(&l))
            .unwrap_or_default();
        let disk = crate::capacity::disk_space(&self.data_dir).unwrap_or_default();
        HostSample {
            sampled_at: now,
            cpu_percent,
            memory_used,
            memory_total,
            disk_used: disk.total.saturating_sub(disk.free),
            disk_total: disk.total,
            load1,
            load5,
            load15,
            temperature_c: hottest(&self.sensors),
        }
    }
}

fn read(path: &Path) -> Option<String> {
    std::fs::read_to_string(path).ok()
}

/// The aggregate `cpu` line of `/proc/stat`, in clock ticks.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
struct CpuTimes {
    /// Ticks spent idle or waiting for IO.
    idle: u64,
    /// All ticks.
    total: u64,
}

impl CpuTimes {
    /// `cpu  user nice system idle iowait irq softirq steal guest guest_nice`. Guest time is
    /// already counted in user and nice, so it is left out of the total.
    fn parse(stat: &str) -> Option<CpuTimes> {
        let line = stat.lines().find(|l| l.starts_with("cpu "))?;
        let ticks: Vec<u64> = line
            .split_whitespace()
            .skip(1)
            .take(8)
            .map(|v| v.parse().ok())
            .collect::<Option<_>>()?;
        if ticks.len() < 4 {
            return None;
        }
        let idle = ticks[3] + ticks.get(4).copied().unwrap_or(0);
        Some(CpuTimes {
            idle,
            total: ticks.iter().sum(),
        })
    }

    /// Busy percent between `before` and these counters (0 when no tick passed, or idle time
    /// went further than the total, as the counters of some kernels do after a suspend).
    fn busy_percent_since(&self, before: &CpuTimes) -> f64 {
        let total = self.total.saturating_sub(before.total);
        let idle = self.idle.saturating_sub(before.idle);
        if total == 0 || idle > total {
            return 0.0;
        }
        (total - idle) as f64 * 100.0 / total as f64
    }
}

/// Used and total bytes from `/proc/meminfo`: used is `MemTotal - MemAvailable` (kernels before
/// 3.14 lack `MemAvailable`: then free, buffers and page cache count as available).
fn memory(meminfo: &str) -> (u64, u64) {
    let kb = |key: &str| {
        meminfo
            .lines()
            .find_map(|l| l.strip_prefix(key)?.strip_prefix(':'))
            .and_then(|rest| rest.split_whitespace().next()?.parse::<u64>().ok())
    };
    let Some(total) = kb("MemTotal") else {
        return (0, 0);
    };
    let available = kb("MemAvailable").unwrap_or_else(|| {
        kb("MemFree").unwrap_or(0) + kb("Buffers").unwrap_or(0) + kb("Cached").unwrap_or(0)
    });
    (total.saturating_sub(available) * 1024, total * 1024)
}

/// The three load averages of `/proc/loadavg` (`0.52 0.58 0.59 1/467 12345`).
fn loadavg(text: &str) -> Option<[f64; 3]> {
    let mut it = text.split_whitespace().map(|v| v.parse::<f64>().ok());
    Some([it.next()??, it.next()??, it.next()??])
}

/// Every temperature input under `sys`: thermal zones (`class/thermal/thermal_zone*/temp`)
/// and hwmon chips (`class/hwmon/hwmon*/temp*_input`), both in millidegrees Celsius.
fn temperature_inputs(sys: &Path) -> Vec<PathBuf> {
    let entries = |dir: PathBuf| -> Vec<PathBuf> {
        let mut found: Vec<PathBuf> = std::fs::read_dir(dir)
            .map(|d| d.filter_map(|e| e.ok().map(|e| e.path())).collect())
            .unwrap_or_default();
        found.sort();
        found
    };
    let named = |p: &Path, prefix: &str| {
        p.file_name()
            .and_then(|n| n.to_str())
            .is_some_and(|n| n.starts_with(prefix))
    };
    let mut inputs = Vec::new();
    for zone in entries(sys.join("class/thermal")) {
        if named(&zone, "thermal_zone") {
            inputs.push(zone.join("temp"));
        }
    }
    for chip in entries(sys.join("class/hwmon")) {
        for file in entries(chip) {
            let name = file.file_name().and_then(|n| n.to_str()).unwrap_or("");
            if name.starts_with("temp") && name.ends_with("_input") {
                inputs.push(file);
            }
        }
    }
    inputs
}

/// The highest plausible reading of `inputs`, in °C.
fn hottest(inputs: &[PathBuf]) -> Option<f64> {
    inputs
        .iter()
        .filter_map(|p| read(p)?.trim().parse::<f64>().ok())
        .map(|milli| milli / 1000.0)
        .filter(|c| PLAUSIBLE_CELSIUS.contains(c))
        .reduce(f64::max)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A fake host: `/proc` and `/sys` under a temporary dir, written by the test.
    struct FakeHost {
        dir: tempfile::TempDir,
    }

    impl FakeHost {
        fn new() -> FakeHost {
            FakeHost {
                dir: tempfile::tempdir().unwrap(),
            }
        }

        fn write(&self, path: &str, text: &str) {
            let p = self.dir.path().join(path);
            std::fs::create_dir_all(p.parent().unwrap()).unwrap();
            std::fs::write(p, text).unwrap();
        }

        fn roots(&self) -> HostRoots {
            HostRoots {
                proc: self.dir.path().join("proc"),
                sys: self.dir.path().join("sys"),
            }
        }

        fn sampler(&self) -> HostSampler {
            HostSampler::new(self.roots(), self.dir.path())
        }
    }

    const MEMINFO: &str = "MemTotal:       16000000 kB\nMemFree:         1000000 kB\nMemAvailable:   12000000 kB\nBuffers:          200000 kB\nCached:          3000000 kB\n";

    #[test]
    fn a_sample_reads_memory_load_disk_and_the_hottest_plausible_sensor() {
        let host = FakeHost::new();
        host.write("proc/meminfo", MEMINFO);
        host.write("proc/loadavg", "0.52 1.50 2.25 3/467 12345\n");
        host.write(
            "proc/stat",
            "cpu  100 0 100 800 0 0 0 0 0 0\ncpu0 1 2 3 4\n",
        );
        host.write("sys/class/thermal/thermal_zone0/temp", "41500\n");
        // An absent zone that reads -273 °C is no sensor.
        host.write("sys/class/thermal/thermal_zone1/temp", "-273000\n");
        host.write("sys/class/hwmon/hwmon0/temp1_input", "55250\n");
        host.write("sys/class/hwmon/hwmon0/temp1_max", "99000\n");
        host.write("sys/class/hwmon/hwmon1/temp2_input", "38000\n");
        let s = host.sampler().sample(7);
        assert_eq!(s.sampled_at, 7);
        assert_eq!(s.memory_total, 16_000_000 * 1024);
        assert_eq!(s.memory_used, 4_000_000 * 1024, "total minus available");
        assert_eq!([s.load1, s.load5, s.load15], [0.52, 1.5, 2.25]);
        assert_eq!(
            s.temperature_c,
            Some(55.25),
            "the hottest input, not a limit file (temp1_max) nor an absent zone"
        );
        assert!(s.disk_total > 0 && s.disk_used <= s.disk_total, "{s:?}");
    }

    #[test]
    fn cpu_percent_covers_the_time_since_the_previous_sample_and_the_first_since_boot() {
        let host = FakeHost::new();
        // Since boot: 200 busy ticks (user + system) of 1,000, iowait counted idle.
        host.write("proc/stat", "cpu  150 0 50 700 100 0 0 0 0 0\n");
        let mut sampler = host.sampler();
        assert_eq!(sampler.sample(1).cpu_percent, 20.0);
        // Then 300 busy of 400 more ticks; guest time (already in user) is not counted twice.
        host.write("proc/stat", "cpu  400 0 100 800 100 0 0 0 90 0\n");
        assert_eq!(sampler.sample(2).cpu_percent, 75.0);
        // Sampled again before a tick passed: the last figure stands (not 0, nor a division
        // by zero), and the next one covers the time since the last tick seen.
        assert_eq!(sampler.sample(3).cpu_percent, 75.0);
        host.write("proc/stat", "cpu  400 0 200 900 100 0 0 0 90 0\n");
        assert_eq!(sampler.sample(4).cpu_percent, 50.0);
    }

    #[test]
    fn a_host_without_sensors_or_proc_files_still_samples_with_empty_fields() {
        let host = FakeHost::new();
        let s = host.sampler().sample(1);
        assert_eq!(s.temperature_c, None);
        assert_eq!((s.cpu_percent, s.memory_total, s.load1), (0.0, 0, 0.0));
    }

    #[test]
    fn meminfo_without_memavailable_counts_page_cache_as_available() {
        let old = "MemTotal: 1000 kB\nMemFree: 100 kB\nBuffers: 50 kB\nCached: 250 kB\n";
        assert_eq!(memory(old), (600 * 1024, 1000 * 1024));
        assert_eq!(memory("garbage"), (0, 0));
    }

    #[test]
    fn the_real_host_samples_with_sane_values() {
        let dir = tempfile::tempdir().unwrap();
        let mut sampler = HostSampler::new(HostRoots::default(), dir.path());
        let s = sampler.sample(1);
        assert!((0.0..=100.0).contains(&s.cpu_percent), "{s:?}");
        assert!(
            s.memory_total > 0 && s.memory_used <= s.memory_total,
            "{s:?}"
        );
    }
}
