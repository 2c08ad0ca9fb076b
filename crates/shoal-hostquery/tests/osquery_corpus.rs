//! Real fleet queries (osquery README and packs, Fleet's standard library, Bacalhau's
//! query-cluster demo) from the shared corpus run unchanged against the host tables.

use std::path::PathBuf;

use shoal_hostquery::{QueryLimits, run_query, table_names, tables};

fn corpus() -> Option<String> {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../../shared/corpus/osquery_queries.sql");
    std::fs::read_to_string(path).ok()
}

/// The statements of the corpus file: comment lines dropped, split at a `;` that ends a line.
fn statements(text: &str) -> Vec<String> {
    let body: Vec<&str> = text
        .lines()
        .filter(|l| !l.trim_start().starts_with("--"))
        .collect();
    body.join("\n")
        .split(";\n")
        .map(|s| s.trim().trim_end_matches(';').trim().to_string())
        .filter(|s| !s.is_empty())
        .collect()
}

#[test]
fn every_corpus_query_runs_against_the_host_tables() {
    let Some(text) = corpus() else {
        eprintln!("shared corpus not found; skipping");
        return;
    };
    let queries = statements(&text);
    assert!(
        queries.len() >= 25,
        "expected the whole corpus, parsed {}",
        queries.len()
    );
    let failures: Vec<String> = queries
        .iter()
        .filter_map(|q| {
            run_query(q, &QueryLimits::default())
                .err()
                .map(|e| format!("{q}\n  -> {e}"))
        })
        .collect();
    assert!(
        failures.is_empty(),
        "queries that failed:\n{}",
        failures.join("\n")
    );
}

#[test]
fn the_quick_start_free_space_query_matches_statvfs_arithmetic() {
    let r = run_query(
        "select blocks_free*blocks_size/1048576 as megbytes_free, blocks_free, blocks_size from mounts where path='/'",
        &QueryLimits::default(),
    )
    .unwrap();
    assert!(!r.rows.is_empty());
    let row = &r.rows[0];
    let (free, size) = (row[1].as_integer().unwrap(), row[2].as_integer().unwrap());
    assert_eq!(row[0].as_integer().unwrap(), free * size / 1_048_576);
    assert_eq!(
        r.osquery_rows()[0]["megbytes_free"],
        (free * size / 1_048_576).to_string()
    );
}

#[test]
fn every_table_answers_select_star_with_its_visible_columns() {
    for table in tables::ALL {
        let r = run_query(
            &format!("SELECT * FROM {}", table.name()),
            &QueryLimits::default(),
        )
        .unwrap_or_else(|e| panic!("{}: {e}", table.name()));
        let visible: Vec<&str> = table
            .columns()
            .iter()
            .filter(|c| !c.hidden)
            .map(|c| c.name)
            .collect();
        assert_eq!(r.columns, visible, "{}", table.name());
        for row in &r.rows {
            assert_eq!(row.len(), visible.len(), "{}", table.name());
        }
    }
    assert_eq!(table_names().len(), tables::ALL.len());
}

#[test]
fn hidden_columns_are_selectable_by_name() {
    let r = run_query(
        "SELECT uid, type FROM users WHERE uid = 0",
        &QueryLimits::default(),
    )
    .unwrap();
    assert_eq!(r.rows[0][1].to_osquery_string(), "");
}
