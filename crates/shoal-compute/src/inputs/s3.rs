//! `s3` inputs: one object, or every object under a prefix (optionally filtered by a regular
//! expression), from AWS S3 or any S3-compatible server (`Endpoint`).
//!
//! Credentials come from the standard chain: `AWS_ACCESS_KEY_ID`/`AWS_SECRET_ACCESS_KEY`
//! (and `AWS_SESSION_TOKEN`) in the agent's environment, else the shared credentials file
//! (`AWS_SHARED_CREDENTIALS_FILE`, default `~/.aws/credentials`, profile `AWS_PROFILE` or
//! `default`), else the instance's metadata service. Transient errors (connection failures,
//! timeouts, 408, 429, 5xx) are retried by the agent's one retry helper ([`super::retry`]), so
//! S3 and URL inputs follow the same schedule; a missing key or bucket and refused
//! credentials fail at once with a message naming bucket, key and endpoint.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::retry::{Retryable, with_backoff};
use super::spool::Spool;
use super::{InputContext, InputError, checksum_matches, file_slot};
use crate::config::TransferPolicy;
use futures::StreamExt;
use object_store::aws::{AmazonS3, AmazonS3Builder};
use object_store::path::Path as ObjectPath;
use object_store::{BackoffConfig, ClientOptions, GetOptions, ObjectStore, RetryConfig};
use sha2::{Digest, Sha256};
use shoal_executors::PreparedInput;
use shoal_types::InputSource;

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

    /// An S3 client for the bucket, with the agent's credential chain; each request is
    /// retried on transient errors as `policy` says (object_store's own retry, which suits
    /// the parts of multipart uploads). Every attempt is limited to `policy.timeout`.
    pub fn client(&self, policy: &TransferPolicy) -> Result<Arc<AmazonS3>, String> {
        self.build(
            policy,
            RetryConfig {
                backoff: BackoffConfig {
                    init_backoff: policy.backoff,
                    ..BackoffConfig::default()
                },
                max_retries: policy.attempts.saturating_sub(1) as usize,
                retry_timeout: policy.timeout,
            },
        )
    }

    /// A client that makes one attempt per request: the caller retries whole transfers with
    /// [`with_backoff`].
    fn single_attempt_client(&self, policy: &TransferPolicy) -> Result<Arc<AmazonS3>, String> {
        self.build(
            policy,
            RetryConfig {
                max_retries: 0,
                ..RetryConfig::default()
            },
        )
    }

    fn build(&self, policy: &TransferPolicy, retry: RetryConfig) -> Result<Arc<AmazonS3>, String> {
        // object_store's default limits a whole request, body included, to 30 s, which a large
        // object cannot meet; the node's per-attempt limit applies instead. Client options
        // come first: the builder calls below adjust them.
        let mut b = AmazonS3Builder::from_env()
            .with_client_options(ClientOptions::new().with_timeout(policy.timeout))
            .with_bucket_name(&self.bucket)
            .with_retry(retry);
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
                "cannot configure an S3 client for {}: {e}; check the Endpoint and Region",
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

/// Where to look when credentials are refused, for messages.
const CHECK_CREDENTIALS: &str = "check the node's AWS credentials (AWS_ACCESS_KEY_ID and \
     AWS_SECRET_ACCESS_KEY in the agent's environment, or the profile in ~/.aws/credentials) \
     and that the Endpoint is the server they belong to";

/// The S3 error code and message of an error answer (`<Code>…</Code>`, `<Message>…</Message>`),
/// when the server sent one.
fn s3_error(text: &str) -> Option<(String, String)> {
    let tag = |t: &str| {
        let open = format!("<{t}>");
        let start = text.find(&open)? + open.len();
        let end = text[start..].find(&format!("</{t}>"))? + start;
        Some(text[start..end].trim().to_string())
    };
    let code = tag("Code")?;
    Some((code, tag("Message").unwrap_or_default()))
}

/// Classifies an S3 error for `what` (`s3 input T: s3://bucket/key (endpoint E, region R)`):
/// a missing bucket or key and refused credentials are the job's or the node's setup and
/// are not retried; the rest (server errors, timeouts, broken connections) may pass.
pub(crate) fn classify(e: &object_store::Error, what: &str) -> InputError {
    let chain = super::url::error_chain(e);
    let code = s3_error(&chain);
    let said = |code: &(String, String)| {
        if code.1.is_empty() {
            code.0.clone()
        } else {
            format!("{}: {}", code.0, code.1.trim_end_matches('.'))
        }
    };
    match e {
        object_store::Error::NotFound { .. } => {
            return match code.as_ref().map(|c| c.0.as_str()) {
                Some("NoSuchBucket") => InputError::User(format!(
                    "{what}: the bucket does not exist at this endpoint (NoSuchBucket); check \
                     the bucket name, the Endpoint and the Region"
                )),
                _ => InputError::User(format!(
                    "{what}: no such key (NoSuchKey); check the key (keys are case-sensitive), \
                     the bucket and the Endpoint"
                )),
            };
        }
        object_store::Error::PermissionDenied { .. }
        | object_store::Error::Unauthenticated { .. } => {
            let why = match code.as_ref().map(|c| c.0.as_str()) {
                Some("InvalidAccessKeyId") => {
                    "the S3 server refused the credentials: it does not know this node's access key ID"
                }
                Some("SignatureDoesNotMatch") => {
                    "the S3 server refused the credentials: the secret access key does not match the access key ID"
                }
                Some("ExpiredToken" | "InvalidToken") => {
                    "the S3 server refused the credentials: the session token has expired or is invalid"
                }
                Some("AccessDenied") => {
                    "the S3 server accepted the credentials but denies them this bucket or key; grant them access, or"
                }
                _ => "the S3 server refused the credentials",
            };
            let detail = code
                .as_ref()
                .map(|c| format!(" ({})", said(c)))
                .unwrap_or_default();
            return InputError::User(format!("{what}: {why}{detail}; {CHECK_CREDENTIALS}"));
        }
        _ => {}
    }
    // Without keys in the environment or a profile, the chain asks the instance metadata
    // service; off EC2 that fails. Another node may be configured with credentials.
    if chain.contains("169.254.169.254") {
        return InputError::Missing(format!(
            "{what}: this node has no AWS credentials: none in its environment or \
             ~/.aws/credentials, and the instance metadata service (169.254.169.254) gave none; \
             {CHECK_CREDENTIALS}"
        ));
    }
    if chain.to_ascii_lowercase().contains("credential") {
        return InputError::Missing(format!(
            "{what}: this node could not load AWS credentials ({chain}); {CHECK_CREDENTIALS}"
        ));
    }
    let status = chain
        .split("status code: ")
        .nth(1)
        .and_then(|s| s.split(':').next())
        .map(str::trim);
    InputError::Transient(match (status, &code) {
        (Some(status), Some(c)) => format!("{what}: the S3 server answered {status} ({})", said(c)),
        (Some(status), None) => format!("{what}: the S3 server answered {status}"),
        _ => format!("{what}: {chain}"),
    })
}

/// How fetching one object failed: not there (so the key may name a folder), or otherwise.
#[derive(Debug)]
enum FetchError {
    NotFound(InputError),
    Failed(InputError),
}

impl FetchError {
    fn from_store(e: &object_store::Error, what: &str) -> Self {
        let err = classify(e, what);
        let no_such_key = matches!(e, object_store::Error::NotFound { .. })
            && !err.to_string().contains("NoSuchBucket");
        if no_such_key {
            FetchError::NotFound(err)
        } else {
            FetchError::Failed(err)
        }
    }

    fn into_inner(self) -> InputError {
        match self {
            FetchError::NotFound(e) | FetchError::Failed(e) => e,
        }
    }
}

impl std::fmt::Display for FetchError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            FetchError::NotFound(e) | FetchError::Failed(e) => e.fmt(f),
        }
    }
}

impl Retryable for FetchError {
    fn is_transient(&self) -> bool {
        matches!(self, FetchError::Failed(e) if e.is_transient())
    }

    fn gave_up(self, attempts: u32) -> Self {
        match self {
            FetchError::Failed(e) => FetchError::Failed(e.gave_up(attempts)),
            other => other,
        }
    }
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
    let store = loc
        .single_attempt_client(&cx.policy)
        .map_err(InputError::User)?;
    let what = format!("s3 input {}: {}", input.target, loc.describe(&key));
    let mut missing_key = false;
    if !key.is_empty() && !key.ends_with('/') {
        let path = file_slot(i, &input.target, leaf(&key), &cx.staging)?;
        let version = p("VersionID").map(str::to_string);
        let want = p("ChecksumSHA256");
        let fetched = with_backoff(&cx.policy, &cx.pause, |_| {
            let opts = GetOptions {
                version: version.clone(),
                ..GetOptions::default()
            };
            fetch(&store, &key, opts, &path, &cx.policy, want.is_some(), &what)
        })
        .await;
        match fetched {
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
            Err(FetchError::NotFound(_)) => {
                let _ = tokio::fs::remove_dir_all(path.parent().unwrap_or(&path)).await;
                missing_key = true;
            }
            Err(e) => return Err(e.into_inner()),
        }
    }
    let prefix = if key.is_empty() || key.ends_with('/') {
        key.clone()
    } else {
        format!("{key}/")
    };
    let dir = cx.staging.join(i.to_string());
    let objects = with_backoff(&cx.policy, &cx.pause, |_| async {
        store
            .list(Some(&ObjectPath::from(prefix.as_str())))
            .collect::<Vec<_>>()
            .await
            .into_iter()
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| classify(&e, &what))
    })
    .await?;
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
        with_backoff(&cx.policy, &cx.pause, |_| {
            fetch(
                &store,
                &name,
                GetOptions::default(),
                &dest,
                &cx.policy,
                false,
                &one,
            )
        })
        .await
        .map_err(FetchError::into_inner)?;
        count += 1;
    }
    if count == 0 {
        if missing_key {
            return Err(InputError::User(format!(
                "{what}: no such key (NoSuchKey), and no objects under {prefix}; check the key \
                 (keys are case-sensitive), the bucket and the Endpoint"
            )));
        }
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
async fn fetch(
    store: &AmazonS3,
    key: &str,
    opts: GetOptions,
    dest: &Path,
    policy: &TransferPolicy,
    hash: bool,
    what: &str,
) -> Result<Option<[u8; 32]>, FetchError> {
    let failed = |e: InputError| FetchError::Failed(e);
    let got = store
        .get_opts(&ObjectPath::from(key), opts)
        .await
        .map_err(|e| FetchError::from_store(&e, what))?;
    let cap = policy.max_bytes;
    if got.meta.size > cap {
        return Err(failed(InputError::User(format!(
            "{what}: {} bytes is more than this node's download limit of {cap} bytes",
            got.meta.size
        ))));
    }
    let io = |verb: &str, e: std::io::Error| {
        failed(InputError::Io(format!(
            "cannot {verb} {}: {e}",
            dest.display()
        )))
    };
    let mut file = Spool::create(dest).await.map_err(|e| io("create", e))?;
    let mut hasher = hash.then(Sha256::new);
    let mut body = got.into_stream();
    while let Some(chunk) = body.next().await {
        let chunk = chunk.map_err(|e| failed(classify(&e, what)))?;
        if let Some(h) = hasher.as_mut() {
            h.update(&chunk);
        }
        file.write(chunk).await.map_err(|e| io("write", e))?;
    }
    file.finish().await.map_err(|e| io("write", e))?;
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

/// Against a real S3-compatible server: `moto_server`, started on a free port of 127.0.0.1 by
/// the shared helper of `shoal-testkit` (included by path: that crate depends on this one).
#[cfg(test)]
#[path = "../../../shoal-testkit/src/moto.rs"]
#[allow(dead_code)]
mod moto_server;

#[cfg(test)]
mod moto {
    use std::sync::atomic::{AtomicU32, Ordering};
    use std::time::Duration;

    use super::moto_server::{AccessKey, Moto};
    use super::*;
    use crate::inputs::retry::Pause;

    /// The credential chain reads the process environment, so tests that set it take turns
    /// (nextest runs each test in its own process; `cargo test` runs them on threads).
    static ENV: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

    fn use_key(key: &AccessKey) {
        for (k, v) in key.env() {
            // SAFETY: callers hold `ENV`, and nothing else in this test process reads or
            // writes the environment meanwhile.
            unsafe { std::env::set_var(k, v) };
        }
    }

    /// Stages one s3 input that must fail, and returns its error.
    async fn stage_err(
        endpoint: &str,
        params: serde_json::Value,
        target: &str,
        cx: &InputContext,
    ) -> InputError {
        stage(0, &input(endpoint, params, target), cx)
            .await
            .expect_err("staging was expected to fail")
    }

    fn input(endpoint: &str, params: serde_json::Value, target: &str) -> InputSource {
        let mut p = params.as_object().unwrap().clone();
        p.insert("Endpoint".into(), serde_json::json!(endpoint));
        InputSource {
            source: shoal_types::SpecConfig {
                kind: "s3".into(),
                params: p,
            },
            alias: String::new(),
            target: target.into(),
        }
    }

    /// The node's default transfer policy; waits are recorded, not slept.
    fn cx(dir: &Path) -> InputContext {
        InputContext {
            staging: dir.to_path_buf(),
            allowed: vec![],
            policy: TransferPolicy::default(),
            http: reqwest::Client::new(),
            pause: Pause::recording(),
        }
    }

    #[tokio::test]
    async fn s3_objects_and_filtered_prefixes_are_staged() {
        let _env = ENV.lock().await;
        let Some(moto) = Moto::start() else { return };
        use_key(&moto.key);
        moto.create_bucket("data");
        for (k, v) in [
            ("set/a.csv", "1,2"),
            ("set/b.csv", "3,4"),
            ("set/n.txt", "x"),
        ] {
            moto.put("data", k, v.as_bytes());
        }
        let dir = tempfile::tempdir().unwrap();
        let one = stage(
            0,
            &input(
                &moto.endpoint,
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
                &moto.endpoint,
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
        let _env = ENV.lock().await;
        let Some(moto) = Moto::start() else { return };
        use_key(&moto.key);
        moto.create_bucket("data");
        let dir = tempfile::tempdir().unwrap();
        let cx = cx(dir.path());
        let err = stage_err(
            &moto.endpoint,
            serde_json::json!({"Bucket": "data", "Key": "nope.csv"}),
            "/inputs/x",
            &cx,
        )
        .await;
        assert!(matches!(err, InputError::User(_)), "{err}");
        let text = err.to_string();
        assert!(
            text.contains("s3://data/nope.csv")
                && text.contains(&moto.endpoint)
                && text.contains("NoSuchKey"),
            "{text}"
        );
        assert_eq!(cx.pause.waits(), vec![], "a missing key was retried");
    }

    #[tokio::test]
    async fn a_missing_bucket_is_named_as_such_and_not_retried() {
        let _env = ENV.lock().await;
        let Some(moto) = Moto::start() else { return };
        use_key(&moto.key);
        let dir = tempfile::tempdir().unwrap();
        let cx = cx(dir.path());
        let err = stage_err(
            &moto.endpoint,
            serde_json::json!({"Bucket": "nobucket", "Key": "k.csv"}),
            "/inputs/k.csv",
            &cx,
        )
        .await;
        assert!(matches!(err, InputError::User(_)), "{err}");
        let text = err.to_string();
        assert!(
            text.contains("s3://nobucket/k.csv") && text.contains("NoSuchBucket"),
            "{text}"
        );
        assert_eq!(cx.pause.waits(), vec![]);
    }

    #[tokio::test]
    async fn refused_credentials_fail_at_once_saying_what_to_check() {
        let _env = ENV.lock().await;
        let Some(moto) = Moto::start_with_auth(&["private"]) else {
            return;
        };
        let good = moto.key.clone();
        use_key(&good);
        let loc = S3Location {
            bucket: "private".into(),
            endpoint: Some(moto.endpoint.clone()),
            region: None,
        };
        object_store::ObjectStoreExt::put(
            &*loc.client(&TransferPolicy::default()).unwrap(),
            &ObjectPath::from("in.csv"),
            object_store::PutPayload::from("1,2"),
        )
        .await
        .unwrap();
        let job_input = input(
            &moto.endpoint,
            serde_json::json!({"Bucket": "private", "Key": "in.csv"}),
            "/inputs/in.csv",
        );
        let dir = tempfile::tempdir().unwrap();
        // The right key reads the object: the server checks credentials, not anything else.
        let staged = stage(0, &job_input, &cx(dir.path())).await.unwrap();
        assert_eq!(std::fs::read_to_string(staged.host_path).unwrap(), "1,2");

        for (key, code) in [
            (
                AccessKey {
                    id: "AKIAUNKNOWN0000000000".into(),
                    secret: good.secret.clone(),
                },
                "InvalidAccessKeyId",
            ),
            (
                AccessKey {
                    id: good.id.clone(),
                    secret: "not-the-secret".into(),
                },
                "SignatureDoesNotMatch",
            ),
        ] {
            use_key(&key);
            let cx = cx(dir.path());
            let err = stage(1, &job_input, &cx).await.unwrap_err();
            assert!(matches!(err, InputError::User(_)), "{err}");
            let text = err.to_string();
            for part in [
                "s3://private/in.csv",
                moto.endpoint.as_str(),
                "refused the credentials",
                code,
                "AWS_ACCESS_KEY_ID",
            ] {
                assert!(text.contains(part), "no {part:?} in: {text}");
            }
            assert!(!text.contains("<?xml"), "an XML dump: {text}");
            assert_eq!(cx.pause.waits(), vec![], "refused credentials were retried");
        }
    }

    /// An S3-compatible server that is down for maintenance: every request gets 503 SlowDown.
    async fn unavailable() -> (String, Arc<AtomicU32>) {
        let hits = Arc::new(AtomicU32::new(0));
        let h = hits.clone();
        let app = axum::Router::new().fallback(move || {
            let h = h.clone();
            async move {
                h.fetch_add(1, Ordering::SeqCst);
                (
                    axum::http::StatusCode::SERVICE_UNAVAILABLE,
                    "<?xml version=\"1.0\"?><Error><Code>SlowDown</Code><Message>Please reduce your request rate.</Message></Error>",
                )
            }
        });
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await });
        (format!("http://{addr}"), hits)
    }

    #[tokio::test]
    async fn server_errors_are_retried_on_the_nodes_schedule_then_reported_as_transient() {
        let _env = ENV.lock().await;
        use_key(&AccessKey {
            id: "testing".into(),
            secret: "testing".into(),
        });
        let (endpoint, hits) = unavailable().await;
        let dir = tempfile::tempdir().unwrap();
        let cx = cx(dir.path());
        let err = stage_err(
            &endpoint,
            serde_json::json!({"Bucket": "data", "Key": "a.csv"}),
            "/inputs/a.csv",
            &cx,
        )
        .await;
        assert!(matches!(err, InputError::Transient(_)), "{err}");
        assert_eq!(hits.load(Ordering::SeqCst), 4, "one request per attempt");
        assert_eq!(
            cx.pause.waits(),
            [500, 1000, 2000].map(Duration::from_millis).to_vec()
        );
        let text = err.to_string();
        assert!(
            text.contains("s3://data/a.csv")
                && text.contains("503")
                && text.contains("SlowDown")
                && text.contains("gave up after 4 attempts"),
            "{text}"
        );
    }
}
