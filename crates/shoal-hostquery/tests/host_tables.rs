//! Real queries against the real host, checked against what the OS reports.

use std::io::Write;
use std::net::TcpListener;
use std::process::Command;

use shoal_hostquery::{QueryError, QueryLimits, QueryResult, Value, run_query};

fn query(sql: &str) -> QueryResult {
    run_query(sql, &QueryLimits::default()).unwrap_or_else(|e| panic!("{sql}: {e}"))
}

fn text(v: &Value) -> String {
    v.to_osquery_string()
}

#[test]
fn system_info_hostname_is_the_kernel_hostname() {
    let r = query("SELECT hostname, computer_name FROM system_info");
    let expected = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap();
    assert_eq!(r.rows.len(), 1);
    assert_eq!(text(&r.rows[0][1]), expected.trim());
    assert_eq!(r.columns, vec!["hostname", "computer_name"]);
}

#[test]
fn system_info_hostname_alone_is_the_kernel_hostname() {
    let r = query("SELECT hostname FROM system_info");
    let expected = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap();
    assert_eq!(r.rows, vec![vec![Value::from(expected.trim())]]);
}

/// `/proc/meminfo`'s `MemTotal` in bytes and the number of `/proc/cpuinfo` processors.
fn memory_and_processors() -> (i64, i64) {
    let meminfo = std::fs::read_to_string("/proc/meminfo").unwrap();
    let kib: i64 = meminfo
        .lines()
        .find_map(|l| l.strip_prefix("MemTotal:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap();
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap();
    let processors = cpuinfo
        .lines()
        .filter(|l| l.starts_with("processor"))
        .count();
    (kib * 1024, processors as i64)
}

#[test]
fn system_info_fills_every_column_a_statement_selects() {
    let hostname = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap();
    let (memory, processors) = memory_and_processors();
    let r = query(
        "SELECT physical_memory, hostname, cpu_logical_cores, cpu_type, local_hostname \
         FROM system_info",
    );
    assert_eq!(r.rows.len(), 1);
    let row = &r.rows[0];
    assert_eq!(row[0], Value::Integer(memory));
    assert_eq!(text(&row[1]), hostname.trim());
    assert_eq!(row[2], Value::Integer(processors));
    assert!(!text(&row[3]).is_empty(), "{row:?}");
    assert_eq!(text(&row[4]), hostname.trim());

    // SELECT * computes every column: the same values, and the DMI and CPU columns too.
    let all = query("SELECT * FROM system_info");
    let column = |name: &str| {
        let i = all.columns.iter().position(|c| c == name).unwrap();
        all.rows[0][i].clone()
    };
    assert_eq!(column("physical_memory"), row[0]);
    assert_eq!(column("hostname"), row[1]);
    assert_eq!(column("cpu_logical_cores"), row[2]);
    assert_eq!(column("cpu_type"), row[3]);
    assert!(matches!(column("cpu_physical_cores"), Value::Integer(n) if n >= 1));
    assert!(!text(&column("uuid")).is_empty() || !std::path::Path::new("/etc/machine-id").exists());
}

#[test]
fn scans_of_one_table_for_different_columns_each_get_real_values() {
    let hostname = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap();
    let (memory, processors) = memory_and_processors();
    let r = query("SELECT a.hostname, b.physical_memory FROM system_info a, system_info b");
    assert_eq!(
        r.rows,
        vec![vec![Value::from(hostname.trim()), Value::Integer(memory)]]
    );
    let r = query(
        "SELECT hostname, (SELECT cpu_logical_cores FROM system_info WHERE hostname != '') \
         FROM system_info",
    );
    assert_eq!(
        r.rows,
        vec![vec![
            Value::from(hostname.trim()),
            Value::Integer(processors)
        ]]
    );
    let me = std::process::id();
    let r = query(&format!(
        "SELECT p.name, q.cmdline, q.cwd FROM processes p JOIN processes q ON q.pid = p.parent \
         WHERE p.pid = {me}"
    ));
    let parent = std::os::unix::process::parent_id();
    let cmdline = std::fs::read(format!("/proc/{parent}/cmdline")).unwrap();
    let cmdline: Vec<String> = cmdline
        .split(|b| *b == 0)
        .filter(|a| !a.is_empty())
        .map(|a| String::from_utf8_lossy(a).into_owned())
        .collect();
    let cwd = std::fs::read_link(format!("/proc/{parent}/cwd")).unwrap();
    let name = std::fs::read_to_string(format!("/proc/{me}/comm")).unwrap();
    assert_eq!(
        r.rows,
        vec![vec![
            Value::from(name.trim()),
            Value::from(cmdline.join(" ")),
            Value::from(cwd.to_string_lossy().as_ref()),
        ]]
    );
}

#[test]
fn users_lists_root_with_uid_zero_and_matches_etc_passwd() {
    let r = query("SELECT uid, username, directory FROM users WHERE username = 'root'");
    assert_eq!(
        r.rows,
        vec![vec![Value::Integer(0), "root".into(), "/root".into()]]
    );
    let passwd = std::fs::read_to_string("/etc/passwd").unwrap();
    let expected = passwd
        .lines()
        .filter(|l| l.split(':').count() >= 7 && !l.starts_with('#'))
        .count();
    let all = query("SELECT count(*) FROM users");
    assert_eq!(all.rows[0][0], Value::Integer(expected as i64));
}

#[test]
fn processes_finds_a_process_the_test_started() {
    let mut child = Command::new("sleep").arg("30").spawn().unwrap();
    let pid = child.id();
    wait_for_exec(pid, "sleep\0");
    let r = query(&format!(
        "SELECT pid, name, cmdline, parent FROM processes WHERE pid = {pid}"
    ));
    child.kill().unwrap();
    child.wait().unwrap();
    assert_eq!(r.rows.len(), 1, "{r:?}");
    assert_eq!(r.rows[0][1], Value::from("sleep"));
    assert_eq!(r.rows[0][2], Value::from("sleep 30"));
    assert_eq!(r.rows[0][3], Value::Integer(i64::from(std::process::id())));
}

/// Spawn returns before the child has exec'd; poll its cmdline until it has.
fn wait_for_exec(pid: u32, argv0: &str) {
    let give_up = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while std::time::Instant::now() < give_up {
        let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
        if cmdline.starts_with(argv0.as_bytes()) {
            return;
        }
        std::thread::yield_now();
    }
    panic!("process {pid} never ran {argv0}");
}

#[test]
fn processes_without_a_constraint_include_this_test() {
    let me = std::process::id();
    let r = query(&format!(
        "SELECT count(*) FROM processes WHERE pid = {me} OR pid = 1"
    ));
    assert!(matches!(r.rows[0][0], Value::Integer(n) if n >= 1));
    let r = query("SELECT pid FROM processes");
    assert!(
        r.rows
            .iter()
            .any(|row| row[0] == Value::Integer(i64::from(me)))
    );
}

#[test]
fn listening_ports_shows_a_port_the_test_bound() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let r = query(&format!(
        "SELECT pid, address, protocol, family FROM listening_ports WHERE port = {port} AND protocol = 6"
    ));
    drop(listener);
    assert_eq!(
        r.rows,
        vec![vec![
            Value::Integer(i64::from(std::process::id())),
            "127.0.0.1".into(),
            Value::Integer(6),
            Value::Integer(2)
        ]]
    );
}

#[test]
fn file_and_hash_describe_a_file_the_test_wrote() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("data.txt");
    std::fs::File::create(&path)
        .unwrap()
        .write_all(b"hello shoal\n")
        .unwrap();
    let p = path.to_str().unwrap();
    let r = query(&format!(
        "SELECT path, filename, size, type FROM file WHERE path = '{p}'"
    ));
    assert_eq!(
        r.rows,
        vec![vec![
            p.into(),
            "data.txt".into(),
            Value::Integer(12),
            "regular".into()
        ]]
    );
    let h = query(&format!(
        "SELECT md5, sha1, sha256 FROM hash WHERE path = '{p}'"
    ));
    let sum = |tool: &str| {
        let out = Command::new(tool).arg(p).output().unwrap();
        String::from_utf8(out.stdout)
            .unwrap()
            .split_whitespace()
            .next()
            .unwrap()
            .to_string()
    };
    assert_eq!(
        h.rows,
        vec![vec![
            sum("md5sum").into(),
            sum("sha1sum").into(),
            sum("sha256sum").into()
        ]]
    );
}

#[test]
fn file_lists_a_directory_given_as_constraint() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("a"), "1").unwrap();
    std::fs::write(dir.path().join("b"), "22").unwrap();
    let d = dir.path().to_str().unwrap();
    let r = query(&format!(
        "SELECT filename, size FROM file WHERE directory = '{d}' ORDER BY filename"
    ));
    assert_eq!(
        r.rows,
        vec![
            vec!["a".into(), Value::Integer(1)],
            vec!["b".into(), Value::Integer(2)]
        ]
    );
}

#[test]
fn hash_without_a_path_returns_no_rows_and_says_why() {
    let r = query("SELECT * FROM hash");
    assert!(r.rows.is_empty());
    assert!(
        r.warnings.iter().any(|w| w.contains("WHERE path = ")),
        "{:?}",
        r.warnings
    );
}

#[test]
fn writes_attach_and_pragmas_are_refused() {
    for sql in [
        "CREATE TABLE t(x)",
        "INSERT INTO users(uid) VALUES (5)",
        "ATTACH DATABASE '/tmp/x.db' AS x",
        "PRAGMA writable_schema = 1",
        "DELETE FROM users",
        "SELECT load_extension('x')",
    ] {
        let err = run_query(sql, &QueryLimits::default()).unwrap_err();
        assert!(
            matches!(err, QueryError::ReadOnly { .. }),
            "{sql}: expected a refusal, got {err:?}"
        );
        assert!(err.to_string().contains("read-only"), "{err}");
    }
}

#[test]
fn a_runaway_recursive_query_stops_at_the_time_limit() {
    let limits = QueryLimits {
        timeout: std::time::Duration::from_millis(200),
        ..QueryLimits::default()
    };
    let sql =
        "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c) SELECT count(*) FROM c";
    assert!(matches!(
        run_query(sql, &limits),
        Err(QueryError::Timeout { .. })
    ));
}

#[test]
fn queries_in_a_row_on_one_thread_each_read_the_host_anew() {
    // One thread keeps its connection between queries: neither a snapshot, nor a warning, nor
    // a refusal or timeout of one query may reach the next.
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("grows.txt");
    let p = path.to_str().unwrap();
    let size = || query(&format!("SELECT size FROM file WHERE path = '{p}'")).rows;
    std::fs::write(&path, "1").unwrap();
    assert_eq!(size(), vec![vec![Value::Integer(1)]]);
    std::fs::write(&path, "123").unwrap();
    assert_eq!(size(), vec![vec![Value::Integer(3)]]);

    assert!(!query("SELECT * FROM hash").warnings.is_empty());
    assert_eq!(query("SELECT 1 AS one").warnings, Vec::<String>::new());

    let refused = run_query("DELETE FROM users", &QueryLimits::default());
    assert!(matches!(refused, Err(QueryError::ReadOnly { .. })));
    let short = QueryLimits {
        timeout: std::time::Duration::from_millis(50),
        ..QueryLimits::default()
    };
    let runaway =
        "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c) SELECT count(*) FROM c";
    assert!(matches!(
        run_query(runaway, &short),
        Err(QueryError::Timeout { .. })
    ));
    assert_eq!(size(), vec![vec![Value::Integer(3)]]);
    let r = query("SELECT count(*) FROM users WHERE uid = 0");
    assert_eq!(r.rows, vec![vec![Value::Integer(1)]]);
}

#[test]
fn answers_past_the_row_limit_fail_with_a_clear_error() {
    let limits = QueryLimits {
        max_rows: 10,
        ..QueryLimits::default()
    };
    let sql =
        "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c LIMIT 11) SELECT x FROM c";
    let err = run_query(sql, &limits).unwrap_err();
    assert_eq!(err, QueryError::TooManyRows { limit: 10 });
    let ok =
        "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c LIMIT 10) SELECT x FROM c";
    assert_eq!(run_query(ok, &limits).unwrap().rows.len(), 10);
}

#[test]
fn unknown_tables_are_named_with_the_known_ones() {
    let err = run_query("SELECT * FROM no_such_thing", &QueryLimits::default()).unwrap_err();
    let message = err.to_string();
    assert!(
        message.starts_with("no such table: no_such_thing (known tables: "),
        "{message}"
    );
    assert!(message.contains("processes"), "{message}");
}

#[test]
fn syntax_errors_carry_sqlites_message() {
    let err = run_query("SELEC 1", &QueryLimits::default()).unwrap_err();
    assert!(
        matches!(&err, QueryError::Sql { message } if message.contains("syntax error")),
        "{err:?}"
    );
}

#[test]
fn osquery_rows_render_every_value_as_a_string() {
    let r = query("SELECT 1 AS one, NULL AS empty, 'x' AS ex");
    let row = &r.osquery_rows()[0];
    assert_eq!(row["one"], "1");
    assert_eq!(row["empty"], "");
    assert_eq!(row["ex"], "x");
}

#[test]
fn deb_packages_agrees_with_dpkg_query() {
    let Ok(out) = Command::new("dpkg-query")
        .args(["-W", "-f=${Version}", "bash"])
        .output()
    else {
        eprintln!("dpkg-query not installed; skipping");
        return;
    };
    let expected = String::from_utf8(out.stdout).unwrap();
    let r = query("SELECT version, arch FROM deb_packages WHERE name = 'bash'");
    assert_eq!(text(&r.rows[0][0]), expected);
}

#[test]
fn the_known_tables_include_every_priority_table() {
    let names = shoal_hostquery::table_names();
    for t in [
        "system_info",
        "os_version",
        "processes",
        "listening_ports",
        "file",
        "hash",
        "users",
        "mounts",
    ] {
        assert!(names.contains(&t), "{t} missing from {names:?}");
    }
}

#[test]
fn block_devices_match_sys_block_with_their_sizes() {
    let r = query("SELECT name, size, parent FROM block_devices");
    let mut disks: Vec<String> = std::fs::read_dir("/sys/block")
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    disks.sort();
    assert!(!disks.is_empty(), "this host lists no block devices");
    for disk in &disks {
        let size: i64 = std::fs::read_to_string(format!("/sys/block/{disk}/size"))
            .unwrap()
            .trim()
            .parse()
            .unwrap();
        let row = r
            .rows
            .iter()
            .find(|row| text(&row[0]) == format!("/dev/{disk}"))
            .unwrap_or_else(|| panic!("/dev/{disk} missing from {r:?}"));
        assert_eq!(row[1], Value::Integer(size), "size of {disk}");
        assert_eq!(
            text(&row[2]),
            "",
            "{disk} is a whole disk, it has no parent"
        );
    }
    let by_name = query(&format!(
        "SELECT name FROM block_devices WHERE name = '/dev/{}'",
        disks[0]
    ));
    assert_eq!(by_name.rows.len(), 1);
}

#[test]
fn systemd_units_lists_the_unit_files_of_this_host() {
    let Ok(entries) = std::fs::read_dir("/lib/systemd/system") else {
        eprintln!("skipped: this host has no /lib/systemd/system");
        return;
    };
    let some_service = entries
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".service") && !n.contains('@'))
        .min()
        .expect("a service unit file");
    let r = query(&format!(
        "SELECT id, load_state, active_state, unit_file_state FROM systemd_units WHERE id = '{some_service}'"
    ));
    assert_eq!(r.rows.len(), 1, "{r:?}");
    assert_eq!(text(&r.rows[0][0]), some_service);
    assert!(
        ["loaded", "masked", "not-found"].contains(&text(&r.rows[0][1]).as_str()),
        "{r:?}"
    );
    if !std::path::Path::new("/run/systemd/system").is_dir() {
        assert_eq!(text(&r.rows[0][2]), "unknown");
        assert!(
            r.warnings
                .iter()
                .any(|w| w.contains("systemd is not running")),
            "{:?}",
            r.warnings
        );
    }
    assert!(
        ["enabled", "disabled", "static", "masked"].contains(&text(&r.rows[0][3]).as_str()),
        "{r:?}"
    );
}

#[test]
fn docker_containers_shows_a_container_the_test_started() {
    let docker_runs = Command::new("docker")
        .args(["image", "inspect", "shoal-test/busybox:latest"])
        .output()
        .is_ok_and(|o| o.status.success());
    if !docker_runs {
        // .ci/run builds the image (scripts/build-test-images.sh); without a daemon the
        // table must still answer, empty.
        let r = query("SELECT id FROM docker_containers");
        assert!(r.rows.is_empty());
        eprintln!("skipped: no Docker daemon with shoal-test/busybox here");
        return;
    }
    let name = format!("shoal-hostquery-test-{}", std::process::id());
    let started = Command::new("docker")
        .args([
            "run",
            "-d",
            "--rm",
            "--name",
            &name,
            "shoal-test/busybox:latest",
            "sleep",
            "60",
        ])
        .output()
        .unwrap();
    assert!(started.status.success(), "{started:?}");
    let id = String::from_utf8_lossy(&started.stdout).trim().to_string();
    let _cleanup = RemoveContainer(name.clone());
    let r = run_query(
        &format!(
            "SELECT id, name, image, state, pid, net_namespace FROM docker_containers WHERE name = '/{name}'"
        ),
        &QueryLimits::default(),
    );
    let r = r.unwrap();
    assert_eq!(r.rows.len(), 1, "{r:?}");
    assert_eq!(text(&r.rows[0][0]), id);
    assert_eq!(text(&r.rows[0][2]), "shoal-test/busybox:latest");
    assert_eq!(text(&r.rows[0][3]), "running");
    let pid = r.rows[0][4].as_integer().unwrap();
    assert!(pid > 0, "{r:?}");
    let ns = std::fs::read_link(format!("/proc/{pid}/ns/net")).unwrap();
    assert_eq!(
        format!("net:[{}]", text(&r.rows[0][5])),
        ns.to_string_lossy()
    );
}

/// Removes the test's container however the test ends.
struct RemoveContainer(String);

impl Drop for RemoveContainer {
    fn drop(&mut self) {
        let _ = Command::new("docker").args(["rm", "-f", &self.0]).output();
    }
}

#[test]
fn merge_stage_runs_read_only_sql_over_rows_in_memory() {
    use shoal_hostquery::run_over_rows;
    let columns = vec!["node_id".to_string(), "n".to_string()];
    let rows = vec![
        vec![Value::from("n-a"), Value::Integer(2)],
        vec![Value::from("n-b"), Value::Integer(3)],
        vec![Value::from("n-a"), Value::Integer(5)],
    ];
    let limits = QueryLimits::default();
    let r = run_over_rows(
        "SELECT node_id, sum(n) AS total FROM results GROUP BY node_id ORDER BY node_id",
        "results",
        &columns,
        &rows,
        &limits,
    )
    .unwrap();
    assert_eq!(
        r.rows,
        vec![
            vec![Value::from("n-a"), Value::Integer(7)],
            vec![Value::from("n-b"), Value::Integer(3)]
        ]
    );
    let err =
        run_over_rows("DELETE FROM results", "results", &columns, &rows, &limits).unwrap_err();
    assert!(matches!(err, QueryError::ReadOnly { .. }), "{err}");
    let few = QueryLimits {
        max_rows: 2,
        ..QueryLimits::default()
    };
    let err = run_over_rows("SELECT * FROM results", "results", &columns, &rows, &few).unwrap_err();
    assert!(matches!(err, QueryError::TooManyRows { limit: 2 }), "{err}");
}
