//! The task's view of the filesystem: where a module path inside the task lives on the host,
//! and which host folders are preopened at which guest paths.
//!
//! Mount rules (Bacalhau's wasm executor mounts inputs at their `Target` and each result folder
//! at its `Name`; Shoal mounts results at both, so that jobs written for either convention work):
//!
//! - a directory input is preopened at its `Target`, read-only unless `read_write`;
//! - a single-file input cannot be preopened by WASI preview 1 (preopens are directories), so
//!   its host parent folder is preopened at the target's parent, read-only unless
//!   `read_write`, when the host file and the target have the same file name; the agent stages
//!   each file input in its own folder, so no other file is exposed. When the names differ the
//!   file is reachable only as a module (`EntryModule`/`ImportModules`);
//! - each result path gets the host folder `results_dir/<Name>` (created here), preopened
//!   read-write at the result's `Path` and at `/<Name>`.

use std::path::{Path, PathBuf};

use shoal_types::ResultPath;
use wasmtime_wasi::FsPerms;

use crate::{ExecutorError, PreparedInput};

/// A host folder made visible to the module at a guest path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mount {
    /// Folder on the host.
    pub host: PathBuf,
    /// Absolute path the module sees.
    pub guest: String,
    /// Whether the module may write there.
    pub writable: bool,
}

impl Mount {
    /// The permissions wasmtime-wasi enforces on the preopen.
    pub fn perms(&self) -> FsPerms {
        if self.writable {
            FsPerms::ReadWrite
        } else {
            FsPerms::ReadOnly
        }
    }
}

/// The components of a task path, so that `/app/main.wasm`, `app/main.wasm` and
/// `/app//./main.wasm` compare equal (tasks are rooted at `/`, with no working directory).
fn components(path: &str) -> Vec<&str> {
    let mut parts: Vec<&str> = Vec::new();
    for part in path.split('/') {
        match part {
            "" | "." => {}
            ".." => {
                parts.pop();
            }
            other => parts.push(other),
        }
    }
    parts
}

/// Canonical absolute form of a task path.
fn canonical(path: &str) -> String {
    format!("/{}", components(path).join("/"))
}

/// Finds the host file behind a module path given in the job.
///
/// `role` names the parameter for error messages (`entry module`, `import module`). The path
/// is looked up among the inputs: equal to an input's target, or inside a directory input. An
/// absolute path ending in `.wasm` or `.wat` that names an existing host file is accepted too,
/// for modules preinstalled on the node; other host files are never read, so that a job cannot
/// use the module loader to read arbitrary host files.
pub fn resolve_module(
    role: &str,
    path: &str,
    inputs: &[PreparedInput],
) -> Result<PathBuf, ExecutorError> {
    let wanted = components(path);
    // The deepest matching target wins, as a mount inside another mount shadows it.
    let mut best: Option<(usize, PathBuf)> = None;
    for input in inputs {
        let target = components(&input.target);
        if !wanted.starts_with(&target) {
            continue;
        }
        let rest = &wanted[target.len()..];
        let host = if rest.is_empty() {
            input.host_path.clone()
        } else {
            rest.iter()
                .fold(input.host_path.clone(), |acc, part| acc.join(part))
        };
        if best.as_ref().is_none_or(|(depth, _)| target.len() > *depth) {
            best = Some((target.len(), host));
        }
    }
    if let Some((_, host)) = best {
        return Ok(host);
    }
    let host = Path::new(path);
    let module_like = matches!(
        host.extension().and_then(|e| e.to_str()),
        Some("wasm") | Some("wat")
    );
    if host.is_absolute() && module_like && host.is_file() {
        return Ok(host.to_path_buf());
    }
    let targets: Vec<String> = inputs.iter().map(|i| canonical(&i.target)).collect();
    let known = if targets.is_empty() {
        "none".to_string()
    } else {
        targets.join(", ")
    };
    Err(ExecutorError::user(format!(
        "wasm engine: {role} {path} is not among the task's inputs (input targets: {known}); \
         add an input whose Target is {}, or fix the path",
        canonical(path)
    )))
}

/// The preopens for a task, creating each result folder under `results_dir`.
pub fn plan_mounts(
    inputs: &[PreparedInput],
    results_dir: &Path,
    result_paths: &[ResultPath],
) -> Result<Vec<Mount>, ExecutorError> {
    let mut mounts = Vec::new();
    for input in inputs {
        if input.host_path.is_dir() {
            mounts.push(Mount {
                host: input.host_path.clone(),
                guest: canonical(&input.target),
                writable: input.read_write,
            });
            continue;
        }
        let target = components(&input.target);
        let (Some(target_name), Some(host_name), Some(host_parent)) = (
            target.last(),
            input.host_path.file_name().and_then(|n| n.to_str()),
            input.host_path.parent(),
        ) else {
            continue;
        };
        if *target_name == host_name && host_parent.is_dir() {
            mounts.push(Mount {
                host: host_parent.to_path_buf(),
                guest: format!("/{}", target[..target.len() - 1].join("/")),
                writable: input.read_write,
            });
        }
    }
    for result in result_paths {
        let name = components(&result.name);
        if name.len() != 1 {
            return Err(ExecutorError::user(format!(
                "wasm engine: result path name {:?} must be a single folder name (no slashes); \
                 rename it, e.g. Name: output",
                result.name
            )));
        }
        let host = results_dir.join(name[0]);
        std::fs::create_dir_all(&host).map_err(|e| {
            ExecutorError::transient(format!(
                "wasm engine: cannot create the result folder {} for result {}: {e}; \
                 check the node's data dir is writable",
                host.display(),
                result.name
            ))
        })?;
        let at_path = canonical(&result.path);
        let at_name = format!("/{}", name[0]);
        if at_path != at_name {
            mounts.push(Mount {
                host: host.clone(),
                guest: at_path,
                writable: true,
            });
        }
        mounts.push(Mount {
            host,
            guest: at_name,
            writable: true,
        });
    }
    Ok(mounts)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn input(host: &Path, target: &str) -> PreparedInput {
        PreparedInput {
            host_path: host.to_path_buf(),
            target: target.into(),
            read_write: false,
        }
    }

    #[test]
    fn module_path_equal_to_an_input_target_resolves_to_its_host_file() {
        let inputs = [input(Path::new("/staged/0/main.wasm"), "app/main.wasm")];
        let host = resolve_module("entry module", "/app/./main.wasm", &inputs).unwrap();
        assert_eq!(host, Path::new("/staged/0/main.wasm"));
    }

    #[test]
    fn module_path_inside_the_deepest_directory_input_resolves_below_it() {
        let inputs = [
            input(Path::new("/outer"), "/app"),
            input(Path::new("/inner"), "/app/lib"),
        ];
        let host = resolve_module("import module", "/app/lib/x/m.wasm", &inputs).unwrap();
        assert_eq!(host, Path::new("/inner/x/m.wasm"));
    }

    #[test]
    fn unknown_module_path_names_the_path_and_the_inputs() {
        let inputs = [input(Path::new("/staged"), "/data")];
        let err = resolve_module("entry module", "/app/main.wasm", &inputs).unwrap_err();
        assert_eq!(
            err.to_string(),
            "wasm engine: entry module /app/main.wasm is not among the task's inputs \
             (input targets: /data); add an input whose Target is /app/main.wasm, or fix the path"
        );
    }

    #[test]
    fn host_files_that_are_not_modules_are_never_resolved() {
        let err = resolve_module("entry module", "/etc/hostname", &[]).unwrap_err();
        assert!(matches!(err, ExecutorError::User { .. }));
    }

    #[test]
    fn results_are_created_and_mounted_at_path_and_name() {
        let dir = tempfile::tempdir().unwrap();
        let results = [ResultPath {
            name: "out".into(),
            path: "/outputs".into(),
        }];
        let mounts = plan_mounts(&[], dir.path(), &results).unwrap();
        assert!(dir.path().join("out").is_dir());
        let guests: Vec<_> = mounts
            .iter()
            .map(|m| (m.guest.as_str(), m.writable))
            .collect();
        assert_eq!(guests, [("/outputs", true), ("/out", true)]);
    }

    #[test]
    fn file_input_mounts_its_folder_at_the_target_parent_read_only() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("main.wasm");
        std::fs::write(&file, b"").unwrap();
        let mounts = plan_mounts(&[input(&file, "/app/main.wasm")], dir.path(), &[]).unwrap();
        assert_eq!(
            mounts,
            [Mount {
                host: dir.path().to_path_buf(),
                guest: "/app".into(),
                writable: false
            }]
        );
    }
}
