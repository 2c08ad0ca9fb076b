//! A real S3-compatible server for tests: `moto_server` (PyPI `moto[server]`, installed by
//! `.ci/run`) on a free port of 127.0.0.1, killed when dropped.
//!
//! Without auth, moto accepts any credentials. [`Moto::start_with_auth`] makes it check them
//! the way S3 does: moto answers its first `INITIAL_NO_AUTH_ACTION_COUNT` requests without
//! authentication, which this helper spends on creating an IAM user allowed `s3:*`, its access
//! key and the buckets; every later request must be signed with that key, and a wrong key is
//! refused (`InvalidAccessKeyId`, `SignatureDoesNotMatch`).
//!
//! Std only, on purpose: `shoal-compute`'s unit tests include this file by path (they cannot
//! depend on this crate, which depends on theirs), so there is one moto helper.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// An S3 access key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccessKey {
    /// `AWS_ACCESS_KEY_ID`.
    pub id: String,
    /// `AWS_SECRET_ACCESS_KEY`.
    pub secret: String,
}

impl AccessKey {
    /// The key as the environment variables of the standard credential chain.
    pub fn env(&self) -> [(&'static str, String); 2] {
        [
            ("AWS_ACCESS_KEY_ID", self.id.clone()),
            ("AWS_SECRET_ACCESS_KEY", self.secret.clone()),
        ]
    }
}

/// A running `moto_server`.
pub struct Moto {
    child: Child,
    port: u16,
    /// `http://127.0.0.1:PORT`, the `Endpoint` of S3 inputs and publishers.
    pub endpoint: String,
    /// A key that works: any key without auth, the IAM user's key with it.
    pub key: AccessKey,
}

impl Drop for Moto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Moto {
    /// Starts moto without authentication, or returns `None` (printing why) when
    /// `moto_server` is not installed.
    pub fn start() -> Option<Moto> {
        Self::spawn(None)
    }

    /// Starts moto with authentication enforced, after creating `buckets`; the only key it
    /// then accepts is [`Moto::key`]. The plain-HTTP helpers below ([`Moto::put`],
    /// [`Moto::keys`], ...) send a placeholder signature, so they are refused on such a server.
    pub fn start_with_auth(buckets: &[&str]) -> Option<Moto> {
        // Three IAM calls and one per bucket run before authentication starts.
        let mut moto = Self::spawn(Some(3 + buckets.len()))?;
        let iam = |form: &[(&str, &str)]| {
            let body = form
                .iter()
                .map(|(k, v)| format!("{}={}", form_encode(k), form_encode(v)))
                .collect::<Vec<_>>()
                .join("&");
            // moto routes a request to a service by the credential scope of its signature.
            let (status, out) = moto.request(
                "POST",
                "/",
                "iam",
                &[("Content-Type", "application/x-www-form-urlencoded")],
                body.as_bytes(),
            );
            let out = String::from_utf8_lossy(&out).to_string();
            assert_eq!(status, 200, "moto IAM call {form:?} failed: {out}");
            out
        };
        iam(&[
            ("Action", "CreateUser"),
            ("UserName", "shoal"),
            ("Version", "2010-05-08"),
        ]);
        iam(&[
            ("Action", "PutUserPolicy"),
            ("UserName", "shoal"),
            ("PolicyName", "s3"),
            (
                "PolicyDocument",
                r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"s3:*","Resource":"*"}]}"#,
            ),
            ("Version", "2010-05-08"),
        ]);
        let created = iam(&[
            ("Action", "CreateAccessKey"),
            ("UserName", "shoal"),
            ("Version", "2010-05-08"),
        ]);
        moto.key = AccessKey {
            id: xml_values(&created, "AccessKeyId").remove(0),
            secret: xml_values(&created, "SecretAccessKey").remove(0),
        };
        for b in buckets {
            moto.create_bucket(b);
        }
        Some(moto)
    }

    fn spawn(no_auth_calls: Option<usize>) -> Option<Moto> {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .ok()?
            .local_addr()
            .ok()?
            .port();
        let mut cmd = Command::new("moto_server");
        cmd.args(["-H", "127.0.0.1", "-p", &port.to_string()])
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        if let Some(n) = no_auth_calls {
            cmd.env("INITIAL_NO_AUTH_ACTION_COUNT", n.to_string());
        }
        let child = match cmd.spawn() {
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
            port,
            endpoint: format!("http://127.0.0.1:{port}"),
            key: AccessKey {
                id: "testing".into(),
                secret: "testing".into(),
            },
        };
        // A TCP connect is not a request, so it spends none of the unauthenticated calls.
        let deadline = Instant::now() + Duration::from_secs(30);
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                Instant::now() < deadline,
                "moto_server did not start listening on port {port}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        Some(moto)
    }

    /// Creates a bucket (a server without auth, or during the unauthenticated calls).
    pub fn create_bucket(&self, bucket: &str) {
        let (status, body) = self.request("PUT", &format!("/{bucket}"), "s3", &[], b"");
        assert_eq!(
            status,
            200,
            "moto: cannot create bucket {bucket}: {}",
            String::from_utf8_lossy(&body)
        );
    }

    /// Writes an object (a server without auth).
    pub fn put(&self, bucket: &str, key: &str, body: &[u8]) {
        let (status, out) = self.request("PUT", &format!("/{bucket}/{key}"), "s3", &[], body);
        assert_eq!(
            status,
            200,
            "moto: cannot put s3://{bucket}/{key}: {}",
            String::from_utf8_lossy(&out)
        );
    }

    /// An object's bytes, or `None` when it does not exist (a server without auth).
    pub fn get(&self, bucket: &str, key: &str) -> Option<Vec<u8>> {
        let (status, body) = self.request("GET", &format!("/{bucket}/{key}"), "s3", &[], b"");
        (status == 200).then_some(body)
    }

    /// Every key in the bucket, sorted (a server without auth; up to 1,000 keys).
    pub fn keys(&self, bucket: &str) -> Vec<String> {
        let (status, body) = self.request("GET", &format!("/{bucket}?list-type=2"), "s3", &[], b"");
        let body = String::from_utf8_lossy(&body).to_string();
        assert_eq!(status, 200, "moto: cannot list bucket {bucket}: {body}");
        let mut keys = xml_values(&body, "Key");
        keys.sort();
        keys
    }

    /// One HTTP/1.0 request to `service` (the server closes the connection after the answer,
    /// so the body is everything after the headers); returns the status and the body. It
    /// carries a placeholder signature: moto routes requests by its credential scope and
    /// refuses anonymous reads of objects, but checks no signature until auth starts.
    fn request(
        &self,
        method: &str,
        path: &str,
        service: &str,
        headers: &[(&str, &str)],
        body: &[u8],
    ) -> (u16, Vec<u8>) {
        let mut s = TcpStream::connect(("127.0.0.1", self.port)).expect("moto answers");
        let mut head = format!(
            "{method} {path} HTTP/1.0\r\nHost: 127.0.0.1:{}\r\nContent-Length: {}\r\n\
             Authorization: AWS4-HMAC-SHA256 Credential=testing/20260101/us-east-1/{service}/aws4_request, \
             SignedHeaders=host, Signature=0\r\n",
            self.port,
            body.len()
        );
        for (k, v) in headers {
            head.push_str(&format!("{k}: {v}\r\n"));
        }
        head.push_str("\r\n");
        s.write_all(head.as_bytes()).unwrap();
        s.write_all(body).unwrap();
        let mut out = Vec::new();
        s.read_to_end(&mut out).unwrap();
        let split = out
            .windows(4)
            .position(|w| w == b"\r\n\r\n")
            .expect("an HTTP answer from moto");
        let status = String::from_utf8_lossy(&out[..split])
            .split_whitespace()
            .nth(1)
            .and_then(|s| s.parse().ok())
            .unwrap_or(0);
        (status, out[split + 4..].to_vec())
    }
}

/// The text of every `<tag>…</tag>` in `xml`, in order.
fn xml_values(xml: &str, tag: &str) -> Vec<String> {
    let (open, close) = (format!("<{tag}>"), format!("</{tag}>"));
    let mut out = Vec::new();
    let mut rest = xml;
    while let Some(start) = rest.find(&open) {
        rest = &rest[start + open.len()..];
        let Some(end) = rest.find(&close) else { break };
        out.push(rest[..end].to_string());
        rest = &rest[end + close.len()..];
    }
    out
}

fn form_encode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}
