//! Files an `exec` task places on the node before its command runs: "deploy this config and
//! reload" as one job.
//!
//! ```yaml
//! Engine:
//!   Type: exec
//!   Params:
//!     Command: /usr/sbin/nginx
//!     Arguments: [-s, reload]
//!     Files:
//!       - Path: /etc/nginx/conf.d/site.conf   # where it goes (absolute)
//!         Content: "server { listen 8080; }"   # the text itself, or:
//!         # From: /inputs/site.conf            # an InputSources Target (inline, URL or S3)
//!         Mode: "0644"                         # octal; default 0644
//!         Owner: root                          # default: the agent's own user
//! ```
//!
//! The node decides where files may go: only under the prefixes its operator listed with
//! `--exec-write-allow` (none by default, so no file is written). Each file is written to a
//! temporary file in the same directory, given its mode and owner, synced, and renamed over
//! the target in one step, so a reader sees the old file or the new one, never half of it.
//! The file it replaces is kept beside it as `<path>.shoal-prev` for a revert by hand or by a
//! later job. If any file cannot be placed, the command does not run and the files placed
//! before it are put back as they were.

use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::path::{Component, Path, PathBuf};

use serde_json::Value;
use shoal_types::SpecConfig;

use crate::params::kind_of;
use crate::{ExecutorError, PreparedInput};

/// The suffix of the copy of a replaced file.
pub const PREVIOUS_SUFFIX: &str = ".shoal-prev";

/// Largest inline `Content`, in bytes: a job spec travels through the orchestrator's store and
/// every link; bigger files belong in an input (URL or S3).
pub const MAX_INLINE: usize = 256 << 10;

/// Where a file's bytes come from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FileSource {
    /// The text in the job spec.
    Content(String),
    /// A staged input, by its `Target`.
    Input(String),
}

/// One file to place.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileSpec {
    /// Absolute path on the node.
    pub path: PathBuf,
    /// What goes in it.
    pub source: FileSource,
    /// Permission bits; 0o644 when not given.
    pub mode: u32,
    /// The user who will own it; the agent's own user when not given.
    pub owner: Option<String>,
}

/// Reads `Params.Files`; errors name the entry and the field.
pub fn parse(engine: &SpecConfig) -> Result<Vec<FileSpec>, ExecutorError> {
    let list = match engine.param("Files") {
        None | Some(Value::Null) => return Ok(Vec::new()),
        Some(Value::Array(items)) => items,
        Some(other) => {
            return Err(ExecutorError::user(format!(
                "exec engine: parameter Files must be a list of {{Path, Content or From, Mode, Owner}}, got {}",
                kind_of(other)
            )));
        }
    };
    list.iter()
        .enumerate()
        .map(|(i, item)| parse_one(i, item))
        .collect()
}

fn parse_one(i: usize, item: &Value) -> Result<FileSpec, ExecutorError> {
    let err = |m: String| ExecutorError::user(format!("exec engine: Files[{i}]: {m}"));
    let Value::Object(map) = item else {
        return Err(err(format!(
            "must be an object like {{Path: /etc/app.conf, Content: \"...\"}}, got {}",
            kind_of(item)
        )));
    };
    let get = |key: &str| {
        map.iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(key))
            .map(|(_, v)| v)
    };
    const KNOWN: [&str; 5] = ["Path", "Content", "From", "Mode", "Owner"];
    if let Some(unknown) = map
        .keys()
        .find(|k| !KNOWN.iter().any(|p| p.eq_ignore_ascii_case(k)))
    {
        return Err(err(format!(
            "unknown field {unknown}; the known ones are {}",
            KNOWN.join(", ")
        )));
    }
    let path = match get("Path") {
        Some(Value::String(p)) if is_clean_absolute(p) => PathBuf::from(p),
        Some(Value::String(p)) => {
            return Err(err(format!(
                "Path {p:?} must be an absolute path without . or .. parts, e.g. /etc/nginx/conf.d/site.conf"
            )));
        }
        _ => {
            return Err(err(
                "Path is missing; give where the file goes on the node".into()
            ));
        }
    };
    let source = match (get("Content"), get("From")) {
        (Some(Value::String(c)), None) if c.len() <= MAX_INLINE => FileSource::Content(c.clone()),
        (Some(Value::String(c)), None) => {
            return Err(err(format!(
                "Content is {} bytes, over the {} KiB limit for inline files; put it in an input (InputSources with a URL or S3 source) and name its Target in From",
                c.len(),
                MAX_INLINE >> 10
            )));
        }
        (None, Some(Value::String(f))) => FileSource::Input(f.clone()),
        (Some(_), Some(_)) => {
            return Err(err("give either Content or From, not both".into()));
        }
        (None, None) => {
            return Err(err(
                "needs Content (the text) or From (the Target of one of the task's InputSources)"
                    .into(),
            ));
        }
        (Some(v), None) | (None, Some(v)) => {
            return Err(err(format!(
                "Content and From must be strings, got {}",
                kind_of(v)
            )));
        }
    };
    let mode = match get("Mode") {
        None | Some(Value::Null) => 0o644,
        Some(Value::String(s)) => parse_mode(s).ok_or_else(|| {
            err(format!(
                "Mode {s:?} is not an octal permission such as \"0644\" or \"0600\""
            ))
        })?,
        Some(other) => {
            return Err(err(format!(
                "Mode must be an octal string such as \"0644\" (quoted, so YAML does not read it as a number), got {}",
                kind_of(other)
            )));
        }
    };
    let owner = match get("Owner") {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) if !s.trim().is_empty() => Some(s.trim().to_string()),
        Some(other) => {
            return Err(err(format!(
                "Owner must be a user name, got {}",
                kind_of(other)
            )));
        }
    };
    Ok(FileSpec {
        path,
        source,
        mode,
        owner,
    })
}

fn parse_mode(s: &str) -> Option<u32> {
    let digits = s.trim().trim_start_matches("0o");
    if digits.is_empty() || digits.len() > 4 {
        return None;
    }
    u32::from_str_radix(digits, 8).ok().filter(|m| *m <= 0o7777)
}

fn is_clean_absolute(p: &str) -> bool {
    let path = Path::new(p);
    path.is_absolute()
        && path.file_name().is_some()
        && path
            .components()
            .all(|c| matches!(c, Component::RootDir | Component::Normal(_)))
}

/// Refuses a file outside every `--exec-write-allow` prefix (compared by whole path parts).
pub fn check_allowed(files: &[FileSpec], write_allow: &[PathBuf]) -> Result<(), String> {
    for f in files {
        if !write_allow.iter().any(|prefix| f.path.starts_with(prefix)) {
            let allowed = if write_allow.is_empty() {
                "none".to_string()
            } else {
                write_allow
                    .iter()
                    .map(|p| p.display().to_string())
                    .collect::<Vec<_>>()
                    .join(", ")
            };
            return Err(format!(
                "file {} is not under the node's writable paths ({allowed}); allow its directory with --exec-write-allow on the node",
                f.path.display()
            ));
        }
    }
    Ok(())
}

/// What [`place`] did to one path, so it can be undone.
#[derive(Debug)]
struct Placed {
    path: PathBuf,
    /// The replaced file's copy, when there was one.
    previous: Option<PathBuf>,
}

/// Places every file (see the module docs); on an error, puts back what it had placed and
/// says which file failed and why. Returns one line per file for the task's log.
pub fn place(
    files: &[FileSpec],
    inputs: &[PreparedInput],
    owner_ids: impl Fn(&str) -> Result<(u32, u32), String>,
) -> Result<Vec<String>, String> {
    let mut placed: Vec<Placed> = Vec::new();
    let mut lines = Vec::new();
    for f in files {
        match place_one(f, inputs, &owner_ids) {
            Ok((p, line)) => {
                placed.push(p);
                lines.push(line);
            }
            Err(e) => {
                for p in placed.iter().rev() {
                    undo(p);
                }
                let undone = if placed.is_empty() {
                    String::new()
                } else {
                    format!(
                        "; the {} file(s) placed before it were put back",
                        placed.len()
                    )
                };
                return Err(format!(
                    "file {}: {e}; the command did not run{undone}",
                    f.path.display()
                ));
            }
        }
    }
    Ok(lines)
}

fn place_one(
    f: &FileSpec,
    inputs: &[PreparedInput],
    owner_ids: &impl Fn(&str) -> Result<(u32, u32), String>,
) -> Result<(Placed, String), String> {
    let bytes = match &f.source {
        FileSource::Content(c) => c.clone().into_bytes(),
        FileSource::Input(target) => {
            let input = inputs.iter().find(|i| &i.target == target).ok_or_else(|| {
                format!(
                    "From {target:?} is not the Target of any of the task's InputSources ({})",
                    inputs
                        .iter()
                        .map(|i| i.target.as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                )
            })?;
            if !input.host_path.is_file() {
                return Err(format!(
                    "input {target} is a directory, not a file; name one file of it in From"
                ));
            }
            std::fs::read(&input.host_path).map_err(|e| format!("reading input {target}: {e}"))?
        }
    };
    let dir = f
        .path
        .parent()
        .ok_or_else(|| "has no parent directory".to_string())?;
    if !dir.is_dir() {
        return Err(format!(
            "directory {} does not exist on this node; create it first (e.g. with an earlier exec of mkdir)",
            dir.display()
        ));
    }
    let ids = f.owner.as_deref().map(owner_ids).transpose()?;
    let name = f
        .path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    // Unique per call: several agents of one process (a devstack) may place the same path.
    static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let tmp = dir.join(format!(".{name}.shoal-{}-{n}.tmp", std::process::id()));
    let write = || -> std::io::Result<()> {
        let mut file = std::fs::File::create(&tmp)?;
        file.write_all(&bytes)?;
        std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(f.mode))?;
        if let Some((uid, gid)) = ids {
            std::os::unix::fs::chown(&tmp, Some(uid), Some(gid))?;
        }
        file.sync_all()
    };
    if let Err(e) = write() {
        let _ = std::fs::remove_file(&tmp);
        return Err(format!("writing {}: {e}", tmp.display()));
    }
    let previous = if f.path.exists() {
        let prev = PathBuf::from(format!("{}{PREVIOUS_SUFFIX}", f.path.display()));
        let _ = std::fs::remove_file(&prev);
        if let Err(e) = std::fs::hard_link(&f.path, &prev)
            .or_else(|_| std::fs::copy(&f.path, &prev).map(|_| ()))
        {
            let _ = std::fs::remove_file(&tmp);
            return Err(format!(
                "keeping the previous file as {}: {e}",
                prev.display()
            ));
        }
        Some(prev)
    } else {
        None
    };
    if let Err(e) = std::fs::rename(&tmp, &f.path) {
        let _ = std::fs::remove_file(&tmp);
        return Err(format!("moving it into place: {e}"));
    }
    if let Ok(d) = std::fs::File::open(dir) {
        let _ = d.sync_all();
    }
    let line = format!(
        "placed {} ({} bytes, mode {:04o}{}{})",
        f.path.display(),
        bytes.len(),
        f.mode,
        f.owner
            .as_deref()
            .map(|o| format!(", owner {o}"))
            .unwrap_or_default(),
        previous
            .as_ref()
            .map(|p| format!(", previous kept as {}", p.display()))
            .unwrap_or_default()
    );
    Ok((
        Placed {
            path: f.path.clone(),
            previous,
        },
        line,
    ))
}

/// Puts back what [`place_one`] replaced (or removes what it created).
fn undo(p: &Placed) {
    match &p.previous {
        Some(prev) => {
            let _ = std::fs::rename(prev, &p.path);
        }
        None => {
            let _ = std::fs::remove_file(&p.path);
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn spec(files: Value) -> SpecConfig {
        serde_json::from_value(json!({
            "Type": "exec", "Params": {"Command": "/bin/true", "Files": files}
        }))
        .unwrap()
    }

    fn error(files: Value) -> String {
        parse(&spec(files)).unwrap_err().to_string()
    }

    fn no_owner(_: &str) -> Result<(u32, u32), String> {
        Err("no owners in this test".into())
    }

    #[test]
    fn files_read_with_their_defaults_and_bad_entries_name_the_field() {
        let files = parse(&spec(json!([
            {"path": "/etc/app.conf", "content": "a=1\n"},
            {"Path": "/etc/b.conf", "From": "/inputs/b.conf", "Mode": "0600", "Owner": "root"},
        ])))
        .unwrap();
        assert_eq!(files[0].mode, 0o644);
        assert_eq!(files[0].source, FileSource::Content("a=1\n".into()));
        assert_eq!(files[1].mode, 0o600);
        assert_eq!(files[1].owner.as_deref(), Some("root"));
        assert!(
            error(json!([{"Path": "etc/x", "Content": ""}])).contains("must be an absolute path")
        );
        assert!(error(json!([{"Path": "/etc/../x", "Content": ""}])).contains("without . or .."));
        assert!(error(json!([{"Path": "/etc/x"}])).contains("needs Content"));
        assert!(error(json!([{"Path": "/etc/x", "Content": "", "Mode": 644}])).contains("quoted"));
        assert!(
            error(json!([{"Path": "/etc/x", "Content": "", "Mode": "rw"}]))
                .contains("not an octal")
        );
        assert!(
            error(json!([{"Path": "/etc/x", "Contents": ""}]))
                .starts_with("exec engine: Files[0]: unknown field Contents")
        );
        assert!(error(json!({"Path": "/etc/x"})).contains("must be a list"));
    }

    #[test]
    fn only_paths_under_a_writable_prefix_are_allowed() {
        let files = parse(&spec(
            json!([{"Path": "/etc/nginx/conf.d/a.conf", "Content": ""}]),
        ))
        .unwrap();
        assert!(check_allowed(&files, &[PathBuf::from("/etc/nginx")]).is_ok());
        let err = check_allowed(&files, &[PathBuf::from("/etc/ngin")]).unwrap_err();
        assert!(
            err.contains("not under the node's writable paths (/etc/ngin)"),
            "{err}"
        );
        let err = check_allowed(&files, &[]).unwrap_err();
        assert!(
            err.contains("(none); allow its directory with --exec-write-allow"),
            "{err}"
        );
    }

    #[test]
    fn a_file_is_replaced_whole_and_the_previous_one_kept() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("app.conf");
        std::fs::write(&path, "old\n").unwrap();
        let files = vec![FileSpec {
            path: path.clone(),
            source: FileSource::Content("new\n".into()),
            mode: 0o600,
            owner: None,
        }];
        let lines = place(&files, &[], no_owner).unwrap();
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "new\n");
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o7777;
        assert_eq!(mode, 0o600);
        let prev = dir.path().join("app.conf.shoal-prev");
        assert_eq!(std::fs::read_to_string(&prev).unwrap(), "old\n");
        assert!(lines[0].contains("previous kept as"), "{lines:?}");
        let leftovers: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|n| n.ends_with(".tmp"))
            .collect();
        assert!(leftovers.is_empty(), "{leftovers:?}");
    }

    #[test]
    fn a_failing_file_puts_back_the_ones_placed_before_it() {
        let dir = tempfile::tempdir().unwrap();
        let first = dir.path().join("a.conf");
        std::fs::write(&first, "a-old").unwrap();
        let files = vec![
            FileSpec {
                path: first.clone(),
                source: FileSource::Content("a-new".into()),
                mode: 0o644,
                owner: None,
            },
            FileSpec {
                path: dir.path().join("missing-dir/b.conf"),
                source: FileSource::Content("b".into()),
                mode: 0o644,
                owner: None,
            },
        ];
        let err = place(&files, &[], no_owner).unwrap_err();
        assert!(
            err.contains("missing-dir does not exist on this node"),
            "{err}"
        );
        assert!(
            err.contains("the 1 file(s) placed before it were put back"),
            "{err}"
        );
        assert_eq!(std::fs::read_to_string(&first).unwrap(), "a-old");
    }

    #[test]
    fn from_names_a_staged_input_by_its_target() {
        let dir = tempfile::tempdir().unwrap();
        let staged = dir.path().join("staged");
        std::fs::write(&staged, "from s3").unwrap();
        let inputs = vec![PreparedInput {
            host_path: staged,
            target: "/inputs/site.conf".into(),
            read_write: false,
        }];
        let path = dir.path().join("site.conf");
        let mut files = vec![FileSpec {
            path: path.clone(),
            source: FileSource::Input("/inputs/site.conf".into()),
            mode: 0o644,
            owner: None,
        }];
        place(&files, &inputs, no_owner).unwrap();
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "from s3");
        files[0].source = FileSource::Input("/inputs/other".into());
        let err = place(&files, &inputs, no_owner).unwrap_err();
        assert!(
            err.contains("is not the Target of any of the task's InputSources (/inputs/site.conf)"),
            "{err}"
        );
    }
}
