//! The closing account of a fleet query: coverage (who answered) and the merge stage, a SQL
//! statement run over the union of the answers. Pure functions, no IO.

use std::collections::BTreeMap;

use serde_json::Value as Json;
use shoal_hostquery::{QueryError, QueryLimits, Value, run_over_rows};
use shoal_types::answer::{Coverage, MergeAnswer, NodeAnswer, Outcome};

/// The name of the merge stage's table.
pub const RESULTS_TABLE: &str = "results";

/// Counts answers into the fleet coverage.
pub fn coverage(answers: &[NodeAnswer]) -> Coverage {
    let mut c = Coverage {
        targeted: answers.len(),
        ..Coverage::default()
    };
    for a in answers {
        match a.outcome {
            Outcome::Answered => {
                c.answered += 1;
                c.rows += a.rows.len();
            }
            Outcome::Errored => c.errored += 1,
            Outcome::Unreachable => c.unreachable += 1,
        }
    }
    c
}

/// Runs the merge stage over the union of answered rows: table `results` with `node_id`
/// first, then every column any node answered, in order of first appearance (`NULL` where a
/// node's answer lacks it).
pub fn merge(sql: &str, answers: &[NodeAnswer], limits: &QueryLimits) -> MergeAnswer {
    let answered: Vec<&NodeAnswer> = answers
        .iter()
        .filter(|a| a.outcome == Outcome::Answered)
        .collect();
    let mut columns = vec!["node_id".to_string()];
    let mut index: BTreeMap<String, usize> = BTreeMap::from([("node_id".to_string(), 0)]);
    for a in &answered {
        for c in &a.columns {
            if !index.contains_key(c) {
                index.insert(c.clone(), columns.len());
                columns.push(c.clone());
            }
        }
    }
    let mut rows = Vec::new();
    for a in &answered {
        let positions: Vec<usize> = a.columns.iter().map(|c| index[c]).collect();
        for r in &a.rows {
            let mut row = vec![Value::Null; columns.len()];
            row[0] = Value::Text(a.node_id.clone());
            for (pos, v) in positions.iter().zip(r) {
                if *pos != 0 {
                    row[*pos] = to_value(v);
                }
            }
            rows.push(row);
        }
    }
    let mut out = MergeAnswer {
        sql: sql.to_string(),
        columns: vec![],
        rows: vec![],
        error: None,
        warnings: super::split::approximate(sql),
        answered: answered.len(),
        targeted: answers.len(),
    };
    match run_over_rows(sql, RESULTS_TABLE, &columns, &rows, limits) {
        Ok(r) => {
            out.columns = r.columns;
            out.rows = r
                .rows
                .iter()
                .map(|row| row.iter().map(Value::to_json).collect())
                .collect();
        }
        Err(QueryError::NoSuchTable { table, .. }) => {
            out.error = Some(format!(
                "merge: no such table: {table}; the merge stage reads the table {RESULTS_TABLE} (columns: {})",
                columns.join(", ")
            ));
        }
        Err(e) => out.error = Some(format!("merge: {e}")),
    }
    out
}

fn to_value(v: &Json) -> Value {
    match v {
        Json::Null => Value::Null,
        Json::Bool(b) => Value::Integer(i64::from(*b)),
        Json::Number(n) => n
            .as_i64()
            .map(Value::Integer)
            .or_else(|| n.as_f64().map(Value::Real))
            .unwrap_or(Value::Null),
        Json::String(s) => Value::Text(s.clone()),
        other => Value::Text(other.to_string()),
    }
}

#[cfg(test)]
pub(super) mod tests {
    use serde_json::json;

    use super::*;

    pub(crate) fn answered(node: &str, columns: &[&str], rows: Vec<Vec<Json>>) -> NodeAnswer {
        NodeAnswer {
            columns: columns.iter().map(|c| c.to_string()).collect(),
            rows,
            wall_ms: 1,
            ..NodeAnswer::new(node, Outcome::Answered)
        }
    }

    fn failed(node: &str, outcome: Outcome) -> NodeAnswer {
        NodeAnswer {
            outcome,
            error: Some("no such table: nope".into()),
            ..answered(node, &[], vec![])
        }
    }

    #[test]
    fn coverage_puts_every_node_in_one_bucket() {
        let answers = vec![
            answered("n-a", &["x"], vec![vec![json!(1)], vec![json!(2)]]),
            failed("n-b", Outcome::Errored),
            failed("n-c", Outcome::Unreachable),
        ];
        let c = coverage(&answers);
        assert_eq!(
            (c.targeted, c.answered, c.errored, c.unreachable, c.rows),
            (3, 1, 1, 1, 2)
        );
    }

    #[test]
    fn merge_runs_over_the_union_with_node_ids_and_states_its_coverage() {
        let answers = vec![
            answered("n-a", &["port"], vec![vec![json!(22)], vec![json!(80)]]),
            answered("n-b", &["port", "extra"], vec![vec![json!(22), json!("x")]]),
            failed("n-c", Outcome::Errored),
        ];
        let m = merge(
            "SELECT port, count(*) AS nodes FROM results GROUP BY port ORDER BY port",
            &answers,
            &QueryLimits::default(),
        );
        assert_eq!(m.error, None);
        assert_eq!(m.columns, vec!["port", "nodes"]);
        assert_eq!(
            m.rows,
            vec![vec![json!(22), json!(2)], vec![json!(80), json!(1)]]
        );
        assert_eq!((m.answered, m.targeted), (2, 3));
        let m = merge(
            "SELECT node_id, extra FROM results WHERE extra IS NOT NULL",
            &answers,
            &QueryLimits::default(),
        );
        assert_eq!(m.rows, vec![vec![json!("n-b"), json!("x")]]);
    }

    #[test]
    fn merge_errors_name_the_results_table_and_writes_are_refused() {
        let answers = vec![answered("n-a", &["x"], vec![vec![json!(1)]])];
        let m = merge("SELECT * FROM answers", &answers, &QueryLimits::default());
        let err = m.error.unwrap();
        assert!(
            err.contains("reads the table results (columns: node_id, x)"),
            "{err}"
        );
        let m = merge("DROP TABLE results", &answers, &QueryLimits::default());
        assert!(m.error.unwrap().contains("read-only"));
    }
}
