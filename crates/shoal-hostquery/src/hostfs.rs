//! Reading the small text files under `/proc`, `/sys` and `/etc` that most tables parse.
//! A file that cannot be read yields `None`: tables then leave the column empty, as
//! osquery does, rather than failing the whole query.

use std::path::Path;

/// The whole file as text (lossy UTF-8), if readable.
pub(crate) fn read(path: impl AsRef<Path>) -> Option<String> {
    std::fs::read(path)
        .ok()
        .map(|b| String::from_utf8_lossy(&b).into_owned())
}

/// The file's text with surrounding whitespace removed, if readable.
pub(crate) fn read_trimmed(path: impl AsRef<Path>) -> Option<String> {
    read(path).map(|s| s.trim().to_string())
}

/// `KEY=value` lines (`/etc/os-release` style), with surrounding double or single quotes
/// removed from values; comments and blank lines skipped.
pub(crate) fn key_values(text: &str) -> Vec<(String, String)> {
    text.lines()
        .filter_map(|line| {
            let line = line.trim();
            if line.starts_with('#') {
                return None;
            }
            let (k, v) = line.split_once('=')?;
            let v = v.trim();
            let v = v
                .strip_prefix('"')
                .and_then(|v| v.strip_suffix('"'))
                .or_else(|| v.strip_prefix('\'').and_then(|v| v.strip_suffix('\'')))
                .unwrap_or(v);
            Some((k.trim().to_string(), v.to_string()))
        })
        .collect()
}

/// The machine architecture as `uname -m` prints it.
pub(crate) fn machine_arch() -> String {
    // /proc/sys/kernel/arch exists from Linux 6.1; before that the build target is the
    // best answer without a uname(2) call.
    read_trimmed("/proc/sys/kernel/arch").unwrap_or_else(|| std::env::consts::ARCH.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_values_strip_quotes_and_skip_comments() {
        let kv = key_values("# c\nNAME=\"Debian GNU/Linux\"\nID=debian\nX='y'\n\n");
        assert_eq!(
            kv,
            vec![
                ("NAME".into(), "Debian GNU/Linux".into()),
                ("ID".into(), "debian".into()),
                ("X".into(), "y".into())
            ]
        );
    }
}
