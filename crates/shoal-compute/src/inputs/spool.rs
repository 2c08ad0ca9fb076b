//! Writing a download to disk without slowing the download.
//!
//! `tokio::fs::File` copies every chunk into its own buffer and hands each write to the
//! blocking pool, one at a time, so a download of small network chunks pays a copy and a
//! thread round trip per chunk. A [`Spool`] instead moves the chunks (reference-counted
//! `Bytes`, never copied) through a bounded channel to one blocking thread that writes them
//! with the standard library, so reading the network and writing the disk overlap. The bound
//! keeps memory flat when the disk is slower than the network.

use std::io::Write;
use std::path::Path;

use bytes::Bytes;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

/// Chunks in flight between the download and the disk (network chunks are 8 KiB to a few
/// hundred KiB, so this is at most a few tens of MiB).
const IN_FLIGHT: usize = 64;

/// A file being written on a blocking thread.
pub(crate) struct Spool {
    tx: Option<mpsc::Sender<Bytes>>,
    writer: JoinHandle<std::io::Result<()>>,
}

impl Spool {
    /// Creates (or truncates) `path` and starts its writer.
    pub async fn create(path: &Path) -> std::io::Result<Spool> {
        let file = tokio::fs::File::create(path).await?.into_std().await;
        let (tx, mut rx) = mpsc::channel::<Bytes>(IN_FLIGHT);
        let writer = tokio::task::spawn_blocking(move || {
            let mut file = file;
            while let Some(chunk) = rx.blocking_recv() {
                file.write_all(&chunk)?;
            }
            file.flush()
        });
        Ok(Spool {
            tx: Some(tx),
            writer,
        })
    }

    /// Queues a chunk; waits only when [`IN_FLIGHT`] chunks are already queued. A write error
    /// of an earlier chunk is returned here.
    pub async fn write(&mut self, chunk: Bytes) -> std::io::Result<()> {
        let sent = match &self.tx {
            Some(tx) => tx.send(chunk).await.is_ok(),
            None => false,
        };
        if sent {
            return Ok(());
        }
        // The writer stopped, which it does only on an error: report that error.
        self.tx = None;
        match (&mut self.writer).await {
            Ok(Err(e)) => Err(e),
            Ok(Ok(())) => Err(std::io::Error::other("the writer stopped early")),
            Err(e) => Err(std::io::Error::other(e)),
        }
    }

    /// Waits until every queued chunk is written.
    pub async fn finish(mut self) -> std::io::Result<()> {
        self.tx = None;
        (&mut self.writer).await.map_err(std::io::Error::other)?
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn chunks_are_written_in_order() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        let mut s = Spool::create(&path).await.unwrap();
        for i in 0..1000u32 {
            s.write(Bytes::from(format!("{i},"))).await.unwrap();
        }
        s.finish().await.unwrap();
        let want: String = (0..1000u32).map(|i| format!("{i},")).collect();
        assert_eq!(std::fs::read_to_string(&path).unwrap(), want);
    }

    #[tokio::test]
    async fn a_write_error_reaches_the_writer_of_a_later_chunk() {
        // /dev/full fails every write with ENOSPC.
        let mut s = Spool::create(Path::new("/dev/full")).await.unwrap();
        let mut failed = None;
        for _ in 0..(IN_FLIGHT * 4) {
            if let Err(e) = s.write(Bytes::from_static(&[0u8; 4096])).await {
                failed = Some(e);
                break;
            }
        }
        let err = match failed {
            Some(e) => e,
            None => s.finish().await.unwrap_err(),
        };
        assert_eq!(err.raw_os_error(), Some(libc::ENOSPC), "{err}");
    }
}
