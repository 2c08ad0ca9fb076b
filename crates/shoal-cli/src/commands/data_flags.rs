//! `-i/--input`, `-o/--result-path` and `-p/--publisher`, with Bacalhau's syntax, shared by every
//! command that builds a task (`wasm run`, `docker run`).
//!
//! ```text
//! -i s3://bucket/key:/inputs            -i https://host/file.csv:/inputs/file.csv
//! -i file:///host/path:/data            -i src=s3://b/k,dst=/in,opt=region=eu-west-1
//! -o outputs:/outputs                   -p local | noop | s3://bucket/prefix[,opt=endpoint=...]
//! ```
//!
//! Use: `#[command(flatten)] data: DataFlags` in the command's args, then
//! `args.data.apply(&mut task_json)?` on the task object before reading the job.

use anyhow::{Context, bail};
use clap::Args;
use serde_json::{Map, Value, json};

/// Inputs, result paths and publisher of a task.
#[derive(Args, Clone, Debug, Default)]
pub struct DataFlags {
    /// Input to stage before the task runs: `URI[:TARGET]` or `src=URI,dst=TARGET,opt=K=V`
    /// (repeatable). URI is `s3://bucket/key` (opts: endpoint, region, version-id,
    /// checksum-256, filter), `http(s)://...`, or `file:///host/path` (opt: rw=true). TARGET
    /// defaults to /inputs.
    #[arg(short = 'i', long = "input", value_name = "INPUT")]
    pub inputs: Vec<String>,
    /// Result path `NAME:PATH` to publish (repeatable), e.g. `-o outputs:/outputs`. (Bacalhau's
    /// `-o`; the long form is `--result-path` because `--output` chooses the output format.)
    #[arg(short = 'o', long = "result-path", value_name = "NAME:PATH")]
    pub outputs: Vec<String>,
    /// Where results go: `local` (kept on the node, fetched with `shoal job get`), `noop`, or
    /// `s3://bucket/key-prefix[,opt=region=R,opt=endpoint=URL,opt=encoding=plain]`.
    #[arg(short = 'p', long = "publisher", value_name = "PUBLISHER")]
    pub publisher: Option<String>,
}

impl DataFlags {
    /// Adds the flags to a task JSON object (`InputSources` appended, `ResultPaths` and
    /// `Publisher` set). Errors name the flag value and the expected syntax.
    pub fn apply(&self, task: &mut Value) -> anyhow::Result<()> {
        let obj = task
            .as_object_mut()
            .context("the task must be a JSON object")?;
        for i in &self.inputs {
            let input = parse_input(i).with_context(|| format!("--input {i:?}"))?;
            obj.entry("InputSources")
                .or_insert_with(|| json!([]))
                .as_array_mut()
                .context("InputSources must be a list")?
                .push(input);
        }
        for o in &self.outputs {
            let out = parse_output(o).with_context(|| format!("-o {o:?}"))?;
            obj.entry("ResultPaths")
                .or_insert_with(|| json!([]))
                .as_array_mut()
                .context("ResultPaths must be a list")?
                .push(out);
        }
        if let Some(p) = &self.publisher {
            obj.insert(
                "Publisher".into(),
                parse_publisher(p).with_context(|| format!("--publisher {p:?}"))?,
            );
        }
        Ok(())
    }
}

/// Splits `URI:TARGET`, where TARGET starts with `/`; a port (`host:8080/`) is not a target.
fn split_target(s: &str) -> (&str, Option<&str>) {
    let after_scheme = s.find("://").map(|i| i + 3).unwrap_or(0);
    match s[after_scheme..].rfind(":/") {
        Some(i) => {
            let at = after_scheme + i;
            (&s[..at], Some(&s[at + 1..]))
        }
        None => (s, None),
    }
}

/// Parses one `-i` value into an `InputSource`.
pub fn parse_input(s: &str) -> anyhow::Result<Value> {
    let (uri, target, opts) = if s.contains("src=") {
        let mut uri = None;
        let mut target = None;
        let mut opts = Vec::new();
        for part in s.split(',') {
            match part.split_once('=') {
                Some(("src" | "source", v)) => uri = Some(v.to_string()),
                Some(("dst" | "destination" | "target", v)) => target = Some(v.to_string()),
                Some(("opt" | "option", kv)) => {
                    let (k, v) = kv
                        .split_once('=')
                        .with_context(|| format!("opt {kv:?} must be opt=KEY=VALUE"))?;
                    opts.push((k.to_ascii_lowercase(), v.to_string()));
                }
                _ => bail!("{part:?} is not src=, dst= or opt=KEY=VALUE"),
            }
        }
        (uri.context("src=URI is missing")?, target, opts)
    } else {
        let (uri, target) = split_target(s);
        (uri.to_string(), target.map(str::to_string), Vec::new())
    };
    let target = target.unwrap_or_else(|| "/inputs".into());
    if !target.starts_with('/') {
        bail!("target {target:?} must be an absolute path, like /inputs");
    }
    let opt = |k: &str| opts.iter().find(|(o, _)| o == k).map(|(_, v)| v.clone());
    let mut params = Map::new();
    let kind = if let Some(rest) = uri.strip_prefix("s3://") {
        let (bucket, key) = rest.split_once('/').unwrap_or((rest, ""));
        if bucket.is_empty() {
            bail!("s3://BUCKET/KEY needs a bucket");
        }
        params.insert("Bucket".into(), json!(bucket));
        params.insert("Key".into(), json!(key));
        for (o, p) in [
            ("endpoint", "Endpoint"),
            ("region", "Region"),
            ("version-id", "VersionID"),
            ("checksum-256", "ChecksumSHA256"),
            ("filter", "Filter"),
        ] {
            if let Some(v) = opt(o) {
                params.insert(p.into(), json!(v));
            }
        }
        "s3"
    } else if uri.starts_with("http://") || uri.starts_with("https://") {
        params.insert("URL".into(), json!(uri));
        if let Some(v) = opt("checksum-256") {
            params.insert("ChecksumSHA256".into(), json!(v));
        }
        "urlDownload"
    } else if let Some(path) = uri.strip_prefix("file://") {
        if !path.starts_with('/') {
            bail!("file:// needs an absolute path: file:///host/path");
        }
        params.insert("SourcePath".into(), json!(path));
        params.insert(
            "ReadWrite".into(),
            json!(opt("rw").is_some_and(|v| v.eq_ignore_ascii_case("true"))),
        );
        "local"
    } else {
        bail!("unsupported input {uri:?}: use s3://bucket/key, http(s)://..., or file:///path");
    };
    Ok(json!({ "Target": target, "Source": { "Type": kind, "Params": params } }))
}

/// Parses one `-o NAME:PATH`.
pub fn parse_output(s: &str) -> anyhow::Result<Value> {
    let (name, path) = s
        .split_once(':')
        .context("expected NAME:PATH, e.g. outputs:/outputs")?;
    if name.is_empty() || name.contains('/') {
        bail!("the name {name:?} must be a plain folder name, e.g. outputs");
    }
    if !path.starts_with('/') {
        bail!("the path {path:?} must be absolute, e.g. /outputs");
    }
    Ok(json!({ "Name": name, "Path": path }))
}

/// Parses `-p`.
pub fn parse_publisher(s: &str) -> anyhow::Result<Value> {
    let mut parts = s.split(',');
    let head = parts.next().unwrap_or("").trim();
    let mut params = Map::new();
    let kind = if let Some(rest) = head.strip_prefix("s3://") {
        let (bucket, key) = rest.split_once('/').unwrap_or((rest, ""));
        if bucket.is_empty() {
            bail!("s3://BUCKET/KEY needs a bucket");
        }
        params.insert("Bucket".into(), json!(bucket));
        if !key.is_empty() {
            params.insert("Key".into(), json!(key));
        }
        "s3"
    } else if matches!(head, "local" | "noop" | "ipfs" | "s3managed") {
        head
    } else {
        bail!("unsupported publisher {head:?}: use local, noop or s3://bucket/key");
    };
    for part in parts {
        let kv = part.strip_prefix("opt=").unwrap_or(part);
        let (k, v) = kv
            .split_once('=')
            .with_context(|| format!("{part:?} must be opt=KEY=VALUE"))?;
        let key = match k.to_ascii_lowercase().as_str() {
            "endpoint" => "Endpoint",
            "region" => "Region",
            "encoding" => "Encoding",
            "key" => "Key",
            other => bail!("unknown publisher option {other:?} (endpoint, region, encoding, key)"),
        };
        params.insert(key.into(), json!(v));
    }
    Ok(json!({ "Type": kind, "Params": params }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn s3_inputs_take_the_target_after_the_last_colon_slash() {
        let v = parse_input("s3://bucket/data/x.csv:/inputs/x.csv").unwrap();
        assert_eq!(v["Target"], "/inputs/x.csv");
        assert_eq!(v["Source"]["Type"], "s3");
        assert_eq!(v["Source"]["Params"]["Bucket"], "bucket");
        assert_eq!(v["Source"]["Params"]["Key"], "data/x.csv");
    }

    #[test]
    fn url_inputs_keep_their_port_and_default_to_inputs() {
        let v = parse_input("http://127.0.0.1:8080/f.txt").unwrap();
        assert_eq!(v["Target"], "/inputs");
        assert_eq!(v["Source"]["Params"]["URL"], "http://127.0.0.1:8080/f.txt");
        let v = parse_input("https://h:443/a:/in/a").unwrap();
        assert_eq!(v["Source"]["Params"]["URL"], "https://h:443/a");
        assert_eq!(v["Target"], "/in/a");
    }

    #[test]
    fn src_dst_opt_form_sets_s3_options() {
        let v = parse_input(
            "src=s3://b/pre/,dst=/data,opt=endpoint=http://127.0.0.1:9000,opt=region=eu-west-1,opt=filter=.*csv",
        )
        .unwrap();
        let p = &v["Source"]["Params"];
        assert_eq!(v["Target"], "/data");
        assert_eq!(p["Endpoint"], "http://127.0.0.1:9000");
        assert_eq!(p["Region"], "eu-west-1");
        assert_eq!(p["Filter"], ".*csv");
        assert_eq!(p["Key"], "pre/");
    }

    #[test]
    fn file_inputs_are_local_and_read_only_unless_rw() {
        let v = parse_input("file:///srv/data:/data").unwrap();
        assert_eq!(v["Source"]["Type"], "local");
        assert_eq!(v["Source"]["Params"]["SourcePath"], "/srv/data");
        assert_eq!(v["Source"]["Params"]["ReadWrite"], false);
        let v = parse_input("src=file:///srv/data,dst=/data,opt=rw=true").unwrap();
        assert_eq!(v["Source"]["Params"]["ReadWrite"], true);
    }

    #[test]
    fn bad_values_name_the_expected_syntax() {
        let e = parse_input("ftp://x").unwrap_err().to_string();
        assert!(e.contains("s3://bucket/key"), "{e}");
        let e = parse_output("outputs").unwrap_err().to_string();
        assert!(e.contains("NAME:PATH"), "{e}");
        let e = parse_publisher("ftp").unwrap_err().to_string();
        assert!(e.contains("local, noop"), "{e}");
    }

    #[test]
    fn publishers_parse_local_and_s3_with_options() {
        assert_eq!(parse_publisher("local").unwrap()["Type"], "local");
        let v =
            parse_publisher("s3://bucket/out/{jobID},opt=endpoint=http://h:1,opt=encoding=plain")
                .unwrap();
        assert_eq!(v["Type"], "s3");
        assert_eq!(v["Params"]["Key"], "out/{jobID}");
        assert_eq!(v["Params"]["Endpoint"], "http://h:1");
        assert_eq!(v["Params"]["Encoding"], "plain");
    }

    #[test]
    fn apply_appends_inputs_and_sets_outputs_and_publisher() {
        let flags = DataFlags {
            inputs: vec!["http://h/f:/in/f".into()],
            outputs: vec!["outputs:/outputs".into()],
            publisher: Some("local".into()),
        };
        let mut task = json!({ "InputSources": [{ "Target": "/app/m.wasm" }] });
        flags.apply(&mut task).unwrap();
        assert_eq!(task["InputSources"].as_array().unwrap().len(), 2);
        assert_eq!(task["ResultPaths"][0]["Name"], "outputs");
        assert_eq!(task["Publisher"]["Type"], "local");
    }
}
