//! `authorized_keys`: one row per key line in each user's `~/.ssh/authorized_keys` and
//! `authorized_keys2`. `WHERE uid = N` (or a join on `uid`, as fleet queries do) reads only
//! those users' files.

use crate::accounts::{Account, accounts};
use crate::hostfs;
use crate::table::{Column, HostTable, Row, ScanContext, TableError};

/// osquery's `authorized_keys` table.
pub struct AuthorizedKeys;

impl HostTable for AuthorizedKeys {
    const NAME: &'static str = "authorized_keys";
    const COLUMNS: &'static [Column] = &[
        Column::bigint("uid").index(),
        Column::text("algorithm"),
        Column::text("key"),
        Column::text("options"),
        Column::text("comment"),
        Column::text("key_file"),
    ];

    fn rows(&self, cx: &mut ScanContext<'_>) -> Result<Vec<Row>, TableError> {
        let mut rows = Vec::new();
        for user in users_for(cx) {
            for name in ["authorized_keys", "authorized_keys2"] {
                let path = format!("{}/.ssh/{name}", user.home.trim_end_matches('/'));
                let Some(text) = hostfs::read(&path) else {
                    continue;
                };
                for key in text.lines().filter_map(parse_line) {
                    rows.push(vec![
                        user.uid.into(),
                        key.algorithm.into(),
                        key.key.into(),
                        key.options.into(),
                        key.comment.into(),
                        path.clone().into(),
                    ]);
                }
            }
        }
        Ok(rows)
    }
}

/// The accounts a per-user table should look at: those named by a `uid` constraint, or all.
pub(crate) fn users_for(cx: &ScanContext<'_>) -> Vec<Account> {
    let wanted = cx.constraints.integers("uid");
    accounts()
        .into_iter()
        .filter(|a| {
            wanted
                .as_ref()
                .is_none_or(|w| w.contains(&i64::from(a.uid)))
        })
        .collect()
}

#[derive(Debug, PartialEq)]
struct KeyLine {
    options: String,
    algorithm: String,
    key: String,
    comment: String,
}

fn is_algorithm(token: &str) -> bool {
    token.starts_with("ssh-") || token.starts_with("ecdsa-") || token.starts_with("sk-")
}

fn parse_line(line: &str) -> Option<KeyLine> {
    let line = line.trim();
    if line.is_empty() || line.starts_with('#') {
        return None;
    }
    let (options, rest) = if line.split_whitespace().next().is_some_and(is_algorithm) {
        ("", line)
    } else {
        // Options end at the first blank outside double quotes.
        let mut quoted = false;
        let end = line
            .char_indices()
            .find(|&(_, c)| {
                if c == '"' {
                    quoted = !quoted;
                }
                c.is_whitespace() && !quoted
            })
            .map(|(i, _)| i)?;
        (&line[..end], line[end..].trim_start())
    };
    let mut parts = rest.splitn(3, char::is_whitespace);
    let algorithm = parts.next()?.to_string();
    let key = parts.next().unwrap_or_default().to_string();
    let comment = parts.next().unwrap_or_default().trim().to_string();
    Some(KeyLine {
        options: options.to_string(),
        algorithm,
        key,
        comment,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_lines_split_into_options_algorithm_key_and_comment() {
        let k = parse_line(r#"command="echo hi there",no-pty ssh-ed25519 AAAAC3Nz bob@host x"#)
            .unwrap();
        assert_eq!(k.options, r#"command="echo hi there",no-pty"#);
        assert_eq!(k.algorithm, "ssh-ed25519");
        assert_eq!(k.key, "AAAAC3Nz");
        assert_eq!(k.comment, "bob@host x");
        let plain = parse_line("ssh-rsa AAAAB3 me").unwrap();
        assert_eq!((plain.options.as_str(), plain.comment.as_str()), ("", "me"));
        assert_eq!(parse_line("# comment"), None);
    }
}
