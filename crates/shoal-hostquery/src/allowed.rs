//! Which host files a query may read: its paths and globs expanded under the directories the
//! node allows, every file checked where it really is (symlinks resolved). Shared by the
//! host tables that read file contents (`file_lines`, `nginx_access`; `--log-allow`) and by
//! the analytics engine's table functions (`read_parquet`, ...; `--data-allow`).

use std::path::{Component, Path, PathBuf};

/// Most files one table or table function may read.
pub const MAX_FILES: usize = 10_000;

/// A directory queries may read: the path they write (`name`) and where its files are on
/// this host (`real`); the same unless the node maps it (`--data-allow /data=/srv/eu`), so
/// that one query reads each node's own files under one path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AllowedDir {
    /// The path as queries write it.
    pub name: PathBuf,
    /// The directory on this host.
    pub real: PathBuf,
}

impl AllowedDir {
    /// Reads `DIR` or `NAME=DIR`; both absolute.
    pub fn parse(text: &str) -> Result<AllowedDir, String> {
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
        Ok(AllowedDir {
            name: PathBuf::from(name),
            real: PathBuf::from(real),
        })
    }
}

impl std::fmt::Display for AllowedDir {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.name == self.real {
            write!(f, "{}", self.name.display())
        } else {
            write!(f, "{} (from {})", self.name.display(), self.real.display())
        }
    }
}

/// A file a pattern matched: where it is on this host (`real`, symlinks resolved) and the
/// path queries see for it (`name`, under the [`AllowedDir::name`] it was found in).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Found {
    /// The path as queries see it.
    pub name: PathBuf,
    /// The file on this host.
    pub real: PathBuf,
}

/// Why patterns named no readable file. Both carry a whole message for the user.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ResolveError {
    /// A pattern matched nothing on this host (a log table reads that as no rows).
    #[error("{0}")]
    NoMatch(String),
    /// A pattern is outside the allowed directories, malformed, or a file cannot be read.
    #[error("{0}")]
    Refused(String),
}

/// Expands `patterns` (absolute paths, globs with `*`, `?`, `[..]` and `**`, or directories,
/// which stand for the files directly in them) into the files they name on this host, each
/// under one of `allow`. `function` names the caller in messages, `flag` the agent option that
/// allows directories. Errors are whole messages for the user.
pub fn resolve(
    function: &str,
    patterns: &[String],
    allow: &[AllowedDir],
    flag: &str,
) -> Result<Vec<Found>, ResolveError> {
    use ResolveError::{NoMatch, Refused};
    if allow.is_empty() {
        return Err(Refused(format!(
            "{function}: this node allows reading no directories; start its agent with {flag} DIR"
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
            Refused(format!(
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
            Refused(format!(
                "{function}('{pattern}'): the node's allowed directory {} cannot be read: {e}",
                dir.real.display()
            ))
        })?;
        let no_match = || {
            NoMatch(format!(
                "{function}('{pattern}'): no file matches; check the path on the node (it reads only under {shown})"
            ))
        };
        let real_prefix = literal_prefix(&on_host).canonicalize().map_err(|e| {
            if e.kind() == std::io::ErrorKind::NotFound {
                no_match()
            } else {
                Refused(format!(
                    "{function}('{pattern}'): cannot read {}: {e}",
                    prefix.display()
                ))
            }
        })?;
        if !real_prefix.starts_with(&real_dir) {
            return Err(refused("outside the allowed directories"));
        }
        let before = files.len();
        let glob_text = on_host.to_string_lossy().into_owned();
        let matches =
            glob::glob(&glob_text).map_err(|e| refused(&format!("not a valid glob ({e})")))?;
        let place = Place {
            function,
            pattern,
            dir,
            real_dir: &real_dir,
            shown: &shown,
        };
        for entry in matches {
            let found =
                entry.map_err(|e| Refused(format!("{function}('{pattern}'): cannot read {e}")))?;
            place.add(&found, &mut files).map_err(Refused)?;
        }
        if files.len() == before {
            return Err(no_match());
        }
    }
    files.sort();
    files.dedup();
    Ok(files)
}

/// Where one pattern's matches are checked and named.
struct Place<'a> {
    function: &'a str,
    pattern: &'a str,
    dir: &'a AllowedDir,
    /// `dir.real`, canonical.
    real_dir: &'a Path,
    shown: &'a str,
}

impl Place<'_> {
    /// Adds a matched path: a file, or the files directly in a directory.
    fn add(&self, found: &Path, files: &mut Vec<Found>) -> Result<(), String> {
        let (function, pattern) = (self.function, self.pattern);
        let read_err = |p: &Path, e: std::io::Error| {
            format!("{function}('{pattern}'): cannot read {}: {e}", p.display())
        };
        let real = found.canonicalize().map_err(|e| read_err(found, e))?;
        let Ok(inside_dir) = real.strip_prefix(self.real_dir) else {
            return Err(format!(
                "{function}('{pattern}'): {} leads to {}, outside the allowed directories; this node reads only under {}",
                found.display(),
                real.display(),
                self.shown
            ));
        };
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
                self.add(&f, files)?;
            }
            return Ok(());
        }
        if files.len() >= MAX_FILES {
            return Err(format!(
                "{function}('{pattern}'): more than {MAX_FILES} files; narrow the glob"
            ));
        }
        files.push(Found {
            name: self.dir.name.join(inside_dir),
            real,
        });
        Ok(())
    }
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

    const F: &str = "--data-allow";

    fn real(found: Vec<Found>) -> Vec<PathBuf> {
        found.into_iter().map(|f| f.real).collect()
    }

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
        let allow = vec![AllowedDir::parse(&s(&data)).unwrap()];
        let files = resolve("read_csv", &[s(&data.join("eu/[ab].csv"))], &allow, F).unwrap();
        let canonical = data.canonicalize().unwrap();
        assert_eq!(
            real(files),
            vec![canonical.join("eu/a.csv"), canonical.join("eu/b.csv")]
        );
        let err = resolve("read_csv", &[s(&data.join("eu"))], &allow, F)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("link.csv leads to") && err.contains("outside the allowed directories"),
            "a symlink out of the allowed tree is refused: {err}"
        );
    }

    #[test]
    fn paths_outside_relative_or_unmatched_are_refused_by_name() {
        let dir = tree();
        let data = dir.path().join("data");
        let allow = vec![AllowedDir::parse(&s(&data)).unwrap()];
        let outside = s(&dir.path().join("secret/*.csv"));
        let err = resolve("read_csv", std::slice::from_ref(&outside), &allow, F)
            .unwrap_err()
            .to_string();
        assert_eq!(
            err,
            format!(
                "read_csv('{outside}'): outside the allowed directories; this node reads only under {}",
                data.display()
            )
        );
        let err = resolve("read_csv", &["data/*.csv".into()], &allow, F)
            .unwrap_err()
            .to_string();
        assert!(err.contains("must be absolute"), "{err}");
        let dotdot = format!("{}/../secret/key.csv", data.display());
        let err = resolve("read_csv", &[dotdot], &allow, F)
            .unwrap_err()
            .to_string();
        assert!(err.contains("'..'"), "{err}");
        let none = s(&data.join("eu/*.parquet"));
        let err = resolve("read_parquet", &[none], &allow, F).unwrap_err();
        assert!(
            matches!(&err, ResolveError::NoMatch(m) if m.contains("no file matches")),
            "{err}"
        );
        let missing_dir = s(&data.join("nowhere/*.csv"));
        let err = resolve("read_csv", &[missing_dir], &allow, F).unwrap_err();
        assert!(matches!(err, ResolveError::NoMatch(_)), "{err}");
        let err = resolve("read_csv", &[s(&data.join("eu/a.csv"))], &[], F)
            .unwrap_err()
            .to_string();
        assert!(err.contains("--data-allow"), "{err}");
    }

    #[test]
    fn a_mapped_directory_shows_the_hosts_files_under_the_name_queries_use() {
        let dir = tree();
        let real_dir = dir.path().join("data/eu");
        let allow = vec![AllowedDir::parse(&format!("/data={}", real_dir.display())).unwrap()];
        let files = resolve("read_csv", &["/data/a.csv".into()], &allow, F).unwrap();
        assert_eq!(files[0].name, Path::new("/data/a.csv"));
        assert_eq!(
            real(files),
            vec![real_dir.canonicalize().unwrap().join("a.csv")]
        );
        let err = resolve("read_csv", &["/srv/a.csv".into()], &allow, F)
            .unwrap_err()
            .to_string();
        assert!(err.ends_with("this node reads only under /data"), "{err}");
        assert!(
            AllowedDir::parse("data=/x")
                .unwrap_err()
                .contains("absolute")
        );
    }
}
