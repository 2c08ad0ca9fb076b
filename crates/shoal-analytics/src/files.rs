//! Which files a table function may read: its patterns expanded under the node's allowed
//! directories, every file checked where it really is (symlinks resolved).

use std::path::{Component, Path, PathBuf};

use crate::DataError;

/// Most files one table function may read.
pub const MAX_FILES: usize = 10_000;

/// A directory queries may read: the path they write (`name`) and where its files are on
/// this host (`real`); the same unless the node maps it (`--data-allow /data=/srv/eu`), so
/// that one query reads each node's own files under one path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DataDir {
    /// The path as queries write it.
    pub name: PathBuf,
    /// The directory on this host.
    pub real: PathBuf,
}

impl DataDir {
    /// Reads `DIR` or `NAME=DIR`; both absolute.
    pub fn parse(text: &str) -> Result<DataDir, String> {
        let (name, real) = match text.split_once('=') {
            Some((n, r)) => (n.trim(), r.trim()),
            None => (text.trim(), text.trim()),
        };
        for p in [name, real] {
            if !Path::new(p).is_absolute() {
                return Err(format!(
                    "{text:?}: give an absolute directory, or NAME=DIR to show DIR to queries as NAME (e.g. /data=/srv/shards/eu)"
                ));
            }
        }
        Ok(DataDir {
            name: PathBuf::from(name),
            real: PathBuf::from(real),
        })
    }
}

impl std::fmt::Display for DataDir {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.name == self.real {
            write!(f, "{}", self.name.display())
        } else {
            write!(f, "{} (from {})", self.name.display(), self.real.display())
        }
    }
}

/// Expands `patterns` (absolute paths, globs with `*`, `?`, `[..]` and `**`, or directories,
/// which stand for the files directly in them) into the files they name on this host, each
/// under one of `allow`. `function` names the caller in messages.
pub fn resolve(
    function: &str,
    patterns: &[String],
    allow: &[DataDir],
) -> Result<Vec<PathBuf>, DataError> {
    if allow.is_empty() {
        return Err(DataError::Files(format!(
            "{function}: this node allows no data directories; start its agent with --data-allow DIR"
        )));
    }
    let shown = allow
        .iter()
        .map(|d| d.name.display().to_string())
        .collect::<Vec<_>>()
        .join(", ");
    let mut files = Vec::new();
    for pattern in patterns {
        let refused = |why: &str| {
            DataError::Files(format!(
                "{function}('{pattern}'): {why}; this node reads only under {shown}"
            ))
        };
        let path = Path::new(pattern);
        if !path.is_absolute() {
            return Err(refused("the path must be absolute"));
        }
        if path.components().any(|c| c == Component::ParentDir) {
            return Err(refused("the path must not contain '..'"));
        }
        let prefix = literal_prefix(path);
        // The allowed directory the pattern starts in, most specific first.
        let Some(dir) = allow
            .iter()
            .filter(|d| prefix.starts_with(&d.name))
            .max_by_key(|d| d.name.components().count())
        else {
            return Err(refused("outside the allowed directories"));
        };
        let rest = path.strip_prefix(&dir.name).expect("checked above");
        let on_host = dir.real.join(rest);
        let real_dir = dir.real.canonicalize().map_err(|e| {
            DataError::Files(format!(
                "{function}('{pattern}'): the node's data directory {} cannot be read: {e}",
                dir.real.display()
            ))
        })?;
        let real_prefix = literal_prefix(&on_host).canonicalize().map_err(|e| {
            DataError::Files(format!(
                "{function}('{pattern}'): cannot read {}: {e}",
                prefix.display()
            ))
        })?;
        if !real_prefix.starts_with(&real_dir) {
            return Err(refused("outside the allowed directories"));
        }
        let before = files.len();
        let glob_text = on_host.to_string_lossy().into_owned();
        let matches =
            glob::glob(&glob_text).map_err(|e| refused(&format!("not a valid glob ({e})")))?;
        for entry in matches {
            let found = entry.map_err(|e| {
                DataError::Files(format!("{function}('{pattern}'): cannot read {e}"))
            })?;
            add(function, pattern, &found, &real_dir, &shown, &mut files)?;
        }
        if files.len() == before {
            return Err(DataError::Files(format!(
                "{function}('{pattern}'): no file matches; check the path on the node (its data directories: {shown})"
            )));
        }
    }
    files.sort();
    files.dedup();
    Ok(files)
}

/// Adds a matched path: a file, or the files directly in a directory.
fn add(
    function: &str,
    pattern: &str,
    found: &Path,
    allowed: &Path,
    shown: &str,
    files: &mut Vec<PathBuf>,
) -> Result<(), DataError> {
    let read_err = |p: &Path, e: std::io::Error| {
        DataError::Files(format!(
            "{function}('{pattern}'): cannot read {}: {e}",
            p.display()
        ))
    };
    let real = found.canonicalize().map_err(|e| read_err(found, e))?;
    if !real.starts_with(allowed) {
        return Err(DataError::Files(format!(
            "{function}('{pattern}'): {} leads to {}, outside the allowed directories; this node reads only under {shown}",
            found.display(),
            real.display()
        )));
    }
    if real.is_dir() {
        let mut inside: Vec<PathBuf> = std::fs::read_dir(&real)
            .map_err(|e| read_err(&real, e))?
            .filter_map(Result::ok)
            .map(|e| e.path())
            .filter(|p| {
                p.is_file()
                    && !p
                        .file_name()
                        .is_some_and(|n| n.to_string_lossy().starts_with('.'))
            })
            .collect();
        inside.sort();
        for f in inside {
            add(function, pattern, &f, allowed, shown, files)?;
        }
        return Ok(());
    }
    if files.len() >= MAX_FILES {
        return Err(DataError::Files(format!(
            "{function}('{pattern}'): more than {MAX_FILES} files; narrow the glob"
        )));
    }
    files.push(real);
    Ok(())
}

/// The leading components without glob characters: where matching starts.
fn literal_prefix(path: &Path) -> PathBuf {
    let mut prefix = PathBuf::new();
    for c in path.components() {
        if c.as_os_str().to_string_lossy().contains(['*', '?', '[']) {
            break;
        }
        prefix.push(c);
    }
    prefix
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tree() -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("data");
        std::fs::create_dir_all(data.join("eu")).unwrap();
        std::fs::create_dir_all(dir.path().join("secret")).unwrap();
        std::fs::write(data.join("eu/a.csv"), "x\n1\n").unwrap();
        std::fs::write(data.join("eu/b.csv"), "x\n2\n").unwrap();
        std::fs::write(data.join("eu/.hidden"), "x\n").unwrap();
        std::fs::write(dir.path().join("secret/key.csv"), "k\n").unwrap();
        std::os::unix::fs::symlink(dir.path().join("secret/key.csv"), data.join("eu/link.csv"))
            .unwrap();
        dir
    }

    fn s(p: &Path) -> String {
        p.display().to_string()
    }

    #[test]
    fn globs_and_directories_expand_to_the_files_under_the_allowed_dirs() {
        let dir = tree();
        let data = dir.path().join("data");
        let allow = vec![DataDir::parse(&s(&data)).unwrap()];
        let files = resolve("read_csv", &[s(&data.join("eu/[ab].csv"))], &allow).unwrap();
        let real = data.canonicalize().unwrap();
        assert_eq!(files, vec![real.join("eu/a.csv"), real.join("eu/b.csv")]);
        let err = resolve("read_csv", &[s(&data.join("eu"))], &allow).unwrap_err();
        assert!(
            err.to_string().contains("link.csv leads to")
                && err.to_string().contains("outside the allowed directories"),
            "a symlink out of the allowed tree is refused: {err}"
        );
    }

    #[test]
    fn paths_outside_relative_or_unmatched_are_refused_by_name() {
        let dir = tree();
        let data = dir.path().join("data");
        let allow = vec![DataDir::parse(&s(&data)).unwrap()];
        let outside = s(&dir.path().join("secret/*.csv"));
        let err = resolve("read_csv", std::slice::from_ref(&outside), &allow).unwrap_err();
        assert_eq!(
            err.to_string(),
            format!(
                "read_csv('{outside}'): outside the allowed directories; this node reads only under {}",
                data.display()
            )
        );
        let err = resolve("read_csv", &["data/*.csv".into()], &allow).unwrap_err();
        assert!(err.to_string().contains("must be absolute"), "{err}");
        let dotdot = format!("{}/../secret/key.csv", data.display());
        let err = resolve("read_csv", &[dotdot], &allow).unwrap_err();
        assert!(err.to_string().contains("'..'"), "{err}");
        let none = s(&data.join("eu/*.parquet"));
        let err = resolve("read_parquet", &[none], &allow).unwrap_err();
        assert!(err.to_string().contains("no file matches"), "{err}");
        let err = resolve("read_csv", &[s(&data.join("eu/a.csv"))], &[]).unwrap_err();
        assert!(err.to_string().contains("--data-allow"), "{err}");
    }

    #[test]
    fn a_mapped_directory_shows_the_hosts_files_under_the_name_queries_use() {
        let dir = tree();
        let real = dir.path().join("data/eu");
        let allow = vec![DataDir::parse(&format!("/data={}", real.display())).unwrap()];
        let files = resolve("read_csv", &["/data/a.csv".into()], &allow).unwrap();
        assert_eq!(files, vec![real.canonicalize().unwrap().join("a.csv")]);
        let err = resolve("read_csv", &["/srv/a.csv".into()], &allow).unwrap_err();
        assert!(
            err.to_string()
                .ends_with("this node reads only under /data"),
            "{err}"
        );
        assert!(DataDir::parse("data=/x").unwrap_err().contains("absolute"));
    }
}
