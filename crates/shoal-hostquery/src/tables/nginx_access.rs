//! `nginx_access`: the requests in nginx (or Apache) access logs, one row per line in the
//! `combined` or `common` log format, from the files named by `WHERE path = '...'` or
//! `WHERE path GLOB '...'` under the directories the node allows (`--log-allow`).
//!
//! `time` is written the way SQLite's `datetime()` writes it, in UTC, so
//! `time > datetime('now', '-5 minutes')` selects the last five minutes whatever the log's
//! time zone; `unix_time` holds the same instant as seconds. A line that is not in either
//! format yields no row and is counted in one warning naming the first such line, so a
//! custom `log_format` shows up instead of silently thinning the answer. Reading is bounded
//! as [`crate::logfiles`] describes.

use crate::logfiles::{for_each_line, since};
use crate::table::{Column, HostTable, Row, ScanContext, TableError};
use crate::tables::time::{MONTHS, days_from_civil, sqlite_datetime};

/// The `nginx_access` table.
pub struct NginxAccess;

impl HostTable for NginxAccess {
    const NAME: &'static str = "nginx_access";
    const COLUMNS: &'static [Column] = &[
        Column::text("path").required().glob(),
        Column::text("remote_addr"),
        Column::text("remote_user"),
        Column::text("time"),
        Column::bigint("unix_time"),
        Column::text("request"),
        Column::text("method"),
        Column::text("uri"),
        Column::text("protocol"),
        Column::integer("status"),
        Column::bigint("bytes"),
        Column::text("referer"),
        Column::text("user_agent"),
        Column::bigint("offset"),
        Column::text("line").hidden(),
        Column::bigint("since").hidden().index(),
    ];

    fn rows(&self, cx: &mut ScanContext<'_>) -> Result<Vec<Row>, TableError> {
        let since = since(cx).unwrap_or(0) as i64;
        let mut rows = Vec::new();
        let mut unparsed: Option<(String, u64, usize)> = None;
        for_each_line(Self::NAME, cx, |line| {
            if line.text.trim().is_empty() {
                return;
            }
            let Some(entry) = Entry::parse(line.text) else {
                let first = unparsed.get_or_insert_with(|| (line.path.to_owned(), line.offset, 0));
                first.2 += 1;
                return;
            };
            let (method, uri, protocol) = entry.request_parts();
            rows.push(vec![
                line.path.into(),
                entry.remote_addr.into(),
                entry.remote_user.into(),
                sqlite_datetime(entry.unix_time).into(),
                entry.unix_time.into(),
                entry.request.as_str().into(),
                method.into(),
                uri.into(),
                protocol.into(),
                entry.status.into(),
                entry.bytes.into(),
                entry.referer.into(),
                entry.user_agent.into(),
                (line.offset as i64).into(),
                line.text.into(),
                since.into(),
            ]);
        })?;
        if let Some((path, offset, count)) = unparsed {
            cx.warn(format!(
                "{}: {count} line(s) are not in the combined or common log format and were left out, the first in {path} at byte {offset}; read them with file_lines",
                Self::NAME
            ));
        }
        Ok(rows)
    }
}

/// One parsed access-log line.
#[derive(Debug, PartialEq)]
struct Entry<'a> {
    remote_addr: &'a str,
    /// Empty for `-`.
    remote_user: &'a str,
    unix_time: i64,
    request: String,
    status: i64,
    /// 0 for `-`.
    bytes: i64,
    /// Empty for `-` or when the line is in the common format.
    referer: String,
    /// Empty for `-` or when the line is in the common format.
    user_agent: String,
}

impl<'a> Entry<'a> {
    /// Parses `addr ident user [time] "request" status bytes ["referer" "agent"]`.
    fn parse(line: &'a str) -> Option<Self> {
        let mut rest = line;
        let remote_addr = word(&mut rest)?;
        let _ident = word(&mut rest)?;
        let remote_user = word(&mut rest)?;
        let time = rest.trim_start().strip_prefix('[')?;
        let close = time.find(']')?;
        let unix_time = parse_time(&time[..close])?;
        rest = time[close + 1..].trim_start();
        let request = quoted(&mut rest)?;
        let status = word(&mut rest)?.parse().ok()?;
        let bytes = match word(&mut rest)? {
            "-" => 0,
            n => n.parse().ok()?,
        };
        let (referer, user_agent) = if rest.trim().is_empty() {
            (String::new(), String::new())
        } else {
            (quoted(&mut rest)?, quoted(&mut rest)?)
        };
        let dash = |s: String| if s == "-" { String::new() } else { s };
        Some(Entry {
            remote_addr,
            remote_user: if remote_user == "-" { "" } else { remote_user },
            unix_time,
            request,
            status,
            bytes,
            referer: dash(referer),
            user_agent: dash(user_agent),
        })
    }

    /// The request line's method, URI and protocol; all empty when it has another shape
    /// (a client that sent garbage is logged as it sent it, in `request`).
    fn request_parts(&self) -> (&str, &str, &str) {
        let mut parts = self.request.split(' ');
        match (parts.next(), parts.next(), parts.next(), parts.next()) {
            (Some(m), Some(u), Some(p), None) => (m, u, p),
            (Some(m), Some(u), None, None) => (m, u, ""),
            _ => ("", "", ""),
        }
    }
}

/// The next space-delimited word of `rest`, which moves past it.
fn word<'a>(rest: &mut &'a str) -> Option<&'a str> {
    let s = rest.trim_start();
    if s.is_empty() {
        return None;
    }
    let end = s.find(' ').unwrap_or(s.len());
    *rest = &s[end..];
    Some(&s[..end])
}

/// The next double-quoted field of `rest`, unescaping `\"` and `\\`, which moves past it.
fn quoted(rest: &mut &str) -> Option<String> {
    let s = rest.trim_start().strip_prefix('"')?;
    let mut out = String::new();
    let mut chars = s.char_indices();
    while let Some((i, c)) = chars.next() {
        match c {
            '"' => {
                *rest = &s[i + 1..];
                return Some(out);
            }
            '\\' => match chars.next() {
                Some((_, e @ ('"' | '\\'))) => out.push(e),
                Some((_, e)) => {
                    out.push('\\');
                    out.push(e);
                }
                None => return None,
            },
            c => out.push(c),
        }
    }
    None
}

/// `10/Oct/2000:13:55:36 -0700` to Unix seconds.
fn parse_time(s: &str) -> Option<i64> {
    let (local, zone) = s.split_once(' ')?;
    let mut fields = local.splitn(4, ['/', ':']);
    let day: i64 = fields.next()?.parse().ok()?;
    let month = fields.next()?;
    let month = MONTHS.iter().position(|m| *m == month)? as i64 + 1;
    let year: i64 = fields.next()?.parse().ok()?;
    let mut hms = fields.next()?.split(':');
    let h: i64 = hms.next()?.parse().ok()?;
    let m: i64 = hms.next()?.parse().ok()?;
    let sec: i64 = hms.next()?.parse().ok()?;
    if hms.next().is_some() || !(1..=31).contains(&day) || h > 23 || m > 59 || sec > 60 {
        return None;
    }
    let sign = match zone.as_bytes().first()? {
        b'+' => 1,
        b'-' => -1,
        _ => return None,
    };
    let digits = zone.get(1..5).filter(|d| d.len() == 4 && zone.len() == 5)?;
    let zh: i64 = digits[..2].parse().ok()?;
    let zm: i64 = digits[2..].parse().ok()?;
    let offset = sign * (zh * 3600 + zm * 60);
    Some(days_from_civil(year, month, day) * 86_400 + h * 3600 + m * 60 + sec - offset)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_combined_format() {
        let line = r#"203.0.113.9 - alice [10/Oct/2000:13:55:36 -0700] "GET /a.gif?x=\"1\" HTTP/1.1" 200 2326 "http://example.com/start.html" "Mozilla/4.08 [en] (Win98; I ;Nav)""#;
        let e = Entry::parse(line).unwrap();
        assert_eq!(e.remote_addr, "203.0.113.9");
        assert_eq!(e.remote_user, "alice");
        assert_eq!(e.request, r#"GET /a.gif?x="1" HTTP/1.1"#);
        assert_eq!(e.request_parts(), ("GET", r#"/a.gif?x="1""#, "HTTP/1.1"));
        assert_eq!((e.status, e.bytes), (200, 2326));
        assert_eq!(e.referer, "http://example.com/start.html");
        assert_eq!(e.user_agent, "Mozilla/4.08 [en] (Win98; I ;Nav)");
        // 13:55:36 at -07:00 is 20:55:36 UTC.
        assert_eq!(sqlite_datetime(e.unix_time), "2000-10-10 20:55:36");
        assert_eq!(e.unix_time, 971_211_336);
    }

    #[test]
    fn parses_the_common_format_and_dashes() {
        let e = Entry::parse(r#"::1 - - [01/Jan/2026:00:00:05 +0100] "HEAD / HTTP/1.0" 304 -"#)
            .unwrap();
        assert_eq!((e.remote_addr, e.remote_user), ("::1", ""));
        assert_eq!((e.status, e.bytes), (304, 0));
        assert_eq!((e.referer.as_str(), e.user_agent.as_str()), ("", ""));
        // An hour east of UTC: the last day of 2025 in UTC.
        assert_eq!(sqlite_datetime(e.unix_time), "2025-12-31 23:00:05");
    }

    #[test]
    fn a_garbage_request_is_kept_whole() {
        let e = Entry::parse(
            r#"10.0.0.1 - - [04/Dec/2026:10:00:00 +0000] "\x16\x03\x01" 400 150 "-" "-""#,
        )
        .unwrap();
        assert_eq!(e.request, r"\x16\x03\x01");
        assert_eq!(e.request_parts(), ("", "", ""));
        assert_eq!(e.status, 400);
    }

    #[test]
    fn other_formats_do_not_parse() {
        for line in [
            "2026/12/04 10:00:00 [error] 12#12: *1 open() failed",
            r#"10.0.0.1 - - [04/Dec/2026:10:00:00] "GET / HTTP/1.1" 200 1"#,
            r#"10.0.0.1 - - [04/Foo/2026:10:00:00 +0000] "GET / HTTP/1.1" 200 1"#,
            r#"10.0.0.1 - - [04/Dec/2026:10:00:00 +0000] "GET / HTTP/1.1" OK 1"#,
            r#"10.0.0.1 - - [04/Dec/2026:10:00:00 +0000] "GET / HTTP/1.1 200 1"#,
        ] {
            assert_eq!(Entry::parse(line), None, "{line}");
        }
    }

    #[test]
    fn civil_days_round_trip() {
        for (y, m, d, days) in [(1970, 1, 1, 0), (2000, 3, 1, 11_017), (2024, 2, 29, 19_782)] {
            assert_eq!(days_from_civil(y, m, d), days);
            assert_eq!(
                sqlite_datetime(days * 86_400),
                format!("{y:04}-{m:02}-{d:02} 00:00:00")
            );
        }
    }
}
