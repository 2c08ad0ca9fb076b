//! Serving a `local` result archive over the agent link, in acknowledged chunks, so that
//! `job get` works for a node that accepts no inbound connection.

use std::path::Path;

use base64::Engine as _;
use shoal_transport::{Frame, Outbound, RESULT_CHUNK, RESULT_WINDOW};
use tokio::io::AsyncReadExt;
use tokio::sync::{mpsc, watch};
use tokio_util::sync::CancellationToken;

/// Sends the archive of `execution_id` as `ResultStart`, `ResultChunk`s and `ResultEnd`,
/// with at most [`RESULT_WINDOW`] chunks sent past the highest index in `acked` (-1 before
/// the first ack). Stops quietly when `cancel` fires or the link closes.
pub(crate) async fn serve(
    local_dir: &Path,
    node_id: &str,
    execution_id: &str,
    stream_id: u64,
    tx: mpsc::UnboundedSender<Outbound>,
    mut acked: watch::Receiver<i64>,
    cancel: CancellationToken,
) {
    let path = super::local_archive(local_dir, execution_id);
    let end = |error: Option<String>| Outbound::from(Frame::ResultEnd { stream_id, error });
    let mut file = match tokio::fs::File::open(&path).await {
        Ok(f) => f,
        Err(e) => {
            let _ = tx.send(end(Some(format!(
                "node {node_id} has no local result archive for execution {execution_id} ({e}): \
                 the job was not published with the local publisher (-p local), or the node's data dir was cleaned"
            ))));
            return;
        }
    };
    let size = match file.metadata().await {
        Ok(m) => m.len(),
        Err(e) => {
            let _ = tx.send(end(Some(format!("cannot read {}: {e}", path.display()))));
            return;
        }
    };
    if tx
        .send(Frame::ResultStart { stream_id, size }.into())
        .is_err()
    {
        return;
    }
    let mut buf = vec![0u8; RESULT_CHUNK];
    let mut index: u64 = 0;
    loop {
        // Flow control: wait for room in the window.
        while index as i64 >= *acked.borrow() + 1 + RESULT_WINDOW as i64 {
            tokio::select! {
                _ = cancel.cancelled() => return,
                changed = acked.changed() => if changed.is_err() { return },
            }
        }
        let n = match read_full(&mut file, &mut buf).await {
            Ok(n) => n,
            Err(e) => {
                let _ = tx.send(end(Some(format!("cannot read {}: {e}", path.display()))));
                return;
            }
        };
        if n == 0 {
            break;
        }
        let data = base64::engine::general_purpose::STANDARD.encode(&buf[..n]);
        if cancel.is_cancelled()
            || tx
                .send(
                    Frame::ResultChunk {
                        stream_id,
                        index,
                        data,
                    }
                    .into(),
                )
                .is_err()
        {
            return;
        }
        index += 1;
    }
    let _ = tx.send(end(None));
}

async fn read_full(file: &mut tokio::fs::File, buf: &mut [u8]) -> std::io::Result<usize> {
    let mut filled = 0;
    while filled < buf.len() {
        let n = file.read(&mut buf[filled..]).await?;
        if n == 0 {
            break;
        }
        filled += n;
    }
    Ok(filled)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn chunks_stop_at_the_window_until_acknowledged() {
        let dir = tempfile::tempdir().unwrap();
        let size = RESULT_CHUNK * (RESULT_WINDOW as usize + 4);
        std::fs::write(dir.path().join("e-1.tar.gz"), vec![7u8; size]).unwrap();
        let (tx, mut rx) = mpsc::unbounded_channel();
        let (ack_tx, ack_rx) = watch::channel(-1i64);
        let path = dir.path().to_path_buf();
        let task = tokio::spawn(async move {
            serve(&path, "n-1", "e-1", 9, tx, ack_rx, CancellationToken::new()).await
        });
        assert_eq!(
            rx.recv().await,
            Some(
                Frame::ResultStart {
                    stream_id: 9,
                    size: size as u64
                }
                .into()
            )
        );
        let mut got = 0u64;
        // Without acks, exactly WINDOW chunks (indexes 0..WINDOW) arrive.
        while got < RESULT_WINDOW {
            assert!(
                matches!(rx.recv().await, Some(Outbound::Frame(Frame::ResultChunk { index, .. })) if index == got)
            );
            got += 1;
        }
        tokio::task::yield_now().await;
        assert!(rx.try_recv().is_err(), "the node ran past its window");
        ack_tx.send(got as i64 - 1).unwrap();
        let mut bytes = (got as usize) * RESULT_CHUNK;
        loop {
            match rx.recv().await.unwrap() {
                Outbound::Frame(Frame::ResultChunk { data, .. }) => {
                    bytes += base64::engine::general_purpose::STANDARD
                        .decode(data)
                        .unwrap()
                        .len()
                }
                Outbound::Frame(Frame::ResultEnd { error, .. }) => {
                    assert_eq!(error, None);
                    break;
                }
                other => panic!("unexpected {other:?}"),
            }
        }
        assert_eq!(bytes, size);
        task.await.unwrap();
    }

    #[tokio::test]
    async fn a_missing_archive_ends_with_an_error_naming_node_and_execution() {
        let dir = tempfile::tempdir().unwrap();
        let (tx, mut rx) = mpsc::unbounded_channel();
        let (_ack, ack_rx) = watch::channel(-1i64);
        serve(
            dir.path(),
            "n-1",
            "e-2",
            1,
            tx,
            ack_rx,
            CancellationToken::new(),
        )
        .await;
        match rx.recv().await {
            Some(Outbound::Frame(Frame::ResultEnd { error: Some(e), .. })) => {
                assert!(
                    e.contains("n-1") && e.contains("e-2") && e.contains("-p local"),
                    "{e}"
                )
            }
            other => panic!("unexpected {other:?}"),
        }
    }
}
