//! Numeric resources and the parsing of the strings users write in specs.
//!
//! CPU accepts Kubernetes quantities (`500m`, `2`, `0.5`). Memory and disk accept both
//! Kubernetes binary suffixes (`Ki`, `Mi`, `Gi`, `Ti`) and humanized decimal units (`512mb`,
//! `1GB`, `36mb`), case-insensitively, as Bacalhau does (`1Gb` is 10^9 bytes, `1Gi` is 2^30).

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::job::ResourcesConfig;

/// Resources as numbers.
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct Resources {
    /// CPU cores.
    #[serde(rename = "CPU", default)]
    pub cpu: f64,
    /// Memory in bytes.
    #[serde(default)]
    pub memory: u64,
    /// Disk in bytes.
    #[serde(default)]
    pub disk: u64,
    /// GPU count.
    #[serde(rename = "GPU", default)]
    pub gpu: u64,
}

/// A resource string that could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: cannot read {value:?} as {what}; write it like {example}")]
pub struct ResourceError {
    /// Which field (`CPU`, `Memory`, `Disk`, `GPU`).
    pub field: &'static str,
    /// What the user wrote.
    pub value: String,
    what: &'static str,
    example: &'static str,
}

impl Resources {
    /// Parses the strings of a spec. Empty strings mean zero (the caller applies defaults).
    pub fn parse(cfg: &ResourcesConfig) -> Result<Resources, ResourceError> {
        Ok(Resources {
            cpu: parse_cpu(&cfg.cpu)?,
            memory: parse_bytes("Memory", &cfg.memory)?,
            disk: parse_bytes("Disk", &cfg.disk)?,
            gpu: parse_gpu(&cfg.gpu)?,
        })
    }

    /// Whether every dimension of `self` fits within `other`.
    pub fn fits_in(&self, other: &Resources) -> bool {
        self.cpu <= other.cpu + 1e-9
            && self.memory <= other.memory
            && self.disk <= other.disk
            && self.gpu <= other.gpu
    }

    /// The first dimension that does not fit, as (name, requested, available) in words.
    pub fn shortfall(&self, available: &Resources) -> Option<(&'static str, String, String)> {
        if self.cpu > available.cpu + 1e-9 {
            return Some(("cpu", format_cpu(self.cpu), format_cpu(available.cpu)));
        }
        if self.memory > available.memory {
            return Some((
                "memory",
                format_bytes(self.memory),
                format_bytes(available.memory),
            ));
        }
        if self.disk > available.disk {
            return Some((
                "disk",
                format_bytes(self.disk),
                format_bytes(available.disk),
            ));
        }
        if self.gpu > available.gpu {
            return Some(("gpu", self.gpu.to_string(), available.gpu.to_string()));
        }
        None
    }

    /// `self + other`, per dimension.
    pub fn add(&self, other: &Resources) -> Resources {
        Resources {
            cpu: self.cpu + other.cpu,
            memory: self.memory + other.memory,
            disk: self.disk + other.disk,
            gpu: self.gpu + other.gpu,
        }
    }

    /// `self - other`, per dimension, never below zero.
    pub fn saturating_sub(&self, other: &Resources) -> Resources {
        Resources {
            cpu: (self.cpu - other.cpu).max(0.0),
            memory: self.memory.saturating_sub(other.memory),
            disk: self.disk.saturating_sub(other.disk),
            gpu: self.gpu.saturating_sub(other.gpu),
        }
    }
}

impl fmt::Display for Resources {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "cpu {}, memory {}, disk {}, gpu {}",
            format_cpu(self.cpu),
            format_bytes(self.memory),
            format_bytes(self.disk),
            self.gpu
        )
    }
}

fn parse_cpu(s: &str) -> Result<f64, ResourceError> {
    let s = s.trim();
    if s.is_empty() {
        return Ok(0.0);
    }
    let err = || ResourceError {
        field: "CPU",
        value: s.to_string(),
        what: "a CPU amount",
        example: "500m, 0.5 or 2",
    };
    let v = match s.strip_suffix('m') {
        Some(milli) => milli.trim().parse::<f64>().map_err(|_| err())? / 1000.0,
        None => s.parse::<f64>().map_err(|_| err())?,
    };
    if v.is_finite() && v >= 0.0 {
        Ok(v)
    } else {
        Err(err())
    }
}

fn parse_gpu(s: &str) -> Result<u64, ResourceError> {
    let s = s.trim();
    if s.is_empty() {
        return Ok(0);
    }
    s.parse::<u64>().map_err(|_| ResourceError {
        field: "GPU",
        value: s.to_string(),
        what: "a whole number of GPUs",
        example: "1",
    })
}

/// Parses a byte quantity: `1Gi`, `512Mi`, `512mb`, `1GB`, `2048`, `1.5G`.
pub fn parse_byte_size(s: &str) -> Option<u64> {
    let compact: String = s.chars().filter(|c| !c.is_whitespace()).collect();
    let lower = compact.to_ascii_lowercase();
    if lower.is_empty() {
        return None;
    }
    let split = lower
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(lower.len());
    let (num, unit) = lower.split_at(split);
    let num: f64 = num.parse().ok()?;
    let mult: f64 = match unit {
        "" | "b" => 1.0,
        "k" | "kb" => 1e3,
        "m" | "mb" => 1e6,
        "g" | "gb" => 1e9,
        "t" | "tb" => 1e12,
        "p" | "pb" => 1e15,
        "ki" | "kib" => 1024.0,
        "mi" | "mib" => 1024.0 * 1024.0,
        "gi" | "gib" => 1024.0 * 1024.0 * 1024.0,
        "ti" | "tib" => 1024.0_f64.powi(4),
        "pi" | "pib" => 1024.0_f64.powi(5),
        _ => return None,
    };
    let bytes = num * mult;
    (bytes.is_finite() && bytes >= 0.0).then_some(bytes.round() as u64)
}

fn parse_bytes(field: &'static str, s: &str) -> Result<u64, ResourceError> {
    if s.trim().is_empty() {
        return Ok(0);
    }
    parse_byte_size(s).ok_or_else(|| ResourceError {
        field,
        value: s.to_string(),
        what: "a size in bytes",
        example: "512Mi, 1Gi, 512mb or 1GB",
    })
}

/// Formats cores for people: `500m` below one core, else `1.5`.
pub fn format_cpu(cores: f64) -> String {
    if cores < 1.0 && cores > 0.0 {
        format!("{}m", (cores * 1000.0).round() as u64)
    } else {
        let s = format!("{cores:.3}");
        s.trim_end_matches('0').trim_end_matches('.').to_string()
    }
}

/// Formats bytes for people with binary units (`64 MiB`).
pub fn format_bytes(bytes: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = bytes as f64;
    let mut unit = 0;
    while v >= 1024.0 && unit < UNITS.len() - 1 {
        v /= 1024.0;
        unit += 1;
    }
    if unit == 0 || (v - v.round()).abs() < 0.05 {
        format!("{} {}", v.round() as u64, UNITS[unit])
    } else {
        format!("{v:.1} {}", UNITS[unit])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_reads_millicores_and_decimals() {
        assert_eq!(parse_cpu("500m").unwrap(), 0.5);
        assert_eq!(parse_cpu("0.001").unwrap(), 0.001);
        assert_eq!(parse_cpu("6000m").unwrap(), 6.0);
        assert!(parse_cpu("lots").is_err());
    }

    #[test]
    fn memory_reads_kubernetes_and_humanized_units() {
        assert_eq!(parse_byte_size("1Gi"), Some(1 << 30));
        assert_eq!(parse_byte_size("1Gb"), Some(1_000_000_000));
        assert_eq!(parse_byte_size("1GB"), Some(1_000_000_000));
        assert_eq!(parse_byte_size("36mb"), Some(36_000_000));
        assert_eq!(parse_byte_size("2048Mi"), Some(2048 << 20));
        assert_eq!(parse_byte_size("512 Mb"), Some(512_000_000));
        assert_eq!(parse_byte_size("12 parsecs"), None);
    }

    #[test]
    fn shortfall_names_the_dimension_with_both_numbers() {
        let want = Resources {
            cpu: 0.5,
            memory: 2 << 30,
            ..Default::default()
        };
        let free = Resources {
            cpu: 4.0,
            memory: 1 << 30,
            disk: 0,
            gpu: 0,
        };
        assert_eq!(
            want.shortfall(&free),
            Some(("memory", "2 GiB".into(), "1 GiB".into()))
        );
    }

    #[test]
    fn parse_error_names_field_value_and_example() {
        let cfg = ResourcesConfig {
            memory: "lots".into(),
            ..Default::default()
        };
        let err = Resources::parse(&cfg).unwrap_err().to_string();
        assert_eq!(
            err,
            "Memory: cannot read \"lots\" as a size in bytes; write it like 512Mi, 1Gi, 512mb or 1GB"
        );
    }
}
