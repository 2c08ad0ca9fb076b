//! `s3` inputs: one object, or every object under a prefix (optionally filtered by a regular
//! expression), from AWS S3 or any S3-compatible server (`Endpoint`).
//!
//! Credentials come from the standard chain: `AWS_ACCESS_KEY_ID`/`AWS_SECRET_ACCESS_KEY`
//! (and `AWS_SESSION_TOKEN`) in the agent's environment, else the shared credentials file
//! (`AWS_SHARED_CREDENTIALS_FILE`, default `~/.aws/credentials`, profile `AWS_PROFILE` or
//! `default`), else the instance's metadata service. Transient errors (connection failures,
//! 5xx) are retried by the S3 client with exponential back-off; a missing key or refused
//! credentials fail at once with a message naming bucket, key and endpoint.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use futures::StreamExt;
use object_store::aws::{AmazonS3, AmazonS3Builder};
use object_store::path::Path as ObjectPath;
use object_store::{BackoffConfig, GetOptions, ObjectStore, RetryConfig};
use sha2::{Digest, Sha256};
use shoal_executors::PreparedInput;
use shoal_types::InputSource;
use tokio::io::AsyncWriteExt;

use super::{InputContext, InputError, checksum_matches, file_slot};
use crate::config::TransferPolicy;

/// Where an S3 bucket lives, as a job names it. Also used by the CLI to fetch results
/// published to S3, with the same credential chain.
#[derive(Debug, Clone)]
pub struct S3Location {
    /// The bucket.
    pub bucket: String,
    /// An S3-compatible server's URL; AWS when `None`.
    pub endpoint: Option<String>,
    /// The region; `us-east-1` (or `AWS_REGION`) when `None`.
    pub region: Option<String>,
}

impl S3Location {
    /// `s3://bucket/key (endpoint E, region R)` for messages.
    pub fn describe(&self, key: &str) -> String {
        format!(
            "s3://{}/{key} (endpoint {}, region {})",
            self.bucket,
            self.endpoint.as_deref().unwrap_or("AWS default"),
            self.region.as_deref().unwrap_or("us-east-1")
        )
    }

    /// An S3 client for the bucket, with the agent's credential chain and retry policy.
    pub fn client(&self, policy: &TransferPolicy) -> Result<Arc<AmazonS3>, String> {
        let mut b = AmazonS3Builder::from_env()
            .with_bucket_name(&self.bucket)
            .with_retry(RetryConfig {
                backoff: BackoffConfig {
                    init_backoff: policy.backoff,
                    ..BackoffConfig::default()
                },
                max_retries: policy.attempts.saturating_sub(1) as usize,
                retry_timeout: policy.timeout,
            });
        if std::env::var_os("AWS_ACCESS_KEY_ID").is_none()
            && let Some((id, secret, token)) = profile_credentials()
        {
            b = b.with_access_key_id(id).with_secret_access_key(secret);
            if let Some(t) = token {
                b = b.with_token(t);
            }
        }
        if let Some(region) = &self.region {
            b = b.with_region(region);
        } else if std::env::var_os("AWS_REGION").is_none()
            && std::env::var_os("AWS_DEFAULT_REGION").is_none()
        {
            b = b.with_region("us-east-1");
        }
        if let Some(ep) = &self.endpoint {
            b = b
                .with_endpoint(ep)
                .with_allow_http(ep.starts_with("http://"))
                .with_virtual_hosted_style_request(false);
        }
        b.build().map(Arc::new).map_err(|e| {
            format!(
                "cannot configure an S3 client for {}: {e}",
                self.describe("")
            )
        })
    }
}

/// Reads `[profile]` from the shared credentials file, if there is one.
fn profile_credentials() -> Option<(String, String, Option<String>)> {
    let file = std::env::var_os("AWS_SHARED_CREDENTIALS_FILE")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| Path::new(&h).join(".aws/credentials")))?;
    let text = std::fs::read_to_string(file).ok()?;
    let profile = std::env::var("AWS_PROFILE").unwrap_or_else(|_| "default".into());
    parse_profile(&text, &profile)
}

fn parse_profile(text: &str, profile: &str) -> Option<(String, String, Option<String>)> {
    let (mut id, mut secret, mut token) = (None, None, None);
    let mut in_profile = false;
    for line in text.lines().map(str::trim) {
        if let Some(name) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
            in_profile = name.trim() == profile;
        } else if in_profile && let Some((k, v)) = line.split_once('=') {
            let v = v.trim().to_string();
            match k.trim() {
                "aws_access_key_id" => id = Some(v),
                "aws_secret_access_key" => secret = Some(v),
                "aws_session_token" => token = Some(v),
                _ => {}
            }
        }
    }
    Some((id?, secret?, token))
}

/// Classifies an S3 error: not found and refused credentials are permanent, the rest (the
/// client already retried them) may pass on another node or later.
pub(crate) fn classify(e: &object_store::Error, what: &str) -> InputError {
    let text = super::url::error_chain(e);
    if matches!(e, object_store::Error::NotFound { .. }) {
        return InputError::User(format!(
            "{what} not found; check the bucket, the key and the endpoint"
        ));
    }
    let lower = text.to_ascii_lowercase();
    let refused = [
        "403",
        "forbidden",
        "accessdenied",
        "invalidaccesskeyid",
        "signaturedoesnotmatch",
        "nosuchbucket",
        "credential",
    ];
    if refused.iter().any(|r| lower.contains(r)) {
        return InputError::User(format!(
            "{what}: the S3 server refused the request ({text}); check the node's AWS credentials (AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY or ~/.aws/credentials) and the bucket"
        ));
    }
    InputError::Transient(format!("{what}: {text}"))
}

pub(super) async fn stage(
    i: usize,
    input: &InputSource,
    cx: &InputContext,
) -> Result<PreparedInput, InputError> {
    let p = |k: &str| input.source.str_param(k).filter(|v| !v.is_empty());
    let bucket = p("Bucket").ok_or_else(|| {
        InputError::User(format!(
            "s3 input {}: Params.Bucket is required",
            input.target
        ))
    })?;
    let loc = S3Location {
        bucket: bucket.to_string(),
        endpoint: p("Endpoint").map(str::to_string),
        region: p("Region").map(str::to_string),
    };
    let key = p("Key").unwrap_or("").to_string();
    let filter = match p("Filter") {
        Some(f) => Some(regex::Regex::new(f).map_err(|e| {
            InputError::User(format!(
                "s3 input {}: Filter {f:?} is not a regular expression: {e}",
                input.target
            ))
        })?),
        None => None,
    };
    let store = loc.client(&cx.policy).map_err(InputError::User)?;
    let what = format!("s3 input {}: {}", input.target, loc.describe(&key));
    if !key.is_empty() && !key.ends_with('/') {
        let path = file_slot(i, &input.target, leaf(&key), &cx.staging)?;
        let opts = GetOptions {
            version: p("VersionID").map(str::to_string),
            ..GetOptions::default()
        };
        let want = p("ChecksumSHA256");
        match fetch(
            &store,
            &key,
            opts,
            &path,
            cx.policy.max_bytes,
            want.is_some(),
            &what,
        )
        .await
        {
            Ok(digest) => {
                if let (Some(want), Some(digest)) = (want, digest)
                    && !checksum_matches(want, &digest)
                {
                    return Err(InputError::User(format!(
                        "{what}: SHA-256 is {}, the job expects {want}",
                        hex::encode(digest)
                    )));
                }
                return Ok(PreparedInput {
                    host_path: path,
                    target: input.target.clone(),
                    read_write: false,
                });
            }
            // A key without a trailing slash may still name a "folder".
            Err(InputError::User(m)) if m.contains("not found") => {
                let _ = tokio::fs::remove_dir_all(path.parent().unwrap_or(&path)).await;
            }
            Err(e) => return Err(e),
        }
    }
    let prefix = if key.is_empty() || key.ends_with('/') {
        key.clone()
    } else {
        format!("{key}/")
    };
    let dir = cx.staging.join(i.to_string());
    let objects: Vec<_> = store
        .list(Some(&ObjectPath::from(prefix.as_str())))
        .collect::<Vec<_>>()
        .await
        .into_iter()
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| classify(&e, &what))?;
    let mut count = 0;
    let mut total = 0u64;
    for meta in objects {
        let name = meta.location.to_string();
        if filter.as_ref().is_some_and(|f| !f.is_match(&name)) {
            continue;
        }
        let rel = name.strip_prefix(&prefix).unwrap_or(&name);
        let dest = dir.join(rel);
        if !super::local::under(&dest, &dir) {
            continue;
        }
        if let Some(parent) = dest.parent() {
            tokio::fs::create_dir_all(parent)
                .await
                .map_err(|e| InputError::Io(format!("cannot create {}: {e}", parent.display())))?;
        }
        total += meta.size;
        if total > cx.policy.max_bytes {
            return Err(InputError::User(format!(
                "{what}: the objects are larger than this node's download limit of {} bytes",
                cx.policy.max_bytes
            )));
        }
        let one = format!("s3 input {}: {}", input.target, loc.describe(&name));
        fetch(
            &store,
            &name,
            GetOptions::default(),
            &dest,
            cx.policy.max_bytes,
            false,
            &one,
        )
        .await?;
        count += 1;
    }
    if count == 0 {
        return Err(InputError::User(format!(
            "{what}: no object{} under this key; check the bucket, the key and the endpoint",
            if filter.is_some() {
                " matching the Filter"
            } else {
                ""
            }
        )));
    }
    Ok(PreparedInput {
        host_path: dir,
        target: input.target.clone(),
        read_write: false,
    })
}

fn leaf(key: &str) -> &str {
    key.rsplit('/').next().unwrap_or(key)
}

/// Streams one object to `dest`, returning its SHA-256 when `hash` is set (hashing costs
/// CPU on large objects, so it is done only when the job gives a checksum).
#[allow(clippy::too_many_arguments)]
async fn fetch(
    store: &AmazonS3,
    key: &str,
    opts: GetOptions,
    dest: &Path,
    cap: u64,
    hash: bool,
    what: &str,
) -> Result<Option<[u8; 32]>, InputError> {
    let got = store
        .get_opts(&ObjectPath::from(key), opts)
        .await
        .map_err(|e| classify(&e, what))?;
    if got.meta.size > cap {
        return Err(InputError::User(format!(
            "{what}: {} bytes is more than this node's download limit of {cap} bytes",
            got.meta.size
        )));
    }
    let mut file = tokio::fs::File::create(dest)
        .await
        .map_err(|e| InputError::Io(format!("cannot create {}: {e}", dest.display())))?;
    let mut hasher = hash.then(Sha256::new);
    let mut body = got.into_stream();
    while let Some(chunk) = body.next().await {
        let chunk = chunk.map_err(|e| classify(&e, what))?;
        if let Some(h) = hasher.as_mut() {
            h.update(&chunk);
        }
        file.write_all(&chunk)
            .await
            .map_err(|e| InputError::Io(format!("cannot write {}: {e}", dest.display())))?;
    }
    file.flush()
        .await
        .map_err(|e| InputError::Io(format!("cannot write {}: {e}", dest.display())))?;
    Ok(hasher.map(|h| h.finalize().into()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn profiles_are_read_from_the_shared_credentials_file() {
        let text = "[default]\naws_access_key_id = A\naws_secret_access_key = B\n\n[other]\naws_access_key_id=C\naws_secret_access_key=D\naws_session_token=T\n";
        assert_eq!(
            parse_profile(text, "default"),
            Some(("A".into(), "B".into(), None))
        );
        assert_eq!(
            parse_profile(text, "other"),
            Some(("C".into(), "D".into(), Some("T".into())))
        );
        assert_eq!(parse_profile(text, "missing"), None);
    }
}

/// Against a real S3-compatible server: `moto_server`, started on a free port of 127.0.0.1.
#[cfg(test)]
mod moto {
    use std::process::{Child, Command, Stdio};
    use std::time::Duration;

    use object_store::{ObjectStoreExt, PutPayload};

    use super::*;

    pub(crate) struct Moto {
        child: Child,
        pub endpoint: String,
    }

    impl Drop for Moto {
        fn drop(&mut self) {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }

    /// Starts moto_server, or returns `None` (with the reason printed) when it is not
    /// installed; `.ci/run` installs it.
    pub(crate) async fn start() -> Option<Moto> {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .ok()?
            .local_addr()
            .ok()?
            .port();
        let child = match Command::new("moto_server")
            .args(["-H", "127.0.0.1", "-p", &port.to_string()])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
        {
            Ok(c) => c,
            Err(e) => {
                println!(
                    "skipped: moto_server is not installed ({e}); `pip install 'moto[server]'`"
                );
                return None;
            }
        };
        let moto = Moto {
            child,
            endpoint: format!("http://127.0.0.1:{port}"),
        };
        for _ in 0..200 {
            if tokio::net::TcpStream::connect(("127.0.0.1", port))
                .await
                .is_ok()
            {
                // SAFETY: nextest runs each test in its own process; nothing else reads the
                // environment concurrently at this point.
                unsafe {
                    std::env::set_var("AWS_ACCESS_KEY_ID", "testing");
                    std::env::set_var("AWS_SECRET_ACCESS_KEY", "testing");
                }
                return Some(moto);
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("moto_server did not start listening on port {port}");
    }

    async fn bucket(moto: &Moto, name: &str) -> Arc<AmazonS3> {
        reqwest::Client::new()
            .put(format!("{}/{name}", moto.endpoint))
            .send()
            .await
            .unwrap()
            .error_for_status()
            .unwrap();
        S3Location {
            bucket: name.into(),
            endpoint: Some(moto.endpoint.clone()),
            region: None,
        }
        .client(&TransferPolicy::default())
        .unwrap()
    }

    fn input(moto: &Moto, params: serde_json::Value, target: &str) -> InputSource {
        let mut p = params.as_object().unwrap().clone();
        p.insert("Endpoint".into(), serde_json::json!(moto.endpoint));
        InputSource {
            source: shoal_types::SpecConfig {
                kind: "s3".into(),
                params: p,
            },
            alias: String::new(),
            target: target.into(),
        }
    }

    fn cx(dir: &Path) -> InputContext {
        InputContext {
            staging: dir.to_path_buf(),
            allowed: vec![],
            policy: TransferPolicy {
                attempts: 2,
                backoff: Duration::from_millis(1),
                ..TransferPolicy::default()
            },
            http: reqwest::Client::new(),
        }
    }

    #[tokio::test]
    async fn s3_objects_and_filtered_prefixes_are_staged() {
        let Some(moto) = start().await else { return };
        let store = bucket(&moto, "data").await;
        for (k, v) in [
            ("set/a.csv", "1,2"),
            ("set/b.csv", "3,4"),
            ("set/n.txt", "x"),
        ] {
            store
                .put(&ObjectPath::from(k), PutPayload::from(v))
                .await
                .unwrap();
        }
        let dir = tempfile::tempdir().unwrap();
        let one = stage(
            0,
            &input(
                &moto,
                serde_json::json!({"Bucket": "data", "Key": "set/a.csv"}),
                "/inputs/a.csv",
            ),
            &cx(dir.path()),
        )
        .await
        .unwrap();
        assert_eq!(std::fs::read_to_string(&one.host_path).unwrap(), "1,2");
        let many = stage(
            1,
            &input(
                &moto,
                serde_json::json!({"Bucket": "data", "Key": "set/", "Filter": ".*\\.csv$"}),
                "/inputs",
            ),
            &cx(dir.path()),
        )
        .await
        .unwrap();
        assert_eq!(
            std::fs::read_to_string(many.host_path.join("b.csv")).unwrap(),
            "3,4"
        );
        assert!(
            !many.host_path.join("n.txt").exists(),
            "the Filter let n.txt through"
        );
    }

    #[tokio::test]
    async fn a_missing_key_fails_at_once_naming_bucket_key_and_endpoint() {
        let Some(moto) = start().await else { return };
        bucket(&moto, "data").await;
        let dir = tempfile::tempdir().unwrap();
        let err = stage(
            0,
            &input(
                &moto,
                serde_json::json!({"Bucket": "data", "Key": "nope.csv"}),
                "/inputs/x",
            ),
            &cx(dir.path()),
        )
        .await
        .unwrap_err();
        assert!(matches!(err, InputError::User(_)), "{err}");
        let text = err.to_string();
        assert!(
            text.contains("s3://data/nope.csv") && text.contains(&moto.endpoint),
            "{text}"
        );
    }
}
