//! Results folders as `.tar.gz` archives, with their size and SHA-256.

use std::io::Write;
use std::path::Path;

use sha2::{Digest, Sha256};

/// An archive written to disk.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Archive {
    /// Bytes of the `.tar.gz` file.
    pub size: u64,
    /// Hex SHA-256 of the file.
    pub sha256: String,
}

/// Counts and hashes what passes through to the file.
struct HashingWriter<W> {
    inner: W,
    hasher: Sha256,
    size: u64,
}

impl<W: Write> Write for HashingWriter<W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.hasher.update(&buf[..n]);
        self.size += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}

/// Writes `dir`'s contents (at the archive's root, no leading folder) to `dest` as tar.gz.
/// Blocking: call from `spawn_blocking`.
pub(crate) fn write(dir: &Path, dest: &Path) -> std::io::Result<Archive> {
    if let Some(parent) = dest.parent() {
        std::fs::create_dir_all(parent)?;
    }
    let tmp = dest.with_extension("partial");
    let file = std::io::BufWriter::new(std::fs::File::create(&tmp)?);
    let hashing = HashingWriter {
        inner: file,
        hasher: Sha256::new(),
        size: 0,
    };
    let gz = flate2::write::GzEncoder::new(hashing, flate2::Compression::fast());
    let mut tar = tar::Builder::new(gz);
    tar.follow_symlinks(false);
    tar.append_dir_all(".", dir)?;
    let gz = tar.into_inner()?;
    let mut hashing = gz.finish()?;
    hashing.flush()?;
    let archive = Archive {
        size: hashing.size,
        sha256: hex::encode(hashing.hasher.finalize()),
    };
    hashing
        .inner
        .into_inner()
        .map_err(|e| e.into_error())?
        .sync_all()?;
    // Renamed into place only when complete, so a reader never serves half an archive.
    std::fs::rename(&tmp, dest)?;
    Ok(archive)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn archives_hold_the_folder_contents_and_their_checksum_is_of_the_file() {
        let src = tempfile::tempdir().unwrap();
        std::fs::write(src.path().join("stdout"), "hi\n").unwrap();
        std::fs::create_dir(src.path().join("outputs")).unwrap();
        std::fs::write(src.path().join("outputs/r.txt"), "42").unwrap();
        let out = tempfile::tempdir().unwrap();
        let dest = out.path().join("e-1.tar.gz");
        let a = write(src.path(), &dest).unwrap();
        let bytes = std::fs::read(&dest).unwrap();
        assert_eq!(a.size, bytes.len() as u64);
        assert_eq!(a.sha256, hex::encode(Sha256::digest(&bytes)));
        let mut names: Vec<String> =
            tar::Archive::new(flate2::read::GzDecoder::new(bytes.as_slice()))
                .entries()
                .unwrap()
                .map(|e| e.unwrap().path().unwrap().display().to_string())
                .filter(|n| !n.ends_with('/') && n != ".")
                .collect();
        names.sort();
        assert!(
            names.contains(&"./outputs/r.txt".to_string())
                || names.contains(&"outputs/r.txt".to_string()),
            "{names:?}"
        );
    }
}
