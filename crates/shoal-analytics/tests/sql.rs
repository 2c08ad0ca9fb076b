//! The analytics engine over real files the tests write: Parquet (through the parquet
//! crate), CSV and newline-delimited JSON, under a node's data policy.

use std::path::Path;
use std::time::Duration;

use serde_json::{Value as Json, json};
use shoal_analytics::sample::{Sales, SampleFormat, write};
use shoal_analytics::{DataDir, DataError, DataPolicy, run_sql, run_sql_to_parquet};

fn policy(dirs: &[&Path]) -> DataPolicy {
    DataPolicy {
        allow: dirs
            .iter()
            .map(|d| DataDir::parse(&d.display().to_string()).unwrap())
            .collect(),
        ..DataPolicy::default()
    }
}

fn sales(region: &str, rows: usize, files: usize) -> Sales {
    Sales {
        region: region.into(),
        rows,
        files,
        seed: 7,
    }
}

#[tokio::test]
async fn parquet_and_csv_files_answer_the_same_aggregate() {
    let dir = tempfile::tempdir().unwrap();
    let pq = dir.path().join("pq");
    let csv = dir.path().join("csv");
    write(&pq, &sales("eu", 5_000, 3), SampleFormat::Parquet).unwrap();
    write(&csv, &sales("eu", 5_000, 3), SampleFormat::Csv).unwrap();
    let p = policy(&[dir.path()]);
    let q = |f: &str, path: &Path| {
        format!(
            "SELECT country, count(*) AS n, sum(quantity) AS q, round(sum(amount), 2) AS total \
             FROM {f}('{}/*') GROUP BY country ORDER BY country",
            path.display()
        )
    };
    let a = run_sql(&q("read_parquet", &pq), &p).await.unwrap();
    let b = run_sql(&q("read_csv", &csv), &p).await.unwrap();
    assert_eq!(a.columns, vec!["country", "n", "q", "total"]);
    assert_eq!(a.files, 3);
    assert_eq!(a.rows, b.rows, "the same rows through both formats");
    let n: i64 = a.rows.iter().map(|r| r[1].as_i64().unwrap()).sum();
    assert_eq!(n, 5_000, "every row of every file is counted");
    assert!(
        a.rows[0][0].is_string() && a.rows[0][3].is_f64(),
        "{:?}",
        a.rows[0]
    );
}

#[tokio::test]
async fn json_lines_and_files_with_different_columns_union_by_name() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("a.jsonl"),
        "{\"region\":\"eu\",\"amount\":1}\n{\"region\":\"us\",\"amount\":2}\n",
    )
    .unwrap();
    std::fs::write(
        dir.path().join("b.jsonl"),
        "{\"amount\":4.5,\"region\":\"eu\",\"store\":\"s1\"}\n",
    )
    .unwrap();
    let p = policy(&[dir.path()]);
    let sql = format!(
        "SELECT region, store, amount FROM read_json('{}/*.jsonl') ORDER BY amount",
        dir.path().display()
    );
    let a = run_sql(&sql, &p).await.unwrap();
    assert_eq!(
        a.rows,
        vec![
            vec![json!("eu"), Json::Null, json!(1.0)],
            vec![json!("us"), Json::Null, json!(2.0)],
            vec![json!("eu"), json!("s1"), json!(4.5)],
        ],
        "a column a file lacks is NULL there; an int and a float column become float"
    );
}

#[tokio::test]
async fn only_one_read_only_query_runs() {
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), &sales("us", 10, 1), SampleFormat::Csv).unwrap();
    let p = policy(&[dir.path()]);
    let file = dir.path().join("sales-0.csv").display().to_string();
    for (sql, word) in [
        (
            format!("COPY (SELECT * FROM read_csv('{file}')) TO '/tmp/x.csv'"),
            "COPY is refused",
        ),
        ("CREATE TABLE t (x INT)".to_string(), "CREATE is refused"),
        ("INSERT INTO t VALUES (1)".to_string(), "INSERT is refused"),
        (
            "SET datafusion.execution.batch_size = 1".to_string(),
            "SET is refused",
        ),
        ("SELECT 1; SELECT 2".to_string(), "2 statements given"),
        ("SELEKT 1".to_string(), "SQL syntax error"),
        (format!("SELECT * FROM '{file}'"), "table"),
    ] {
        let err = run_sql(&sql, &p).await.unwrap_err().to_string();
        assert!(err.contains(word), "{sql}: {err}");
    }
}

#[tokio::test]
async fn files_outside_the_allowed_directories_are_refused_by_name() {
    let allowed = tempfile::tempdir().unwrap();
    let other = tempfile::tempdir().unwrap();
    write(other.path(), &sales("ap", 10, 1), SampleFormat::Parquet).unwrap();
    let p = policy(&[allowed.path()]);
    let pattern = format!("{}/*.parquet", other.path().display());
    let err = run_sql(
        &format!("SELECT count(*) FROM read_parquet('{pattern}')"),
        &p,
    )
    .await
    .unwrap_err();
    assert_eq!(
        err.to_string(),
        format!(
            "read_parquet('{pattern}'): outside the allowed directories; this node reads only under {}",
            allowed.path().display()
        )
    );
    let err = run_sql("SELECT count(*) FROM read_parquet(42)", &p)
        .await
        .unwrap_err();
    assert!(err.to_string().contains("string literals"), "{err}");
}

#[tokio::test]
async fn a_query_over_the_memory_limit_fails_and_says_which_limit() {
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), &sales("eu", 200_000, 2), SampleFormat::Parquet).unwrap();
    let p = DataPolicy {
        memory_limit: 1 << 20,
        ..policy(&[dir.path()])
    };
    // Sorting every row holds them all; nothing spills to disk.
    let sql = format!(
        "SELECT store, product, amount, ts FROM read_parquet('{}/*.parquet') ORDER BY amount, ts",
        dir.path().display()
    );
    let err = run_sql(
        &sql,
        &DataPolicy {
            max_rows: 1_000_000,
            max_answer_bytes: 1 << 30,
            ..p
        },
    )
    .await
    .unwrap_err();
    assert_eq!(err, DataError::MemoryLimit { limit: 1 << 20 }, "{err}");
    assert!(
        err.to_string()
            .starts_with("query memory limit 1 MiB exceeded")
    );
}

#[tokio::test]
async fn the_time_row_and_size_limits_stop_a_query_with_their_own_errors() {
    let p = DataPolicy {
        timeout: Duration::from_millis(50),
        ..DataPolicy::default()
    };
    let err = run_sql("SELECT sum(value) FROM generate_series(1, 5000000000)", &p)
        .await
        .unwrap_err();
    assert_eq!(err, DataError::Timeout(Duration::from_millis(50)));
    let p = DataPolicy {
        max_rows: 10,
        ..DataPolicy::default()
    };
    let err = run_sql("SELECT value FROM generate_series(1, 11)", &p)
        .await
        .unwrap_err();
    assert_eq!(err, DataError::TooManyRows(10));
    let p = DataPolicy {
        max_answer_bytes: 1_000,
        ..DataPolicy::default()
    };
    let err = run_sql("SELECT repeat('x', 100) FROM generate_series(1, 20)", &p)
        .await
        .unwrap_err();
    assert_eq!(err, DataError::TooLarge(1_000));
}

#[tokio::test]
async fn a_result_written_as_parquet_holds_every_row_past_the_answer_limits() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    write(&data, &sales("us", 30_000, 2), SampleFormat::Parquet).unwrap();
    let out = dir.path().join("out");
    std::fs::create_dir_all(&out).unwrap();
    // Answers stop at 100 rows here; the file does not.
    let p = DataPolicy {
        max_rows: 100,
        ..policy(&[&data, &out])
    };
    let sql = format!(
        "SELECT store, amount FROM read_parquet('{}/*.parquet') WHERE quantity > 1",
        data.display()
    );
    assert_eq!(
        run_sql(&sql, &p).await.unwrap_err(),
        DataError::TooManyRows(100)
    );
    let file = out.join("rows.parquet");
    let written = run_sql_to_parquet(&sql, &p, &file).await.unwrap();
    assert_eq!(written.columns, vec!["store", "amount"]);
    assert_eq!(written.files, 2);
    assert!(written.rows > 100, "{written:?}");
    assert_eq!(written.bytes, std::fs::metadata(&file).unwrap().len());
    // The file reads back as the same rows.
    let check = |q: &str| q.replace("{f}", &file.display().to_string());
    let back = run_sql(
        &check("SELECT count(*) AS n, round(sum(amount), 2) AS s FROM read_parquet('{f}')"),
        &p,
    )
    .await
    .unwrap();
    let direct = run_sql(
        &format!(
            "SELECT count(*) AS n, round(sum(amount), 2) AS s FROM read_parquet('{}/*.parquet') WHERE quantity > 1",
            data.display()
        ),
        &p,
    )
    .await
    .unwrap();
    assert_eq!(back.rows, direct.rows);
    assert_eq!(back.rows[0][0], json!(written.rows));

    // Over the file limit: a clear error and no half-written file.
    let small = DataPolicy {
        max_file_bytes: 10_000,
        ..p.clone()
    };
    let err = run_sql_to_parquet(&sql, &small, &out.join("big.parquet"))
        .await
        .unwrap_err();
    assert_eq!(err, DataError::FileTooLarge(10_000));
    assert!(
        err.to_string()
            .starts_with("the Parquet output is over 10000 bytes"),
        "{err}"
    );
    assert!(!out.join("big.parquet").exists());
    // A query that fails leaves nothing either.
    let err = run_sql_to_parquet(
        "SELECT * FROM read_csv('/etc/passwd')",
        &p,
        &out.join("x.parquet"),
    )
    .await
    .unwrap_err();
    assert!(
        err.to_string().contains("outside the allowed directories"),
        "{err}"
    );
    assert!(!out.join("x.parquet").exists());
}

/// Queries from Bacalhau's DuckDB examples (distinct countries, a `read_parquet` CTE, the
/// peak hour), as the README's rewrite list says they run here.
#[tokio::test]
async fn duckdb_example_queries_run_unchanged_or_with_the_documented_rewrite() {
    let dir = tempfile::tempdir().unwrap();
    write(
        &dir.path().join("csv"),
        &sales("eu", 2_000, 2),
        SampleFormat::Csv,
    )
    .unwrap();
    write(
        &dir.path().join("pq"),
        &sales("eu", 2_000, 2),
        SampleFormat::Parquet,
    )
    .unwrap();
    let p = policy(&[dir.path()]);
    let d = dir.path().display();
    // Unchanged: DISTINCT(col) and a CTE over read_parquet.
    let a = run_sql(
        &format!("SELECT DISTINCT(country) FROM read_csv('{d}/csv/*.csv') ORDER BY 1"),
        &p,
    )
    .await
    .unwrap();
    assert_eq!(
        a.rows,
        vec![
            vec![json!("DE")],
            vec![json!("ES")],
            vec![json!("FR")],
            vec![json!("PT")]
        ]
    );
    let a = run_sql(
        &format!(
            "WITH trips AS (SELECT * FROM read_parquet('{d}/pq/*.parquet')) \
             SELECT count(*) AS n FROM trips WHERE quantity > 0"
        ),
        &p,
    )
    .await
    .unwrap();
    assert_eq!(a.rows, vec![vec![json!(2_000)]]);
    // DuckDB's HOUR(ts), YEAR(ts), ... are date_part under DuckDB's names: the same hours.
    let by_hour = |f: &str| {
        format!(
            "SELECT {f} AS hour, count(*) AS n FROM read_parquet('{d}/pq/*.parquet') \
             GROUP BY 1 ORDER BY 1"
        )
    };
    let duck = run_sql(&by_hour("HOUR(ts)"), &p).await.unwrap();
    let ours = run_sql(&by_hour("date_part('hour', ts)"), &p)
        .await
        .unwrap();
    assert_eq!(duck.rows, ours.rows);
    assert!(duck.rows.len() > 1, "{:?}", duck.rows);
    assert!(
        duck.rows
            .iter()
            .all(|r| r[0].as_i64().is_some_and(|h| (0..24).contains(&h))),
        "{:?}",
        duck.rows
    );
    let a = run_sql(
        "SELECT year('2026-12-04 10:11:12'), month('2026-12-04 10:11:12'), \
         day('2026-12-04 10:11:12'), minute('2026-12-04 10:11:12'), dayofweek('2026-12-04 10:11:12')",
        &p,
    )
    .await
    .unwrap();
    assert_eq!(
        a.rows,
        vec![vec![json!(2026), json!(12), json!(4), json!(11), json!(5)]]
    );
    let e = run_sql("SELECT hour(1, 2)", &p)
        .await
        .unwrap_err()
        .to_string();
    assert!(e.contains("hour() takes one argument"), "{e}");
}
