//! `block_devices`: one row per block device the kernel lists in `/sys/class/block` (disks
//! and their partitions, loop and ram devices), as osquery's Linux table reports them.
//!
//! `size` is in 512-byte sectors (the kernel's `size` attribute), `block_size` the logical
//! block size. Filesystem `uuid`, `type` and `label` come from the udev database
//! (`/run/udev/data/b<major>:<minor>`) where udev runs, else from the `/dev/disk/by-uuid`
//! and `/dev/disk/by-label` links, else from the mount table (type only); they are empty
//! when none of these knows the device. osquery reads them with libblkid, which probes the
//! device itself and needs root; this table never opens a device.

use std::collections::BTreeMap;
use std::path::Path;

use crate::hostfs;
use crate::table::{Column, HostTable, Row, ScanContext, TableError};

/// osquery's `block_devices` table.
pub struct BlockDevices;

const SYS_BLOCK: &str = "/sys/class/block";

impl HostTable for BlockDevices {
    const NAME: &'static str = "block_devices";
    const COLUMNS: &'static [Column] = &[
        Column::text("name").index(),
        Column::text("parent"),
        Column::text("vendor"),
        Column::text("model"),
        Column::text("serial"),
        Column::bigint("size"),
        Column::integer("block_size"),
        Column::text("uuid"),
        Column::text("type"),
        Column::text("label"),
    ];

    fn rows(&self, cx: &mut ScanContext<'_>) -> Result<Vec<Row>, TableError> {
        let entries = std::fs::read_dir(SYS_BLOCK).map_err(|e| {
            TableError::Source(format!("cannot list {SYS_BLOCK}: {e}; is /sys mounted?"))
        })?;
        let mut names: Vec<String> = entries
            .filter_map(Result::ok)
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        let wanted = cx.constraints.texts("name");
        let links = DiskLinks::read();
        let mount_types = mount_types();
        let mut rows = Vec::new();
        for name in names {
            cx.check_deadline()?;
            let dev = format!("/dev/{name}");
            if wanted.as_ref().is_some_and(|w| !w.contains(&dev)) {
                continue;
            }
            let sys = Path::new(SYS_BLOCK).join(&name);
            let parent = parent_of(&sys);
            // Partitions have no queue/ or device/ of their own: ask the disk.
            let disk = parent
                .as_ref()
                .map(|p| Path::new(SYS_BLOCK).join(p))
                .unwrap_or_else(|| sys.clone());
            let attr = |rel: &str| hostfs::read_trimmed(disk.join(rel)).unwrap_or_default();
            let serial = match attr("device/serial") {
                s if s.is_empty() => attr("serial"),
                s => s,
            };
            let size: i64 = hostfs::read_trimmed(sys.join("size"))
                .and_then(|s| s.parse().ok())
                .unwrap_or(0);
            let block_size: i64 = attr("queue/logical_block_size").parse().unwrap_or(0);
            let udev = hostfs::read_trimmed(sys.join("dev"))
                .and_then(|mm| hostfs::read(format!("/run/udev/data/b{mm}")))
                .map(|t| udev_properties(&t))
                .unwrap_or_default();
            let prop = |k: &str| udev.get(k).cloned();
            let uuid = prop("ID_FS_UUID").or_else(|| links.uuid.get(&name).cloned());
            let label = prop("ID_FS_LABEL").or_else(|| links.label.get(&name).cloned());
            let fs_type = prop("ID_FS_TYPE").or_else(|| mount_types.get(&dev).cloned());
            rows.push(vec![
                dev.into(),
                parent
                    .map(|p| format!("/dev/{p}"))
                    .unwrap_or_default()
                    .into(),
                attr("device/vendor").into(),
                attr("device/model").into(),
                serial.into(),
                size.into(),
                block_size.into(),
                uuid.unwrap_or_default().into(),
                fs_type.unwrap_or_default().into(),
                label.unwrap_or_default().into(),
            ]);
        }
        Ok(rows)
    }
}

/// The disk a partition belongs to: the kernel marks partitions with a `partition` file and
/// places them under their disk's directory.
fn parent_of(sys: &Path) -> Option<String> {
    if !sys.join("partition").exists() {
        return None;
    }
    let real = std::fs::canonicalize(sys).ok()?;
    real.parent()?
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
}

/// `E:KEY=value` lines of a udev database entry.
fn udev_properties(text: &str) -> BTreeMap<String, String> {
    text.lines()
        .filter_map(|l| l.strip_prefix("E:"))
        .filter_map(|kv| kv.split_once('='))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

/// Device name (`sda1`) to filesystem uuid and label, from udev's `/dev/disk` links.
#[derive(Default)]
struct DiskLinks {
    uuid: BTreeMap<String, String>,
    label: BTreeMap<String, String>,
}

impl DiskLinks {
    fn read() -> Self {
        DiskLinks {
            uuid: links("/dev/disk/by-uuid"),
            label: links("/dev/disk/by-label"),
        }
    }
}

fn links(dir: &str) -> BTreeMap<String, String> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return BTreeMap::new();
    };
    entries
        .filter_map(Result::ok)
        .filter_map(|e| {
            let target = std::fs::canonicalize(e.path()).ok()?;
            let dev = target.file_name()?.to_string_lossy().into_owned();
            Some((dev, unescape_udev(&e.file_name().to_string_lossy())))
        })
        .collect()
}

/// udev escapes unsafe bytes in link names as `\xNN`.
fn unescape_udev(name: &str) -> String {
    let mut out = Vec::with_capacity(name.len());
    let b = name.as_bytes();
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\'
            && b.get(i + 1) == Some(&b'x')
            && let Some(v) = name
                .get(i + 2..i + 4)
                .and_then(|h| u8::from_str_radix(h, 16).ok())
        {
            out.push(v);
            i += 4;
            continue;
        }
        out.push(b[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Device path to filesystem type, from the mount table.
fn mount_types() -> BTreeMap<String, String> {
    hostfs::read("/proc/mounts")
        .unwrap_or_default()
        .lines()
        .filter_map(|l| {
            let mut f = l.split_whitespace();
            let dev = f.next()?;
            f.next()?;
            let ty = f.next()?;
            dev.starts_with("/dev/")
                .then(|| (dev.to_string(), ty.to_string()))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn udev_entries_yield_their_properties() {
        let p = udev_properties("S:disk/by-uuid/x\nE:ID_FS_TYPE=ext4\nE:ID_FS_UUID=ab-cd\n");
        assert_eq!(p.get("ID_FS_TYPE").map(String::as_str), Some("ext4"));
        assert_eq!(p.get("ID_FS_UUID").map(String::as_str), Some("ab-cd"));
        assert_eq!(p.len(), 2);
    }

    #[test]
    fn udev_link_names_are_unescaped() {
        assert_eq!(unescape_udev("my\\x20disk"), "my disk");
        assert_eq!(unescape_udev("plain\\x"), "plain\\x");
    }
}
