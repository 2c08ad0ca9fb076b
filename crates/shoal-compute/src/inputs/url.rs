//! `urlDownload` inputs: one HTTP(S) file, streamed to disk, with a size cap, an optional
//! SHA-256 check, and retries on transient errors (connection failures, timeouts, 408, 429,
//! 5xx). A 4xx answer is permanent: retrying would get the same answer.

use futures::StreamExt;
use sha2::{Digest, Sha256};
use shoal_executors::PreparedInput;
use shoal_types::InputSource;
use tokio::io::AsyncWriteExt;

use super::retry::{Failure, with_backoff};
use super::{InputContext, InputError, checksum_matches, file_slot};

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
    let result = with_backoff(policy, |_| {
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
    let mut file = tokio::fs::File::create(path)
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
        file.write_all(&chunk)
            .await
            .map_err(|e| Failure::permanent(format!("cannot write {}: {e}", path.display())))?;
    }
    file.flush()
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
        "{url} is larger than this node's download limit of {cap} bytes; raise --max-download-bytes on the node or fetch less"
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

    /// A real HTTP server on 127.0.0.1: `/flaky` answers 500 once then the file, `/missing`
    /// 404, `/big` more than the test's size cap. Returns its base URL and the hit counters.
    async fn server() -> (String, Arc<AtomicU32>, Arc<AtomicU32>) {
        let flaky = Arc::new(AtomicU32::new(0));
        let missing = Arc::new(AtomicU32::new(0));
        let (f, m) = (flaky.clone(), missing.clone());
        let app = Router::new()
            .route(
                "/flaky",
                get(move || {
                    let f = f.clone();
                    async move {
                        if f.fetch_add(1, Ordering::SeqCst) == 0 {
                            (StatusCode::INTERNAL_SERVER_ERROR, "try later")
                        } else {
                            (StatusCode::OK, "payload")
                        }
                    }
                }),
            )
            .route(
                "/missing",
                get(move || {
                    let m = m.clone();
                    async move {
                        m.fetch_add(1, Ordering::SeqCst);
                        (StatusCode::NOT_FOUND, "no")
                    }
                }),
            )
            .route("/big", get(|| async { vec![b'x'; 4096] }));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await });
        (format!("http://{addr}"), flaky, missing)
    }

    fn cx(staging: &std::path::Path) -> InputContext {
        InputContext {
            staging: staging.to_path_buf(),
            allowed: vec![],
            policy: TransferPolicy {
                max_bytes: 1024,
                attempts: 3,
                backoff: Duration::from_millis(1),
                timeout: Duration::from_secs(10),
            },
            http: reqwest::Client::new(),
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

    #[tokio::test]
    async fn a_500_then_200_is_retried_and_the_file_staged_at_its_target_name() {
        let (base, flaky, _) = server().await;
        let dir = tempfile::tempdir().unwrap();
        let p = stage(
            0,
            &input(&format!("{base}/flaky"), "/inputs/data.txt"),
            &cx(dir.path()),
        )
        .await
        .unwrap();
        assert_eq!(flaky.load(Ordering::SeqCst), 2);
        assert_eq!(p.host_path.file_name().unwrap(), "data.txt");
        assert_eq!(std::fs::read_to_string(&p.host_path).unwrap(), "payload");
        assert_eq!(p.target, "/inputs/data.txt");
    }

    #[tokio::test]
    async fn a_404_is_not_retried_and_the_error_names_the_url() {
        let (base, _, missing) = server().await;
        let dir = tempfile::tempdir().unwrap();
        let url = format!("{base}/missing");
        let err = stage(0, &input(&url, "/inputs/x"), &cx(dir.path()))
            .await
            .unwrap_err();
        assert_eq!(missing.load(Ordering::SeqCst), 1);
        assert!(matches!(err, InputError::User(_)), "{err}");
        assert!(
            err.to_string().contains(&url) && err.to_string().contains("404"),
            "{err}"
        );
    }

    #[tokio::test]
    async fn an_unreachable_url_is_transient_and_named_after_the_retries() {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let dir = tempfile::tempdir().unwrap();
        let url = format!("http://127.0.0.1:{port}/f");
        let err = stage(0, &input(&url, "/inputs/f"), &cx(dir.path()))
            .await
            .unwrap_err();
        assert!(matches!(err, InputError::Transient(_)), "{err}");
        let text = err.to_string();
        assert!(
            text.contains(&url) && text.contains("gave up after 3 attempts"),
            "{text}"
        );
    }

    #[tokio::test]
    async fn downloads_larger_than_the_cap_are_refused() {
        let (base, _, _) = server().await;
        let dir = tempfile::tempdir().unwrap();
        let err = stage(
            0,
            &input(&format!("{base}/big"), "/inputs/b"),
            &cx(dir.path()),
        )
        .await
        .unwrap_err();
        assert!(
            err.to_string().contains("download limit of 1024 bytes"),
            "{err}"
        );
    }

    #[tokio::test]
    async fn a_wrong_checksum_fails_naming_both_digests() {
        let (base, _, _) = server().await;
        let dir = tempfile::tempdir().unwrap();
        let mut i = input(&format!("{base}/flaky"), "/inputs/d");
        i.source
            .params
            .insert("ChecksumSHA256".into(), serde_json::json!("00ff"));
        let err = stage(0, &i, &cx(dir.path())).await.unwrap_err().to_string();
        assert!(err.contains("the job expects 00ff"), "{err}");
    }
}
