//! The log tables (`file_lines`, `nginx_access`) over real files in a temporary directory
//! offered as the node's `/var/log`: what they read, what they refuse, and what they say
//! when they cannot read everything.

use std::io::Write;
use std::path::Path;

use shoal_hostquery::allowed::AllowedDir;
use shoal_hostquery::{QueryLimits, QueryResult, Value, run_query};

/// Limits that show `dir` to queries as `/var/log`.
fn offering(dir: &Path) -> QueryLimits {
    QueryLimits {
        log_dirs: vec![AllowedDir::parse(&format!("/var/log={}", dir.display())).unwrap()],
        ..QueryLimits::default()
    }
}

fn query(sql: &str, limits: &QueryLimits) -> QueryResult {
    run_query(sql, limits).unwrap_or_else(|e| panic!("{sql}: {e}"))
}

fn refused(sql: &str, limits: &QueryLimits) -> String {
    match run_query(sql, limits) {
        Ok(r) => panic!("{sql} ran: {:?}", r.rows),
        Err(e) => e.to_string(),
    }
}

fn write(path: &Path, text: &str) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, text).unwrap();
}

fn texts(r: &QueryResult, col: usize) -> Vec<String> {
    r.rows
        .iter()
        .map(|row| row[col].to_osquery_string())
        .collect()
}

#[test]
fn file_lines_reads_every_line_with_its_offset_under_the_name_queries_use() {
    let dir = tempfile::tempdir().unwrap();
    write(&dir.path().join("app.log"), "one\ntwo\r\n\nthree");
    let r = query(
        "SELECT path, line, offset FROM file_lines WHERE path = '/var/log/app.log'",
        &offering(dir.path()),
    );
    assert_eq!(texts(&r, 0), vec!["/var/log/app.log"; 4]);
    assert_eq!(texts(&r, 1), vec!["one", "two", "", "three"]);
    assert_eq!(texts(&r, 2), vec!["0", "4", "9", "10"]);
    assert!(r.warnings.is_empty(), "{:?}", r.warnings);
}

#[test]
fn since_reads_only_what_was_written_after_an_offset() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("app.log");
    write(&log, "old 1\nold 2\n");
    let limits = offering(dir.path());
    let r = query(
        "SELECT max(offset) + length(line) + 1 FROM file_lines WHERE path = '/var/log/app.log'",
        &limits,
    );
    let next = r.rows[0][0].to_osquery_string();
    std::fs::OpenOptions::new()
        .append(true)
        .open(&log)
        .unwrap()
        .write_all(b"new 1\nnew 2\n")
        .unwrap();
    let r = query(
        &format!("SELECT line FROM file_lines WHERE path = '/var/log/app.log' AND since = {next}"),
        &limits,
    );
    assert_eq!(texts(&r, 0), vec!["new 1", "new 2"]);
    // An offset inside a line starts at the next whole line.
    let r = query(
        "SELECT line FROM file_lines WHERE path = '/var/log/app.log' AND since = 2",
        &limits,
    );
    assert_eq!(texts(&r, 0), vec!["old 2", "new 1", "new 2"]);
}

#[test]
fn glob_reads_every_matching_file_and_nothing_else() {
    let dir = tempfile::tempdir().unwrap();
    write(&dir.path().join("nginx/access.log"), "a\n");
    write(&dir.path().join("nginx/access.log.1"), "b\n");
    write(&dir.path().join("nginx/error.log"), "c\n");
    let r = query(
        "SELECT path, line FROM file_lines WHERE path GLOB '/var/log/nginx/access.log*' ORDER BY path",
        &offering(dir.path()),
    );
    assert_eq!(
        texts(&r, 0),
        vec!["/var/log/nginx/access.log", "/var/log/nginx/access.log.1"]
    );
    assert_eq!(texts(&r, 1), vec!["a", "b"]);
}

#[test]
fn a_file_outside_the_offered_directories_is_refused_by_name() {
    let dir = tempfile::tempdir().unwrap();
    let e = refused(
        "SELECT line FROM file_lines WHERE path = '/etc/passwd'",
        &offering(dir.path()),
    );
    assert!(
        e.contains("/etc/passwd") && e.contains("outside the allowed directories"),
        "{e}"
    );
    assert!(
        e.contains("/var/log"),
        "the error names what is allowed: {e}"
    );
    let e = refused(
        "SELECT line FROM file_lines WHERE path = '/var/log/../../etc/passwd'",
        &offering(dir.path()),
    );
    assert!(e.contains("'..'"), "{e}");
}

#[test]
fn a_node_that_offers_no_directory_reads_no_log() {
    let e = refused(
        "SELECT line FROM file_lines WHERE path = '/var/log/syslog'",
        &QueryLimits::default(),
    );
    assert!(
        e.contains("--log-allow"),
        "the error says how to offer logs: {e}"
    );
}

#[test]
fn a_symlink_out_of_the_offered_directory_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let secret = tempfile::tempdir().unwrap();
    write(&secret.path().join("shadow"), "root:x\n");
    std::os::unix::fs::symlink(secret.path().join("shadow"), dir.path().join("app.log")).unwrap();
    let e = refused(
        "SELECT line FROM file_lines WHERE path = '/var/log/app.log'",
        &offering(dir.path()),
    );
    assert!(e.contains("outside the allowed directories"), "{e}");
    assert!(!e.contains("root:x"), "{e}");
}

#[test]
fn a_missing_log_is_no_rows_and_a_warning() {
    let dir = tempfile::tempdir().unwrap();
    let r = query(
        "SELECT line FROM file_lines WHERE path = '/var/log/nginx/access.log'",
        &offering(dir.path()),
    );
    assert!(r.rows.is_empty());
    assert!(
        r.warnings.iter().any(|w| w.contains("no file matches")),
        "{:?}",
        r.warnings
    );
}

#[test]
fn a_compressed_log_is_skipped_with_a_warning() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("app.log.1.gz"), [0x1f, 0x8b, 8, 0, 0, 0]).unwrap();
    write(&dir.path().join("app.log"), "plain\n");
    let r = query(
        "SELECT line FROM file_lines WHERE path GLOB '/var/log/app.log*'",
        &offering(dir.path()),
    );
    assert_eq!(texts(&r, 0), vec!["plain"]);
    assert!(
        r.warnings
            .iter()
            .any(|w| w.contains("app.log.1.gz is compressed")),
        "{:?}",
        r.warnings
    );
}

#[test]
fn a_log_larger_than_one_scan_reads_its_end_and_says_how_to_read_the_rest() {
    let dir = tempfile::tempdir().unwrap();
    let line = format!("{}\n", "x".repeat(1023));
    let lines = (shoal_hostquery::SCAN_BYTES / 1024) as usize + 100;
    write(&dir.path().join("big.log"), &line.repeat(lines));
    let limits = offering(dir.path());
    let r = query(
        "SELECT count(*), min(offset) FROM file_lines WHERE path = '/var/log/big.log'",
        &limits,
    );
    let read = r.rows[0][0].clone();
    assert_eq!(read, Value::Integer((lines - 100) as i64));
    assert_eq!(r.rows[0][1], Value::Integer(100 * 1024));
    let warning = r
        .warnings
        .iter()
        .find(|w| w.contains("read /var/log/big.log from byte 102400"))
        .unwrap_or_else(|| panic!("{:?}", r.warnings));
    assert!(warning.contains("since = 0"), "{warning}");
    // The suggested `since` reads the part before.
    let r = query(
        "SELECT count(*) FROM file_lines WHERE path = '/var/log/big.log' AND since = 0 AND offset < 102400",
        &limits,
    );
    assert_eq!(r.rows[0][0], Value::Integer(100));
}

#[test]
fn nginx_access_parses_requests_and_reports_lines_in_another_format() {
    let dir = tempfile::tempdir().unwrap();
    let log = concat!(
        "10.0.0.1 - - [04/Dec/2026:10:00:00 +0000] \"GET / HTTP/1.1\" 200 612 \"-\" \"curl/8.5\"\n",
        "10.0.0.2 - bob [04/Dec/2026:11:00:01 +0100] \"POST /api HTTP/2.0\" 502 0 \"https://x/\" \"Go\"\n",
        "a custom line\n",
        "10.0.0.3 - - [04/Dec/2026:10:00:02 +0000] \"GET /missing HTTP/1.1\" 404 -\n",
    );
    write(&dir.path().join("nginx/access.log"), log);
    let custom = log.find("a custom line").unwrap();
    let r = query(
        "SELECT remote_addr, remote_user, time, method, uri, status, bytes, user_agent \
         FROM nginx_access WHERE path = '/var/log/nginx/access.log'",
        &offering(dir.path()),
    );
    let rows: Vec<Vec<String>> = r
        .rows
        .iter()
        .map(|row| row.iter().map(Value::to_osquery_string).collect())
        .collect();
    assert_eq!(
        rows,
        vec![
            vec![
                "10.0.0.1",
                "",
                "2026-12-04 10:00:00",
                "GET",
                "/",
                "200",
                "612",
                "curl/8.5"
            ],
            vec![
                "10.0.0.2",
                "bob",
                "2026-12-04 10:00:01",
                "POST",
                "/api",
                "502",
                "0",
                "Go"
            ],
            vec![
                "10.0.0.3",
                "",
                "2026-12-04 10:00:02",
                "GET",
                "/missing",
                "404",
                "0",
                ""
            ],
        ]
    );
    assert!(
        r.warnings
            .iter()
            .any(|w| w.contains("1 line(s)") && w.contains(&format!("at byte {custom};"))),
        "{:?}",
        r.warnings
    );
    assert!(matches!(r.rows[0][5], Value::Integer(200)));
}

#[test]
fn nginx_access_time_compares_with_sqlite_datetime() {
    let dir = tempfile::tempdir().unwrap();
    let stamp = |secs_ago: i64| {
        let r = query(
            &format!("SELECT strftime('%d/%m/%Y:%H:%M:%S', 'now', '-{secs_ago} seconds')"),
            &QueryLimits::default(),
        );
        let t = r.rows[0][0].to_osquery_string();
        let (d, rest) = t.split_at(3);
        let (m, rest) = rest.split_at(2);
        let month = [
            "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
        ][m.parse::<usize>().unwrap() - 1];
        format!("{d}{month}{rest} +0000")
    };
    let line = |when: String, status: u16| {
        format!("10.0.0.1 - - [{when}] \"GET / HTTP/1.1\" {status} 1 \"-\" \"-\"\n")
    };
    write(
        &dir.path().join("access.log"),
        &[
            line(stamp(3600), 500),
            line(stamp(60), 200),
            line(stamp(30), 200),
        ]
        .concat(),
    );
    let r = query(
        "SELECT status, count(*) FROM nginx_access WHERE path = '/var/log/access.log' \
         AND time > datetime('now', '-5 minutes') GROUP BY status",
        &offering(dir.path()),
    );
    assert_eq!(r.rows, vec![vec![Value::Integer(200), Value::Integer(2)]]);
}
