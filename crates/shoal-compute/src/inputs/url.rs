//! `urlDownload` inputs: one HTTP(S) file, streamed to disk, with a size cap, an optional
//! SHA-256 check, and retries on transient errors (connection failures, timeouts, 408, 429,
//! 5xx). A 4xx answer is permanent: retrying would get the same answer.

use super::retry::{Failure, with_backoff};
use super::spool::Spool;
use super::{InputContext, InputError, checksum_matches, file_slot};
use futures::StreamExt;
use sha2::{Digest, Sha256};
use shoal_executors::PreparedInput;
use shoal_types::InputSource;

pub(super) async fn stage(
    i: usize,
    input: &InputSource,
    cx: &InputContext,
) -> Result<PreparedInput, InputError> {
    let url = input.source.str_param("URL").ok_or_else(|| {
        InputError::User(format!(
            "urlDownload input {}: Params.URL is required",
            input.target
        ))
    })?;
    let parsed = reqwest::Url::parse(url).map_err(|e| {
        InputError::User(format!(
            "urlDownload input {}: {url:?} is not a URL: {e}",
            input.target
        ))
    })?;
    if !matches!(parsed.scheme(), "http" | "https") {
        return Err(InputError::User(format!(
            "urlDownload input {}: {url} is not http or https",
            input.target
        )));
    }
    let fallback = parsed
        .path_segments()
        .and_then(|mut s| s.next_back().map(str::to_string))
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "download".into());
    let path = file_slot(i, &input.target, &fallback, &cx.staging)?;
    let checksum = input.source.str_param("ChecksumSHA256").map(str::to_string);
    let policy = &cx.policy;
    let result = with_backoff(policy, &cx.pause, |_| {
        let (url, path, checksum) = (url.to_string(), path.clone(), checksum.clone());
        async move { download(cx, &url, &path, checksum.as_deref()).await }
    })
    .await;
    match result {
        Ok(()) => Ok(PreparedInput {
            host_path: path,
            target: input.target.clone(),
            read_write: false,
        }),
        Err(f) => {
            let msg = format!("urlDownload input {}: {}", input.target, f.message);
            Err(if f.transient {
                InputError::Transient(msg)
            } else {
                InputError::User(msg)
            })
        }
    }
}

async fn download(
    cx: &InputContext,
    url: &str,
    path: &std::path::Path,
    checksum: Option<&str>,
) -> Result<(), Failure> {
    let resp = cx
        .http
        .get(url)
        .timeout(cx.policy.timeout)
        .send()
        .await
        .map_err(|e| Failure::transient(format!("cannot fetch {url}: {}", error_chain(&e))))?;
    let status = resp.status();
    if !status.is_success() {
        let msg = format!("{url} answered {status}");
        let transient = status.is_server_error()
            || status == reqwest::StatusCode::TOO_MANY_REQUESTS
            || status == reqwest::StatusCode::REQUEST_TIMEOUT;
        return Err(if transient {
            Failure::transient(msg)
        } else {
            Failure::permanent(format!("{msg}; check the URL"))
        });
    }
    let cap = cx.policy.max_bytes;
    if let Some(len) = resp.content_length()
        && len > cap
    {
        return Err(Failure::permanent(too_large(url, cap)));
    }
    let mut file = Spool::create(path)
        .await
        .map_err(|e| Failure::permanent(format!("cannot create {}: {e}", path.display())))?;
    let mut hasher = checksum.map(|_| Sha256::new());
    let mut written = 0u64;
    let mut body = resp.bytes_stream();
    while let Some(chunk) = body.next().await {
        let chunk = chunk.map_err(|e| {
            Failure::transient(format!(
                "download of {url} broke after {written} bytes: {}",
                error_chain(&e)
            ))
        })?;
        written += chunk.len() as u64;
        if written > cap {
            return Err(Failure::permanent(too_large(url, cap)));
        }
        if let Some(h) = hasher.as_mut() {
            h.update(&chunk);
        }
        file.write(chunk)
            .await
            .map_err(|e| Failure::permanent(format!("cannot write {}: {e}", path.display())))?;
    }
    file.finish()
        .await
        .map_err(|e| Failure::permanent(format!("cannot write {}: {e}", path.display())))?;
    if let (Some(want), Some(h)) = (checksum, hasher) {
        let got: [u8; 32] = h.finalize().into();
        if !checksum_matches(want, &got) {
            return Err(Failure::permanent(format!(
                "{url}: SHA-256 is {}, the job expects {want}",
                hex::encode(got)
            )));
        }
    }
    Ok(())
}

fn too_large(url: &str, cap: u64) -> String {
    format!(
        "{url} is larger than this node's download limit of {cap} bytes; fetch a smaller file or split the input"
    )
}

/// reqwest's top-level error hides the cause (connection refused, DNS); show the chain.
pub(crate) fn error_chain(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        let text = s.to_string();
        if !out.contains(&text) {
            out.push_str(": ");
            out.push_str(&text);
        }
        source = s.source();
    }
    out
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicU32, Ordering};
    use std::time::Duration;

    use axum::Router;
    use axum::http::StatusCode;
    use axum::routing::get;

    use super::*;
    use crate::config::TransferPolicy;
    use crate::inputs::retry::Pause;

    /// Request counts of the test server, per route.
    #[derive(Default, Clone)]
    struct Hits(Arc<[AtomicU32; 5]>);

    impl Hits {
        fn of(&self, route: usize) -> u32 {
            self.0[route].load(Ordering::SeqCst)
        }
        fn hit(&self, route: usize) -> u32 {
            self.0[route].fetch_add(1, Ordering::SeqCst)
        }
    }

    const FLAKY: usize = 0;
    const DOWN: usize = 1;
    const MISSING: usize = 2;
    const FORBIDDEN: usize = 3;
    const RESET: usize = 4;

    /// A real HTTP server on 127.0.0.1: `/flaky` answers 503 twice then the file, `/down`
    /// always 503, `/missing` 404, `/forbidden` 403, `/big` more than the test's size cap.
    async fn server() -> (String, Hits) {
        let hits = Hits::default();
        let h = hits.clone();
        let status = move |route: usize, code: StatusCode| {
            let h = h.clone();
            get(move || {
                let h = h.clone();
                async move {
                    h.hit(route);
                    (code, "no")
                }
            })
        };
        let h = hits.clone();
        let app = Router::new()
            .route(
                "/flaky",
                get(move || {
                    let h = h.clone();
                    async move {
                        if h.hit(FLAKY) < 2 {
                            (StatusCode::SERVICE_UNAVAILABLE, "try later")
                        } else {
                            (StatusCode::OK, "payload")
                        }
                    }
                }),
            )
            .route("/down", status(DOWN, StatusCode::SERVICE_UNAVAILABLE))
            .route("/missing", status(MISSING, StatusCode::NOT_FOUND))
            .route("/forbidden", status(FORBIDDEN, StatusCode::FORBIDDEN))
            .route("/big", get(|| async { vec![b'x'; 4096] }));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await });
        (format!("http://{addr}"), hits)
    }

    /// A server that resets every connection as soon as the request arrives.
    async fn resetting(hits: Hits) -> String {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            while let Ok((mut sock, _)) = listener.accept().await {
                hits.hit(RESET);
                let mut buf = [0u8; 1024];
                let _ = tokio::io::AsyncReadExt::read(&mut sock, &mut buf).await;
                // Linger 0: close with RST rather than FIN.
                let _ = sock.set_zero_linger();
                drop(sock);
            }
        });
        format!("http://{addr}/file")
    }

    /// The node's default policy (4 attempts, 500 ms first back-off) with a 1 KiB size cap;
    /// waits are recorded, not slept.
    fn cx(staging: &std::path::Path) -> InputContext {
        InputContext {
            staging: staging.to_path_buf(),
            allowed: vec![],
            policy: TransferPolicy {
                max_bytes: 1024,
                ..TransferPolicy::default()
            },
            http: reqwest::Client::new(),
            pause: Pause::recording(),
        }
    }

    fn input(url: &str, target: &str) -> InputSource {
        InputSource {
            source: shoal_types::SpecConfig {
                kind: "urlDownload".into(),
                params: serde_json::json!({ "URL": url })
                    .as_object()
                    .unwrap()
                    .clone(),
            },
            alias: String::new(),
            target: target.into(),
        }
    }

    fn ms(v: &[u64]) -> Vec<Duration> {
        v.iter().map(|m| Duration::from_millis(*m)).collect()
    }

    #[tokio::test]
    async fn a_503_is_retried_on_the_default_schedule_and_the_file_staged_at_its_target_name() {
        let (base, hits) = server().await;
        let dir = tempfile::tempdir().unwrap();
        let cx = cx(dir.path());
        let p = stage(0, &input(&format!("{base}/flaky"), "/inputs/data.txt"), &cx)
            .await
            .unwrap();
        assert_eq!(hits.of(FLAKY), 3);
        assert_eq!(cx.pause.waits(), ms(&[500, 1000]));
        assert_eq!(p.host_path.file_name().unwrap(), "data.txt");
        assert_eq!(std::fs::read_to_string(&p.host_path).unwrap(), "payload");
        assert_eq!(p.target, "/inputs/data.txt");
    }

    #[tokio::test]
    async fn a_server_that_stays_down_is_tried_four_times_then_reported_as_transient() {
        let (base, hits) = server().await;
        let dir = tempfile::tempdir().unwrap();
        let cx = cx(dir.path());
        let url = format!("{base}/down");
        let err = stage(0, &input(&url, "/inputs/x"), &cx).await.unwrap_err();
        assert_eq!(hits.of(DOWN), 4);
        assert_eq!(cx.pause.waits(), ms(&[500, 1000, 2000]));
        assert!(matches!(err, InputError::Transient(_)), "{err}");
        let text = err.to_string();
        assert!(
            text.contains(&url) && text.contains("503") && text.contains("gave up after 4"),
            "{text}"
        );
    }

    #[tokio::test]
    async fn a_404_and_a_403_are_asked_once_and_the_error_names_the_url() {
        let (base, hits) = server().await;
        for (route, path, code) in [(MISSING, "missing", "404"), (FORBIDDEN, "forbidden", "403")] {
            let dir = tempfile::tempdir().unwrap();
            let cx = cx(dir.path());
            let url = format!("{base}/{path}");
            let err = stage(0, &input(&url, "/inputs/x"), &cx).await.unwrap_err();
            assert_eq!(hits.of(route), 1, "{path} was retried");
            assert_eq!(cx.pause.waits(), vec![]);
            assert!(matches!(err, InputError::User(_)), "{err}");
            let text = err.to_string();
            assert!(
                text.contains(&url) && text.contains(code) && text.contains("check the URL"),
                "{text}"
            );
        }
    }

    #[tokio::test]
    async fn a_reset_connection_is_retried() {
        let hits = Hits::default();
        let url = resetting(hits.clone()).await;
        let dir = tempfile::tempdir().unwrap();
        let cx = cx(dir.path());
        let err = stage(0, &input(&url, "/inputs/f"), &cx).await.unwrap_err();
        assert_eq!(hits.of(RESET), 4);
        assert_eq!(cx.pause.waits(), ms(&[500, 1000, 2000]));
        assert!(matches!(err, InputError::Transient(_)), "{err}");
        assert!(err.to_string().contains(&url), "{err}");
    }

    #[tokio::test]
    async fn an_unreachable_url_is_transient_and_named_after_the_retries() {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let dir = tempfile::tempdir().unwrap();
        let cx = cx(dir.path());
        let url = format!("http://127.0.0.1:{port}/f");
        let err = stage(0, &input(&url, "/inputs/f"), &cx).await.unwrap_err();
        assert!(matches!(err, InputError::Transient(_)), "{err}");
        let text = err.to_string();
        assert!(
            text.contains(&url) && text.contains("gave up after 4 attempts"),
            "{text}"
        );
        assert_eq!(cx.pause.waits(), ms(&[500, 1000, 2000]));
    }

    #[tokio::test]
    async fn downloads_larger_than_the_cap_are_refused_without_retrying() {
        let (base, _) = server().await;
        let dir = tempfile::tempdir().unwrap();
        let cx = cx(dir.path());
        let err = stage(0, &input(&format!("{base}/big"), "/inputs/b"), &cx)
            .await
            .unwrap_err();
        assert!(
            err.to_string().contains("download limit of 1024 bytes"),
            "{err}"
        );
        assert_eq!(cx.pause.waits(), vec![]);
    }

    #[tokio::test]
    async fn a_wrong_checksum_fails_naming_both_digests() {
        let (base, _) = server().await;
        let dir = tempfile::tempdir().unwrap();
        let mut i = input(&format!("{base}/flaky"), "/inputs/d");
        i.source
            .params
            .insert("ChecksumSHA256".into(), serde_json::json!("00ff"));
        let err = stage(0, &i, &cx(dir.path())).await.unwrap_err().to_string();
        assert!(err.contains("the job expects 00ff"), "{err}");
    }
}
