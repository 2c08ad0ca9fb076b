//! `shoal job get` and `shoal job cat`: results fetched through the orchestrator (or from the
//! S3 bucket they were published to), never from the compute nodes directly.
//!
//! Layout, as Bacalhau's `job get`: `job-<short id>/` holds `stdout`, `stderr`, `exitCode` and
//! the result paths of a job with one result; with several (ops jobs, `Count` > 1) there is one
//! folder per node (per execution when a node ran several). `--raw` keeps the archives as
//! downloaded, in `raw/<execution id>.tar.gz`, without unpacking them.

use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, bail};
use futures::StreamExt;
use object_store::path::Path as ObjectPath;
use object_store::{ObjectStore, ObjectStoreExt};
use sha2::Digest;
use shoal_client::Client;
use shoal_types::SpecConfig;
use tokio::io::AsyncWriteExt;

use crate::wait::short;

/// `shoal job get ID [--output-dir DIR] [--raw]`.
pub async fn get(
    client: &Client,
    id: &str,
    output_dir: Option<PathBuf>,
    raw: bool,
) -> anyhow::Result<ExitCode> {
    let job = client.job(id, "").await?.job;
    let results = published(client, &job).await?;
    let out = output_dir.unwrap_or_else(|| PathBuf::from(format!("job-{}", short(&job.id))));
    if out.exists() && std::fs::read_dir(&out)?.next().is_some() {
        bail!(
            "output folder {} exists and is not empty; remove it or choose another with --output-dir",
            out.display()
        );
    }
    std::fs::create_dir_all(&out).with_context(|| format!("cannot create {}", out.display()))?;
    let folders = folder_names(&results);
    for (result, folder) in results.iter().zip(folders) {
        let exec = param(result, "ExecutionID").unwrap_or("result").to_string();
        let dest = if results.len() == 1 {
            out.clone()
        } else {
            out.join(&folder)
        };
        if result.is("s3") && param(result, "Encoding") == Some("plain") {
            s3_plain(result, &dest).await?;
            continue;
        }
        let archive = if raw {
            out.join("raw").join(format!("{exec}.tar.gz"))
        } else {
            out.join(format!(".{exec}.tar.gz.partial"))
        };
        if let Some(parent) = archive.parent() {
            std::fs::create_dir_all(parent)?;
        }
        fetch_archive(client, result, &archive).await?;
        if !raw {
            let (a, d) = (archive.clone(), dest.clone());
            tokio::task::spawn_blocking(move || unpack(&a, &d)).await??;
            let _ = std::fs::remove_file(&archive);
        }
    }
    println!(
        "Results for job {} have been written to\n{}",
        job.id,
        out.display()
    );
    Ok(ExitCode::SUCCESS)
}

/// `shoal job cat ID PATH`: prints one file of the job's results to stdout.
pub async fn cat(client: &Client, id: &str, path: &str) -> anyhow::Result<ExitCode> {
    let job = client.job(id, "").await?.job;
    let results = published(client, &job).await?;
    let wanted = normalise(path);
    let tmp = std::env::temp_dir().join(format!("shoal-cat-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(&tmp)?;
    let mut seen = Vec::new();
    for result in &results {
        if result.is("s3") && param(result, "Encoding") == Some("plain") {
            match s3_plain_file(result, &wanted).await? {
                PlainFile::Found(bytes) => {
                    let _ = std::fs::remove_dir_all(&tmp);
                    use std::io::Write;
                    std::io::stdout().write_all(&bytes)?;
                    return Ok(ExitCode::SUCCESS);
                }
                PlainFile::Missing(names) => {
                    seen.extend(names);
                    continue;
                }
            }
        }
        let archive = tmp.join("result.tar.gz");
        fetch_archive(client, result, &archive).await?;
        let w = wanted.clone();
        let (found, names) = tokio::task::spawn_blocking(
            move || -> anyhow::Result<(Option<Vec<u8>>, Vec<String>)> {
                let mut names = Vec::new();
                let file = std::fs::File::open(&archive)?;
                let mut tar = tar::Archive::new(flate2::read::GzDecoder::new(file));
                for entry in tar.entries()? {
                    let mut entry = entry?;
                    let name = normalise(&entry.path()?.to_string_lossy());
                    if name == w {
                        let mut buf = Vec::new();
                        std::io::Read::read_to_end(&mut entry, &mut buf)?;
                        return Ok((Some(buf), names));
                    }
                    if entry.header().entry_type().is_file() {
                        names.push(name);
                    }
                }
                Ok((None, names))
            },
        )
        .await??;
        if let Some(bytes) = found {
            let _ = std::fs::remove_dir_all(&tmp);
            use std::io::Write;
            std::io::stdout().write_all(&bytes)?;
            return Ok(ExitCode::SUCCESS);
        }
        seen.extend(names);
    }
    let _ = std::fs::remove_dir_all(&tmp);
    seen.sort();
    seen.dedup();
    bail!(
        "job {}: no file {path} in its results; files: {}",
        job.id,
        if seen.is_empty() {
            "none".into()
        } else {
            seen.join(", ")
        }
    )
}

/// The job's published results, or an error saying why there are none.
async fn published(client: &Client, job: &shoal_types::Job) -> anyhow::Result<Vec<SpecConfig>> {
    let results = client.results(&job.id).await?;
    if !results.is_empty() {
        return Ok(results);
    }
    let publisher = job
        .tasks
        .first()
        .and_then(|t| t.publisher.as_ref())
        .map(|p| p.kind.clone())
        .filter(|k| !k.is_empty())
        .unwrap_or_else(|| "none".into());
    if publisher == "none" || publisher.eq_ignore_ascii_case("noop") {
        bail!(
            "job {} has no published results: its publisher is {publisher}; run it with -p local (or -p s3://bucket/prefix) to keep results",
            job.id
        );
    }
    bail!(
        "job {} has no published results yet (state {}); wait for it to complete (`shoal job describe {}`)",
        job.id,
        job.state.state_type,
        job.id
    )
}

fn param<'a>(c: &'a SpecConfig, k: &str) -> Option<&'a str> {
    c.str_param(k).filter(|v| !v.is_empty())
}

/// One folder per node; per execution where a node has several results.
fn folder_names(results: &[SpecConfig]) -> Vec<String> {
    let nodes: Vec<Option<&str>> = results.iter().map(|r| param(r, "NodeID")).collect();
    results
        .iter()
        .enumerate()
        .map(|(i, r)| {
            let exec = param(r, "ExecutionID").map(str::to_string);
            match nodes[i] {
                Some(n) if nodes.iter().filter(|m| **m == Some(n)).count() == 1 => n.to_string(),
                _ => exec.unwrap_or_else(|| format!("result-{i}")),
            }
        })
        .collect()
}

fn normalise(p: &str) -> String {
    p.split('/')
        .filter(|s| !s.is_empty() && *s != ".")
        .collect::<Vec<_>>()
        .join("/")
}

/// Downloads one result archive to `dest` and checks its SHA-256 when the result names one.
async fn fetch_archive(client: &Client, result: &SpecConfig, dest: &Path) -> anyhow::Result<()> {
    let label = param(result, "ExecutionID").unwrap_or("result").to_string();
    let mut bar = Progress::new(&label);
    let sha = if result.is("urlDownload") {
        let url = param(result, "URL").context("urlDownload result without a URL")?;
        client
            .download(url, dest, |done, total| bar.update(done, total))
            .await?
    } else if result.is("s3") {
        s3_archive(result, dest, &mut bar).await?
    } else {
        bail!(
            "results of type {} cannot be downloaded by this client (urlDownload and s3 can)",
            result.kind
        );
    };
    bar.finish();
    if let Some(want) = param(result, "ChecksumSHA256")
        && !want.eq_ignore_ascii_case(&sha)
    {
        bail!(
            "the results of execution {label} are corrupt: SHA-256 {sha}, published as {want}; download again"
        );
    }
    Ok(())
}

fn s3_location(result: &SpecConfig) -> anyhow::Result<shoal_compute::S3Location> {
    Ok(shoal_compute::S3Location {
        bucket: param(result, "Bucket")
            .context("s3 result without a Bucket")?
            .to_string(),
        endpoint: param(result, "Endpoint").map(str::to_string),
        region: param(result, "Region").map(str::to_string),
    })
}

async fn s3_archive(
    result: &SpecConfig,
    dest: &Path,
    bar: &mut Progress,
) -> anyhow::Result<String> {
    let loc = s3_location(result)?;
    let key = param(result, "Key").unwrap_or("");
    let store = loc
        .client(&shoal_compute::TransferPolicy::default())
        .map_err(anyhow::Error::msg)?;
    let got = store
        .get(&ObjectPath::from(key))
        .await
        .with_context(|| format!("cannot read {}", loc.describe(key)))?;
    let total = got.meta.size;
    let mut file = tokio::fs::File::create(dest).await?;
    let mut hasher = sha2::Sha256::new();
    let mut done = 0;
    let mut body = got.into_stream();
    while let Some(chunk) = body.next().await {
        let chunk = chunk.with_context(|| format!("download of {} broke", loc.describe(key)))?;
        hasher.update(&chunk);
        file.write_all(&chunk).await?;
        done += chunk.len() as u64;
        bar.update(done, Some(total));
    }
    file.flush().await?;
    Ok(hex::encode(hasher.finalize()))
}

/// `Encoding: plain` results: one object per file under the key prefix.
async fn s3_plain(result: &SpecConfig, dest: &Path) -> anyhow::Result<()> {
    let loc = s3_location(result)?;
    let prefix = param(result, "Key").unwrap_or("").to_string();
    let store = loc
        .client(&shoal_compute::TransferPolicy::default())
        .map_err(anyhow::Error::msg)?;
    let mut list = store.list(Some(&ObjectPath::from(prefix.as_str())));
    while let Some(meta) = list.next().await {
        let meta = meta.with_context(|| format!("cannot list {}", loc.describe(&prefix)))?;
        let name = meta.location.to_string();
        let rel = normalise(
            name.strip_prefix(prefix.trim_end_matches('/'))
                .unwrap_or(&name),
        );
        if rel.split('/').any(|p| p == "..") {
            continue;
        }
        let path = dest.join(&rel);
        if let Some(parent) = path.parent() {
            tokio::fs::create_dir_all(parent).await?;
        }
        let bytes = store.get(&meta.location).await?.bytes().await?;
        tokio::fs::write(&path, bytes).await?;
    }
    Ok(())
}

enum PlainFile {
    Found(Vec<u8>),
    /// Not there; the files that are.
    Missing(Vec<String>),
}

/// One file of an `Encoding: plain` result: the object `<prefix><path>`.
async fn s3_plain_file(result: &SpecConfig, path: &str) -> anyhow::Result<PlainFile> {
    let loc = s3_location(result)?;
    let prefix = param(result, "Key").unwrap_or("").trim_end_matches('/');
    let key = format!("{prefix}/{path}");
    let store = loc
        .client(&shoal_compute::TransferPolicy::default())
        .map_err(anyhow::Error::msg)?;
    match store.get(&ObjectPath::from(key.as_str())).await {
        Ok(got) => Ok(PlainFile::Found(
            got.bytes()
                .await
                .with_context(|| format!("download of {} broke", loc.describe(&key)))?
                .to_vec(),
        )),
        Err(object_store::Error::NotFound { .. }) => {
            let mut names = Vec::new();
            let mut list = store.list(Some(&ObjectPath::from(prefix)));
            while let Some(meta) = list.next().await {
                let meta = meta.with_context(|| format!("cannot list {}", loc.describe(prefix)))?;
                let name = meta.location.to_string();
                names.push(normalise(name.strip_prefix(prefix).unwrap_or(&name)));
            }
            Ok(PlainFile::Missing(names))
        }
        Err(e) => Err(e).with_context(|| format!("cannot read {}", loc.describe(&key))),
    }
}

fn unpack(archive: &Path, dest: &Path) -> anyhow::Result<()> {
    std::fs::create_dir_all(dest)?;
    let file = std::fs::File::open(archive)?;
    tar::Archive::new(flate2::read::GzDecoder::new(file))
        .unpack(dest)
        .with_context(|| format!("cannot unpack results into {}", dest.display()))
}

/// A one-line progress display on stderr, for large downloads on a terminal only.
struct Progress {
    label: String,
    shown: bool,
    last_pct: u64,
    tty: bool,
}

impl Progress {
    fn new(label: &str) -> Self {
        Progress {
            label: label.to_string(),
            shown: false,
            last_pct: u64::MAX,
            tty: std::io::stderr().is_terminal(),
        }
    }

    fn update(&mut self, done: u64, total: Option<u64>) {
        let Some(total) = total.filter(|t| *t >= 8 << 20 && self.tty) else {
            return;
        };
        let pct = done * 100 / total.max(1);
        if pct != self.last_pct {
            self.last_pct = pct;
            self.shown = true;
            eprint!(
                "\rdownloading {}: {pct:>3}% ({:.1} / {:.1} MiB)",
                self.label,
                done as f64 / 1048576.0,
                total as f64 / 1048576.0
            );
        }
    }

    fn finish(&self) {
        if self.shown {
            eprintln!();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn result(node: &str, exec: &str) -> SpecConfig {
        SpecConfig {
            kind: "urlDownload".into(),
            params: serde_json::json!({"NodeID": node, "ExecutionID": exec})
                .as_object()
                .unwrap()
                .clone(),
        }
    }

    #[test]
    fn results_get_one_folder_per_node_or_per_execution_on_a_shared_node() {
        let names = folder_names(&[
            result("n-1", "e-1"),
            result("n-2", "e-2"),
            result("n-2", "e-3"),
        ]);
        assert_eq!(names, vec!["n-1", "e-2", "e-3"]);
    }
}
