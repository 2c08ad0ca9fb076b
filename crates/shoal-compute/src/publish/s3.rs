//! The `s3` publisher: results uploaded to a bucket, as one `.tar.gz` (`Encoding: gzip`, the
//! default) or one object per file (`Encoding: plain`). `Key` may use `{jobID}`,
//! `{executionID}`, `{nodeID}`, `{date}` (YYYYMMDD, UTC) and `{time}` (HHMMSS, UTC).

use std::path::Path;

use object_store::path::Path as ObjectPath;
use object_store::{ObjectStore, ObjectStoreExt, PutPayload, WriteMultipart};
use serde_json::json;
use shoal_types::SpecConfig;
use tokio::io::AsyncReadExt;

use super::{PublishContext, PublishError, config};
use crate::inputs::InputError;
use crate::inputs::s3::{S3Location, classify};

/// Parts of a multipart upload; S3 wants at least 5 MiB for all but the last.
const PART: usize = 16 << 20;

pub(super) async fn publish(
    spec: &SpecConfig,
    cx: &PublishContext<'_>,
) -> Result<SpecConfig, PublishError> {
    let p = |k: &str| spec.str_param(k).filter(|v| !v.is_empty());
    let bucket = p("Bucket")
        .ok_or_else(|| PublishError::User("s3 publisher: Params.Bucket is required".into()))?;
    let encoding = p("Encoding").unwrap_or("gzip").to_ascii_lowercase();
    if encoding != "gzip" && encoding != "plain" {
        return Err(PublishError::User(format!(
            "s3 publisher: Encoding {encoding:?} is not gzip or plain"
        )));
    }
    let loc = S3Location {
        bucket: bucket.to_string(),
        endpoint: p("Endpoint").map(str::to_string),
        region: p("Region").map(str::to_string),
    };
    let now = shoal_types::time::rfc3339(shoal_types::time::to_unix_nanos(
        std::time::SystemTime::now(),
    ));
    let default_key = if encoding == "gzip" {
        "{jobID}/{executionID}.tar.gz"
    } else {
        "{jobID}/{executionID}/"
    };
    let key = render_key(p("Key").unwrap_or(default_key), cx, &now);
    let store = loc.client(cx.policy).map_err(PublishError::User)?;
    let err = |e: object_store::Error, key: &str| match classify(
        &e,
        &format!("s3 publisher: {}", loc.describe(key)),
    ) {
        InputError::User(m) => PublishError::User(m),
        other => PublishError::Transient(other.to_string()),
    };
    let mut params = json!({
        "Bucket": bucket,
        "Key": key,
        "Encoding": encoding,
        "ExecutionID": cx.execution_id,
        "NodeID": cx.node_id,
    });
    if let Some(ep) = &loc.endpoint {
        params["Endpoint"] = json!(ep);
    }
    if let Some(r) = &loc.region {
        params["Region"] = json!(r);
    }
    if encoding == "gzip" {
        let tmp = cx
            .local_dir
            .join("s3-publisher")
            .join(format!("{}.tar.gz", cx.execution_id));
        let a = super::write_archive(cx.results_dir, &tmp).await?;
        let r = upload(&*store, &tmp, &key).await;
        let _ = tokio::fs::remove_file(&tmp).await;
        r.map_err(|e| match e {
            Upload::Store(e) => err(e, &key),
            Upload::Io(m) => PublishError::Transient(m),
        })?;
        params["ChecksumSHA256"] = json!(a.sha256);
        params["Size"] = json!(a.size);
    } else {
        let prefix = if key.ends_with('/') || key.is_empty() {
            key.clone()
        } else {
            format!("{key}/")
        };
        for file in files(cx.results_dir) {
            let rel = file
                .strip_prefix(cx.results_dir)
                .unwrap_or(&file)
                .to_string_lossy()
                .replace('\\', "/");
            let name = format!("{prefix}{rel}");
            upload(&*store, &file, &name).await.map_err(|e| match e {
                Upload::Store(e) => err(e, &name),
                Upload::Io(m) => PublishError::Transient(m),
            })?;
        }
        params["Key"] = json!(prefix);
    }
    Ok(config("s3", params))
}

fn render_key(template: &str, cx: &PublishContext<'_>, rfc3339: &str) -> String {
    // 2026-11-21T10:20:30.123Z → 20261121 and 102030
    let digits: String = rfc3339.chars().filter(char::is_ascii_digit).collect();
    let date = digits.get(0..8).unwrap_or("");
    let time = digits.get(8..14).unwrap_or("");
    template
        .replace("{jobID}", cx.job_id)
        .replace("{executionID}", cx.execution_id)
        .replace("{nodeID}", cx.node_id)
        .replace("{date}", date)
        .replace("{time}", time)
}

/// Every regular file under `dir`, sorted.
fn files(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in entries.flatten() {
            match e.file_type() {
                Ok(t) if t.is_dir() => stack.push(e.path()),
                Ok(t) if t.is_file() => out.push(e.path()),
                _ => {}
            }
        }
    }
    out.sort();
    out
}

enum Upload {
    Store(object_store::Error),
    Io(String),
}

/// Uploads a file: one PUT when small, a multipart upload otherwise.
async fn upload(store: &dyn ObjectStore, file: &Path, key: &str) -> Result<(), Upload> {
    let io = |e: std::io::Error| Upload::Io(format!("cannot read {}: {e}", file.display()));
    let location = ObjectPath::from(key);
    let len = tokio::fs::metadata(file).await.map_err(io)?.len();
    let mut f = tokio::fs::File::open(file).await.map_err(io)?;
    if len <= PART as u64 {
        let mut buf = Vec::with_capacity(len as usize);
        f.read_to_end(&mut buf).await.map_err(io)?;
        store
            .put(&location, PutPayload::from(buf))
            .await
            .map_err(Upload::Store)?;
        return Ok(());
    }
    let upload = store
        .put_multipart(&location)
        .await
        .map_err(Upload::Store)?;
    let mut writer = WriteMultipart::new_with_chunk_size(upload, PART);
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = f.read(&mut buf).await.map_err(io)?;
        if n == 0 {
            break;
        }
        writer.wait_for_capacity(4).await.map_err(Upload::Store)?;
        writer.write(&buf[..n]);
    }
    writer.finish().await.map_err(Upload::Store)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_templates_name_the_job_execution_node_date_and_time() {
        let policy = crate::config::TransferPolicy::default();
        let cx = PublishContext {
            node_id: "n-1",
            job_id: "j-2",
            execution_id: "e-3",
            results_dir: Path::new("/r"),
            local_dir: "/l".into(),
            policy: &policy,
        };
        assert_eq!(
            render_key(
                "out/{jobID}/{nodeID}/{executionID}-{date}-{time}.tgz",
                &cx,
                "2026-11-21T10:20:30.123Z"
            ),
            "out/j-2/n-1/e-3-20261121-102030.tgz"
        );
    }
}
