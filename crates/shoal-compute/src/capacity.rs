//! What this machine offers to jobs when no `capacity` is configured.

use std::path::Path;

use shoal_types::Resources;

/// Measures the machine: CPUs, total memory, the free space of the filesystem holding the
/// agent's data dir (where inputs and results are staged), and NVIDIA GPUs.
pub(crate) fn measure(data_dir: &Path) -> Resources {
    let cpu = std::thread::available_parallelism()
        .map(|n| n.get() as f64)
        .unwrap_or(1.0);
    let memory = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|m| {
            m.lines()
                .find(|l| l.starts_with("MemTotal:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|kb| kb.parse::<u64>().ok())
        })
        .map(|kb| kb * 1024)
        .unwrap_or(1 << 30);
    Resources {
        cpu,
        memory,
        disk: free_disk(data_dir).unwrap_or(100 << 30),
        gpu: nvidia_gpus(Path::new("/proc/driver/nvidia/gpus")),
    }
}

/// The size of a filesystem, in bytes.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct DiskSpace {
    /// Its size.
    pub total: u64,
    /// Not in use (blocks reserved for root included, as `df`'s "Used" leaves them out).
    pub free: u64,
    /// What unprivileged users may still write.
    pub available: u64,
}

/// The filesystem holding `dir` (or its nearest existing ancestor, since the data dir may not
/// exist yet).
pub(crate) fn disk_space(dir: &Path) -> Option<DiskSpace> {
    let existing = dir.ancestors().find(|p| p.exists())?;
    let c = std::ffi::CString::new(existing.as_os_str().as_encoded_bytes()).ok()?;
    let mut st: libc::statvfs = unsafe { std::mem::zeroed() };
    // SAFETY: `c` is a valid NUL-terminated path and `st` a valid out-pointer.
    let rc = unsafe { libc::statvfs(c.as_ptr(), &mut st) };
    let block = st.f_frsize as u64;
    (rc == 0).then(|| DiskSpace {
        total: st.f_blocks as u64 * block,
        free: st.f_bfree as u64 * block,
        available: st.f_bavail as u64 * block,
    })
}

/// Bytes available to unprivileged users on the filesystem of `dir`.
fn free_disk(dir: &Path) -> Option<u64> {
    disk_space(dir).map(|d| d.available)
}

/// NVIDIA GPUs the driver lists (one folder per GPU); 0 where there is no driver.
fn nvidia_gpus(dir: &Path) -> u64 {
    std::fs::read_dir(dir).map_or(0, |d| d.filter_map(Result::ok).count() as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn disk_is_the_free_space_of_the_data_dirs_filesystem() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("not/yet/created");
        let free = free_disk(&missing).expect("an ancestor exists");
        assert!(free > 0);
        // Other processes write meanwhile: the two readings agree within 1 GiB.
        assert!(measure(&missing).disk.abs_diff(free) < 1 << 30);
    }

    #[test]
    fn gpus_are_counted_from_the_driver_listing() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(nvidia_gpus(&dir.path().join("absent")), 0);
        for bus in ["0000:01:00.0", "0000:02:00.0"] {
            std::fs::create_dir(dir.path().join(bus)).unwrap();
        }
        assert_eq!(nvidia_gpus(dir.path()), 2);
    }
}
