//! `systemd_units`: one row per systemd unit.
//!
//! Where systemd runs (`/run/systemd/system` exists), the live state comes from one
//! `systemctl list-units --all` call: load, active and sub state as systemd reports them, as
//! osquery's D-Bus reader does. Unit files that systemd has not loaded are listed too.
//!
//! Where systemd does not run (most containers), the table still lists every unit file found
//! in `/etc/systemd/system`, `/run/systemd/system`, `/lib/systemd/system` and
//! `/usr/lib/systemd/system` (first one wins, as systemd resolves them): `load_state` is
//! `loaded` or `masked`, `active_state` and `sub_state` are `unknown`, and a warning says
//! why. The hidden column `unit_file_state` (`enabled`, `disabled`, `static`, `masked`)
//! answers "is it enabled" in both cases, from the `*.wants`/`*.requires` links.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use crate::hostfs;
use crate::table::{Column, HostTable, Row, ScanContext, TableError};

/// osquery's `systemd_units` table.
pub struct SystemdUnits;

/// Unit directories in systemd's precedence order.
const UNIT_DIRS: &[&str] = &[
    "/etc/systemd/system",
    "/run/systemd/system",
    "/lib/systemd/system",
    "/usr/lib/systemd/system",
];

const UNIT_SUFFIXES: &[&str] = &[
    "service",
    "socket",
    "target",
    "timer",
    "mount",
    "automount",
    "path",
    "slice",
    "scope",
    "swap",
    "device",
];

impl HostTable for SystemdUnits {
    const NAME: &'static str = "systemd_units";
    const COLUMNS: &'static [Column] = &[
        Column::text("id").index(),
        Column::text("description"),
        Column::text("load_state"),
        Column::text("active_state"),
        Column::text("sub_state"),
        Column::text("following"),
        Column::text("object_path"),
        Column::bigint("job_id"),
        Column::text("job_type"),
        Column::text("job_path"),
        Column::text("fragment_path"),
        Column::text("user"),
        Column::text("source_path"),
        Column::text("unit_file_state").hidden(),
    ];

    fn rows(&self, cx: &mut ScanContext<'_>) -> Result<Vec<Row>, TableError> {
        let files = unit_files(UNIT_DIRS);
        let enabled = enabled_units(UNIT_DIRS);
        let live = if Path::new("/run/systemd/system").is_dir() {
            live_units()
        } else {
            None
        };
        if live.is_none() {
            cx.warn(
                "systemd is not running on this host: systemd_units lists unit files only, with active_state 'unknown'",
            );
        }
        let mut ids: BTreeSet<String> = files.keys().cloned().collect();
        if let Some(live) = &live {
            ids.extend(live.keys().cloned());
        }
        let wanted = cx.constraints.texts("id");
        let mut rows = Vec::new();
        for id in ids {
            cx.check_deadline()?;
            if wanted.as_ref().is_some_and(|w| !w.contains(&id)) {
                continue;
            }
            let file = files.get(&id);
            let masked = file.is_some_and(|f| f.masked);
            let state = live.as_ref().and_then(|l| l.get(&id));
            let description = state
                .map(|s| s.description.clone())
                .filter(|d| !d.is_empty())
                .or_else(|| file.and_then(|f| f.description.clone()))
                .unwrap_or_default();
            let (load, active, sub) = match (state, &live) {
                (Some(s), _) => (s.load.clone(), s.active.clone(), s.sub.clone()),
                (None, Some(_)) => (
                    if masked { "masked" } else { "loaded" }.to_string(),
                    "inactive".to_string(),
                    "dead".to_string(),
                ),
                (None, None) => (
                    if masked { "masked" } else { "loaded" }.to_string(),
                    "unknown".to_string(),
                    "unknown".to_string(),
                ),
            };
            let file_state = match file {
                Some(f) if f.masked => "masked",
                Some(_) if enabled.contains(&id) => "enabled",
                Some(f) if !f.installable => "static",
                Some(_) => "disabled",
                None => "",
            };
            let fragment = file
                .filter(|f| !f.masked)
                .map(|f| f.path.to_string_lossy().into_owned())
                .unwrap_or_default();
            let user = file.and_then(|f| f.user.clone()).unwrap_or_default();
            rows.push(vec![
                id.clone().into(),
                description.into(),
                load.into(),
                active.into(),
                sub.into(),
                "".into(),
                format!("/org/freedesktop/systemd1/unit/{}", bus_escape(&id)).into(),
                0i64.into(),
                "".into(),
                "/".into(),
                fragment.into(),
                user.into(),
                "".into(),
                file_state.into(),
            ]);
        }
        Ok(rows)
    }
}

/// What a unit file says about itself.
#[derive(Debug, Clone, PartialEq)]
struct UnitFile {
    path: PathBuf,
    description: Option<String>,
    user: Option<String>,
    /// Has an `[Install]` section, so it can be enabled.
    installable: bool,
    /// Linked to `/dev/null`.
    masked: bool,
}

fn is_unit_name(name: &str) -> bool {
    name.rsplit_once('.')
        .is_some_and(|(stem, suffix)| !stem.is_empty() && UNIT_SUFFIXES.contains(&suffix))
}

/// Unit name to file, the first directory that has it winning.
fn unit_files(dirs: &[&str]) -> BTreeMap<String, UnitFile> {
    let mut out = BTreeMap::new();
    for dir in dirs {
        let Ok(entries) = std::fs::read_dir(dir) else {
            continue;
        };
        for entry in entries.filter_map(Result::ok) {
            let name = entry.file_name().to_string_lossy().into_owned();
            if !is_unit_name(&name) || out.contains_key(&name) {
                continue;
            }
            let path = entry.path();
            let masked = std::fs::read_link(&path).is_ok_and(|t| t == Path::new("/dev/null"));
            if !masked && !path.is_file() {
                continue;
            }
            let text = if masked {
                String::new()
            } else {
                hostfs::read(&path).unwrap_or_default()
            };
            let mut file = parse_unit(&text);
            file.path = path;
            file.masked = masked;
            out.insert(name, file);
        }
    }
    out
}

fn parse_unit(text: &str) -> UnitFile {
    let mut section = String::new();
    let mut file = UnitFile {
        path: PathBuf::new(),
        description: None,
        user: None,
        installable: false,
        masked: false,
    };
    for line in text.lines().map(str::trim) {
        if line.starts_with('#') || line.starts_with(';') || line.is_empty() {
            continue;
        }
        if let Some(s) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
            section = s.to_string();
            if section == "Install" {
                file.installable = true;
            }
            continue;
        }
        let Some((k, v)) = line.split_once('=') else {
            continue;
        };
        match (section.as_str(), k.trim()) {
            ("Unit", "Description") => file.description = Some(v.trim().to_string()),
            ("Service", "User") => file.user = Some(v.trim().to_string()),
            _ => {}
        }
    }
    file
}

/// Units linked from a `*.wants` or `*.requires` directory: what `systemctl enable` made.
fn enabled_units(dirs: &[&str]) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    for dir in dirs {
        let Ok(entries) = std::fs::read_dir(dir) else {
            continue;
        };
        for entry in entries.filter_map(Result::ok) {
            let name = entry.file_name().to_string_lossy().into_owned();
            if !(name.ends_with(".wants") || name.ends_with(".requires")) {
                continue;
            }
            if let Ok(links) = std::fs::read_dir(entry.path()) {
                out.extend(
                    links
                        .filter_map(Result::ok)
                        .map(|l| l.file_name().to_string_lossy().into_owned())
                        .filter(|n| is_unit_name(n)),
                );
            }
        }
    }
    out
}

/// Live state of one unit, as systemd reports it.
#[derive(Debug, Clone, PartialEq)]
struct LiveUnit {
    load: String,
    active: String,
    sub: String,
    description: String,
}

/// Every unit systemd has loaded, from one `systemctl` call; `None` if it cannot be asked.
fn live_units() -> Option<BTreeMap<String, LiveUnit>> {
    let out = std::process::Command::new("systemctl")
        .args([
            "list-units",
            "--all",
            "--full",
            "--plain",
            "--no-legend",
            "--no-pager",
        ])
        .stdin(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .output()
        .ok()?;
    if !out.status.success() {
        return None;
    }
    Some(parse_list_units(&String::from_utf8_lossy(&out.stdout)))
}

fn parse_list_units(text: &str) -> BTreeMap<String, LiveUnit> {
    text.lines()
        .filter_map(|line| {
            // A leading marker (`●`) flags failed units in some versions.
            let line = line.trim_start_matches(|c: char| !c.is_ascii_alphanumeric());
            let mut f = line.split_whitespace();
            let id = f.next()?.to_string();
            let unit = LiveUnit {
                load: f.next()?.to_string(),
                active: f.next()?.to_string(),
                sub: f.next()?.to_string(),
                description: f.collect::<Vec<_>>().join(" "),
            };
            Some((id, unit))
        })
        .collect()
}

/// systemd's D-Bus object path escaping: bytes other than `[A-Za-z0-9]` become `_xx`.
fn bus_escape(name: &str) -> String {
    name.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() {
                (b as char).to_string()
            } else {
                format!("_{b:02x}")
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unit_files_give_description_user_and_installability() {
        let f = parse_unit(
            "[Unit]\nDescription=Demo daemon\n# c\n[Service]\nUser=demo\nExecStart=/bin/true\n[Install]\nWantedBy=multi-user.target\n",
        );
        assert_eq!(f.description.as_deref(), Some("Demo daemon"));
        assert_eq!(f.user.as_deref(), Some("demo"));
        assert!(f.installable);
        assert!(!parse_unit("[Unit]\nDescription=x\n").installable);
    }

    #[test]
    fn list_units_lines_are_split_into_states() {
        let units = parse_list_units(
            "ssh.service loaded active running OpenBSD Secure Shell server\n● bad.service not-found inactive dead bad.service\n",
        );
        assert_eq!(units["ssh.service"].active, "active");
        assert_eq!(units["ssh.service"].sub, "running");
        assert_eq!(
            units["ssh.service"].description,
            "OpenBSD Secure Shell server"
        );
        assert_eq!(units["bad.service"].load, "not-found");
    }

    #[test]
    fn directories_resolve_first_wins_masks_and_enablement() {
        let etc = tempfile::tempdir().unwrap();
        let lib = tempfile::tempdir().unwrap();
        std::fs::write(
            lib.path().join("a.service"),
            "[Unit]\nDescription=vendor a\n[Install]\nWantedBy=multi-user.target\n",
        )
        .unwrap();
        std::fs::write(
            etc.path().join("a.service"),
            "[Unit]\nDescription=local a\n",
        )
        .unwrap();
        std::fs::write(
            lib.path().join("b.service"),
            "[Unit]\nDescription=b\n[Install]\nWantedBy=multi-user.target\n",
        )
        .unwrap();
        std::os::unix::fs::symlink("/dev/null", etc.path().join("c.service")).unwrap();
        std::fs::create_dir(etc.path().join("multi-user.target.wants")).unwrap();
        std::os::unix::fs::symlink(
            lib.path().join("b.service"),
            etc.path().join("multi-user.target.wants/b.service"),
        )
        .unwrap();
        let dirs = [etc.path().to_str().unwrap(), lib.path().to_str().unwrap()];
        let files = unit_files(&dirs);
        assert_eq!(files["a.service"].description.as_deref(), Some("local a"));
        assert!(files["c.service"].masked);
        assert_eq!(files.len(), 3);
        let enabled = enabled_units(&dirs);
        assert!(enabled.contains("b.service") && !enabled.contains("a.service"));
    }

    #[test]
    fn object_paths_escape_like_systemd() {
        assert_eq!(bus_escape("ssh.service"), "ssh_2eservice");
    }
}
