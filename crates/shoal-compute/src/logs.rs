//! Execution logs: kept on disk beside the execution, and fanned out live to followers.
//!
//! Every chunk an engine produces gets a sequence number, is appended to `logs.ndjson` and is
//! then broadcast. A follower subscribes first and reads the file second, so it sees every chunk
//! exactly once whatever the interleaving: file lines first, then broadcast chunks numbered at or
//! past the file's line count.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock};

use serde::{Deserialize, Serialize};
use shoal_executors::{LogChunk, Stream};
use shoal_transport::{Frame, LOG_SHIPMENT, LogShipment, Outbound};
use tokio::io::AsyncWriteExt;
use tokio::sync::{broadcast, mpsc};
use tokio_util::sync::CancellationToken;

/// Bytes of stdout/stderr kept inline in `RunOutput` (Bacalhau keeps 2 KB).
const HEAD_LIMIT: usize = 2048;

#[derive(Debug, Clone, Serialize, Deserialize)]
struct Line {
    /// 1 = stdout, 2 = stderr.
    s: u8,
    /// Text.
    l: String,
}

/// Chunks a follower may fall behind by before it is told it skipped some.
const FOLLOW_BUFFER: usize = 1024;

/// One numbered chunk: sequence number, stream (1 = stdout, 2 = stderr), text.
type Chunk = (u64, u8, String);

/// The live channel of one execution. Its buffer is made when the first follower subscribes:
/// a buffer of [`FOLLOW_BUFFER`] slots is about 70 KiB, and a daemon rolled out to thousands of
/// nodes at once (or a node running thousands of executions) otherwise paid it for every
/// execution that nobody follows. Dropping the last handle ends the followers' streams.
#[derive(Default)]
pub(crate) struct Live(OnceLock<broadcast::Sender<Chunk>>);

impl Live {
    /// Sends a chunk to the followers, if there are any. The drain calls it only after the
    /// chunk is in the log file, so a follower that subscribes later finds the chunk there.
    fn send(&self, chunk: Chunk) {
        if let Some(tx) = self.0.get() {
            let _ = tx.send(chunk);
        }
    }

    fn subscribe(&self) -> broadcast::Receiver<Chunk> {
        self.0
            .get_or_init(|| broadcast::channel(FOLLOW_BUFFER).0)
            .subscribe()
    }

    /// Whether anyone has subscribed (for tests).
    #[cfg(test)]
    fn is_followed(&self) -> bool {
        self.0.get().is_some()
    }
}

/// Live log channels of executions that have not ended.
#[derive(Default)]
pub(crate) struct LogHub {
    live: Mutex<HashMap<String, Arc<Live>>>,
}

impl LogHub {
    /// Opens the live channel of an execution (at admission, before it runs).
    pub fn open(&self, execution_id: &str) -> Arc<Live> {
        let mut live = self.live.lock().unwrap_or_else(|p| p.into_inner());
        live.entry(execution_id.to_string()).or_default().clone()
    }

    /// Closes it: followers see the end of the stream.
    pub fn close(&self, execution_id: &str) {
        self.live
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(execution_id);
    }

    /// Whether the execution has not ended on this node.
    fn is_open(&self, execution_id: &str) -> bool {
        self.live
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .contains_key(execution_id)
    }

    fn subscribe(&self, execution_id: &str) -> Option<broadcast::Receiver<Chunk>> {
        self.live
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(execution_id)
            .map(|live| live.subscribe())
    }
}

/// The path of an execution's log file.
pub(crate) fn log_file(exec_dir: &Path) -> PathBuf {
    exec_dir.join("logs.ndjson")
}

/// Most bytes of an execution's log file shipped to the orchestrator; past it the last piece
/// says `truncated` and the rest stays on the node (and in the results' `stdout`/`stderr`).
pub(crate) const MAX_SHIPPED: usize = 16 << 20;

/// How far an execution's log has been shipped to the orchestrator.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Shipped {
    /// Offset in the log file of the first byte not shipped yet.
    pub next: u64,
    /// The shipping limit was reached: a piece marked `truncated` went, nothing more will.
    pub full: bool,
}

/// The execution's log file from `shipped.next` on, as pieces for the orchestrator to keep:
/// whole lines, about [`LOG_SHIPMENT`] bytes each before gzip, at most `max` bytes of the
/// file in all. While the execution runs (`finished` false) a last line without its newline
/// waits for the next shipment; once it ended, it goes too. No file (an execution that never
/// ran): no pieces. Returns the pieces and how far the log is shipped with them.
pub(crate) fn shipment(
    exec_dir: &Path,
    execution_id: &str,
    job_id: &str,
    shipped: Shipped,
    max: usize,
    finished: bool,
) -> std::io::Result<(Vec<LogShipment>, Shipped)> {
    use base64::Engine as _;
    use std::io::{BufRead, Seek, Write};
    if shipped.full {
        return Ok((vec![], shipped));
    }
    let mut file = match std::fs::File::open(log_file(exec_dir)) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok((vec![], shipped)),
        Err(e) => return Err(e),
    };
    file.seek(std::io::SeekFrom::Start(shipped.next))?;
    let mut reader = std::io::BufReader::new(file);
    let mut pieces = Vec::new();
    let (mut piece, mut start, mut offset) = (Vec::new(), shipped.next, shipped.next);
    let seal = |piece: &mut Vec<u8>, start: u64, truncated: bool| -> std::io::Result<LogShipment> {
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        gz.write_all(piece)?;
        piece.clear();
        Ok(LogShipment {
            execution_id: execution_id.to_string(),
            job_id: job_id.to_string(),
            offset: start,
            data: base64::engine::general_purpose::STANDARD.encode(gz.finish()?),
            truncated,
        })
    };
    let mut line = Vec::new();
    loop {
        line.clear();
        if reader.read_until(b'\n', &mut line)? == 0 {
            break;
        }
        if !finished && line.last() != Some(&b'\n') {
            break;
        }
        if offset as usize + line.len() > max {
            pieces.push(seal(&mut piece, start, true)?);
            return Ok((
                pieces,
                Shipped {
                    next: offset,
                    full: true,
                },
            ));
        }
        if !piece.is_empty() && piece.len() + line.len() > LOG_SHIPMENT {
            pieces.push(seal(&mut piece, start, false)?);
            start = offset;
        }
        piece.extend_from_slice(&line);
        offset += line.len() as u64;
    }
    if !piece.is_empty() {
        pieces.push(seal(&mut piece, start, false)?);
    }
    Ok((
        pieces,
        Shipped {
            next: offset,
            full: false,
        },
    ))
}

/// What the drain kept for the execution's `RunOutput`.
#[derive(Debug, Default)]
pub(crate) struct Captured {
    pub stdout: String,
    pub stdout_truncated: bool,
    pub stderr: String,
    pub stderr_truncated: bool,
}

fn keep_head(buf: &mut String, truncated: &mut bool, text: &str) {
    if buf.len() >= HEAD_LIMIT {
        *truncated = true;
        return;
    }
    let room = HEAD_LIMIT - buf.len();
    if text.len() <= room {
        buf.push_str(text);
    } else {
        let mut cut = room;
        while !text.is_char_boundary(cut) {
            cut -= 1;
        }
        buf.push_str(&text[..cut]);
        *truncated = true;
    }
}

/// The files an execution's output goes to.
struct Files {
    log: tokio::fs::File,
    out: tokio::fs::File,
    err: tokio::fs::File,
}

impl Files {
    /// Creates the results folder (and the execution's folder above it) and opens the files.
    async fn open(exec_dir: &Path, results_dir: &Path) -> std::io::Result<Files> {
        tokio::fs::create_dir_all(results_dir).await?;
        Ok(Files {
            log: append(log_file(exec_dir)).await?,
            out: append(results_dir.join("stdout")).await?,
            err: append(results_dir.join("stderr")).await?,
        })
    }
}

/// Drains an engine's output: log file, full `stdout`/`stderr` files in the results folder,
/// live followers, and the head kept for `RunOutput`, each with `secrets` masked as `***`.
/// Returns when the engine's sink closes.
///
/// The folders and files are made at the first output, or at the end (empty `stdout` and
/// `stderr`) when there was none: a daemon that prints nothing touches no disk while it runs,
/// which a rollout to many nodes at once (or many executions on one node) feels.
pub(crate) async fn drain(
    mut rx: mpsc::UnboundedReceiver<LogChunk>,
    exec_dir: &Path,
    results_dir: &Path,
    live: Arc<Live>,
    secrets: &[String],
) -> std::io::Result<Captured> {
    let mut files: Option<Files> = None;
    let mut captured = Captured::default();
    let mut n = 0u64;
    while let Some(mut chunk) = rx.recv().await {
        if !secrets.is_empty() {
            chunk.text = crate::env::mask(secrets, &chunk.text);
        }
        let Files { log, out, err } = match &mut files {
            Some(f) => f,
            None => files.insert(Files::open(exec_dir, results_dir).await?),
        };
        let s = match chunk.stream {
            Stream::Stdout => {
                out.write_all(chunk.text.as_bytes()).await?;
                keep_head(
                    &mut captured.stdout,
                    &mut captured.stdout_truncated,
                    &chunk.text,
                );
                1
            }
            Stream::Stderr => {
                err.write_all(chunk.text.as_bytes()).await?;
                keep_head(
                    &mut captured.stderr,
                    &mut captured.stderr_truncated,
                    &chunk.text,
                );
                2
            }
        };
        let mut line = serde_json::to_string(&Line {
            s,
            l: chunk.text.clone(),
        })
        .expect("log lines serialise");
        line.push('\n');
        log.write_all(line.as_bytes()).await?;
        log.flush().await?;
        live.send((n, s, chunk.text));
        n += 1;
    }
    match files {
        Some(mut f) => {
            f.out.flush().await?;
            f.err.flush().await?;
        }
        None => drop(Files::open(exec_dir, results_dir).await?),
    }
    Ok(captured)
}

async fn append(path: PathBuf) -> std::io::Result<tokio::fs::File> {
    tokio::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .await
}

/// Serves one log request: everything on disk, then (with `follow`) live chunks until the
/// execution ends or `cancel` fires. Frames go to the link's writer.
pub(crate) async fn serve(
    hub: &LogHub,
    exec_dir: &Path,
    execution_id: &str,
    follow: bool,
    stream_id: u64,
    out: mpsc::UnboundedSender<Outbound>,
    cancel: CancellationToken,
) {
    let mut live = if follow {
        hub.subscribe(execution_id)
    } else {
        None
    };
    let path = log_file(exec_dir);
    let text = match tokio::fs::read_to_string(&path).await {
        Ok(t) => t,
        Err(e)
            if e.kind() == std::io::ErrorKind::NotFound
                && (live.is_some() || hub.is_open(execution_id) || exec_dir.exists()) =>
        {
            String::new()
        }
        Err(e) => {
            let error = Some(format!(
                "logs of execution {execution_id} are not on this node: {e}"
            ));
            let _ = out.send(Frame::LogEnd { stream_id, error }.into());
            return;
        }
    };
    let mut count = 0u64;
    for raw in text.lines() {
        if let Ok(line) = serde_json::from_str::<Line>(raw) {
            let _ = out.send(
                Frame::LogLine {
                    stream_id,
                    stream: line.s,
                    line: line.l,
                }
                .into(),
            );
        }
        count += 1;
    }
    if let Some(rx) = live.as_mut() {
        loop {
            tokio::select! {
                _ = cancel.cancelled() => return,
                item = rx.recv() => match item {
                    Ok((n, s, l)) if n >= count => {
                        if out.send(Frame::LogLine { stream_id, stream: s, line: l }.into()).is_err() { return }
                    }
                    Ok(_) => {}
                    Err(broadcast::error::RecvError::Lagged(k)) => {
                        let note = format!("[shoal: {k} log chunks skipped because the follower fell behind; `shoal job logs` without -f shows them all]\n");
                        let _ = out.send(Frame::LogLine { stream_id, stream: 2, line: note }.into());
                    }
                    Err(broadcast::error::RecvError::Closed) => break,
                }
            }
        }
    }
    let _ = out.send(
        Frame::LogEnd {
            stream_id,
            error: None,
        }
        .into(),
    );
}

#[cfg(test)]
mod tests {
    use super::*;
    use shoal_executors::LogSink;

    #[tokio::test]
    async fn follower_sees_file_lines_then_live_lines_exactly_once() {
        let dir = tempfile::tempdir().unwrap();
        let hub = LogHub::default();
        let live = hub.open("e-1");
        let (sink, rx) = LogSink::channel();
        let exec_dir = dir.path().to_path_buf();
        let drain_task =
            tokio::spawn(async move { drain(rx, &exec_dir, &exec_dir, live, &[]).await });
        sink.write(Stream::Stdout, "one\n");
        sink.write(Stream::Stderr, "two\n");
        // Wait until both chunks are on disk before the follower joins.
        while tokio::fs::read_to_string(log_file(dir.path()))
            .await
            .unwrap_or_default()
            .lines()
            .count()
            < 2
        {
            tokio::task::yield_now().await;
        }
        let (tx, mut frames) = mpsc::unbounded_channel();
        let cancel = CancellationToken::new();
        let follower = {
            let path = dir.path().to_path_buf();
            let hub = &hub;
            async move { serve(hub, &path, "e-1", true, 9, tx, cancel).await }
        };
        let writer = async {
            sink.write(Stream::Stdout, "three\n");
            drop(sink);
            let captured = drain_task.await.unwrap().unwrap();
            hub.close("e-1");
            captured
        };
        let ((), captured) = tokio::join!(follower, writer);
        let mut got = Vec::new();
        while let Ok(f) = frames.try_recv() {
            got.push(f);
        }
        let lines: Vec<_> = got
            .iter()
            .filter_map(|f| match f {
                Outbound::Frame(Frame::LogLine { stream, line, .. }) => {
                    Some((*stream, line.as_str()))
                }
                _ => None,
            })
            .collect();
        assert_eq!(lines, vec![(1, "one\n"), (2, "two\n"), (1, "three\n")]);
        assert!(matches!(
            got.last(),
            Some(Outbound::Frame(Frame::LogEnd { error: None, .. }))
        ));
        assert_eq!(captured.stdout, "one\nthree\n");
        assert_eq!(captured.stderr, "two\n");
    }

    #[tokio::test]
    async fn a_silent_execution_touches_no_disk_until_it_ends() {
        let dir = tempfile::tempdir().unwrap();
        let exec_dir = dir.path().join("e-quiet");
        let results = exec_dir.join("results");
        let hub = LogHub::default();
        let live = hub.open("e-quiet");
        let (sink, rx) = LogSink::channel();
        let drain_task = {
            let (exec_dir, results) = (exec_dir.clone(), results.clone());
            tokio::spawn(async move { drain(rx, &exec_dir, &results, live, &[]).await })
        };
        tokio::task::yield_now().await;
        assert!(!exec_dir.exists(), "folder made before any output");

        // Logs of the running execution are empty, not "not on this node".
        let (tx, mut frames) = mpsc::unbounded_channel();
        serve(
            &hub,
            &exec_dir,
            "e-quiet",
            false,
            1,
            tx,
            CancellationToken::new(),
        )
        .await;
        assert!(matches!(
            frames.try_recv(),
            Ok(Outbound::Frame(Frame::LogEnd { error: None, .. }))
        ));

        drop(sink);
        drain_task.await.unwrap().unwrap();
        for name in ["stdout", "stderr"] {
            assert_eq!(std::fs::read_to_string(results.join(name)).unwrap(), "");
        }
    }

    #[tokio::test]
    async fn the_live_buffer_is_made_for_the_first_follower_only() {
        let dir = tempfile::tempdir().unwrap();
        let hub = LogHub::default();
        let live = hub.open("e-1");
        let (sink, rx) = LogSink::channel();
        let drain_task = {
            let (exec_dir, live) = (dir.path().to_path_buf(), live.clone());
            tokio::spawn(async move { drain(rx, &exec_dir, &exec_dir, live, &[]).await })
        };
        sink.write(Stream::Stdout, "nobody follows\n");
        while tokio::fs::read_to_string(log_file(dir.path()))
            .await
            .unwrap_or_default()
            .is_empty()
        {
            tokio::task::yield_now().await;
        }
        assert!(!live.is_followed(), "buffer made with no follower");

        let mut rx = hub.subscribe("e-1").expect("the execution is open");
        assert!(live.is_followed());
        sink.write(Stream::Stderr, "followed\n");
        // The first chunk may still reach the follower: the test saw it in the file, and the
        // drain broadcasts it just after writing it there (a follower skips it by number).
        let mut chunk = rx.recv().await.unwrap();
        if chunk.0 == 0 {
            chunk = rx.recv().await.unwrap();
        }
        let (n, stream, text) = chunk;
        assert_eq!((n, stream, text.as_str()), (1, 2, "followed\n"));

        drop(sink);
        drain_task.await.unwrap().unwrap();
        hub.close("e-1");
        drop(live);
        assert!(matches!(
            rx.recv().await,
            Err(broadcast::error::RecvError::Closed)
        ));
    }

    #[test]
    fn a_log_ships_in_whole_line_pieces_up_to_the_cap() {
        use base64::Engine as _;
        use std::io::Read;
        let dir = tempfile::tempdir().unwrap();
        let ship = |from: Shipped, max: usize, finished: bool| {
            shipment(dir.path(), "e-1", "j-1", from, max, finished).unwrap()
        };
        assert!(ship(Shipped::default(), MAX_SHIPPED, true).0.is_empty());
        let line = format!("{{\"s\":1,\"l\":\"{}\\n\"}}\n", "x".repeat(1000));
        let lines = 3 * LOG_SHIPMENT / line.len();
        std::fs::write(log_file(dir.path()), line.repeat(lines)).unwrap();
        let unpack = |p: &LogShipment| {
            let gz = base64::engine::general_purpose::STANDARD
                .decode(&p.data)
                .unwrap();
            let mut text = String::new();
            flate2::read::GzDecoder::new(&gz[..])
                .read_to_string(&mut text)
                .unwrap();
            text
        };
        let (pieces, shipped) = ship(Shipped::default(), MAX_SHIPPED, true);
        assert_eq!(shipped.next as usize, lines * line.len());
        assert_eq!(pieces.len(), 3, "about {LOG_SHIPMENT} bytes a piece");
        let mut whole = String::new();
        for p in &pieces {
            assert_eq!(p.offset as usize, whole.len(), "offsets follow the file");
            assert!(!p.truncated);
            let text = unpack(p);
            assert!(
                text.ends_with('\n') && text.len() <= LOG_SHIPMENT,
                "whole lines"
            );
            whole.push_str(&text);
        }
        assert_eq!(whole, line.repeat(lines));
        // Past the cap: the pieces stop at a line and the last one says so.
        let (capped, shipped) = ship(Shipped::default(), 10 * line.len() + 5, true);
        assert_eq!(capped.len(), 1);
        assert!(capped[0].truncated && shipped.full);
        assert_eq!(unpack(&capped[0]), line.repeat(10));
        assert!(
            ship(shipped, MAX_SHIPPED, true).0.is_empty(),
            "nothing after the cap"
        );

        // While the execution runs: each shipment takes the whole lines written since the
        // last one, and a line still being written waits.
        std::fs::write(log_file(dir.path()), "a\nb\nhalf").unwrap();
        let (first, shipped) = ship(Shipped::default(), MAX_SHIPPED, false);
        assert_eq!((first.len(), unpack(&first[0]).as_str()), (1, "a\nb\n"));
        assert_eq!(shipped.next, 4);
        assert!(ship(shipped, MAX_SHIPPED, false).0.is_empty());
        std::fs::write(log_file(dir.path()), "a\nb\nhalf done\nc").unwrap();
        let (second, shipped) = ship(shipped, MAX_SHIPPED, false);
        assert_eq!(
            (second[0].offset, unpack(&second[0]).as_str()),
            (4, "half done\n")
        );
        // Once it ended, the last line goes without its newline.
        let (last, shipped) = ship(shipped, MAX_SHIPPED, true);
        assert_eq!((last[0].offset, unpack(&last[0]).as_str()), (14, "c"));
        assert_eq!(shipped.next, 15);
    }

    #[test]
    fn run_output_keeps_only_the_head() {
        let (mut buf, mut cut) = (String::new(), false);
        keep_head(&mut buf, &mut cut, &"x".repeat(HEAD_LIMIT + 10));
        assert_eq!(buf.len(), HEAD_LIMIT);
        assert!(cut);
    }
}
