//! Runs one query over this machine's host tables and prints osquery-style JSON lines:
//! `cargo run -p shoal-hostquery --example query -- "SELECT * FROM uptime"`.

fn main() {
    let sql = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "SELECT * FROM system_info".into());
    match shoal_hostquery::run_query(&sql, &shoal_hostquery::QueryLimits::default()) {
        Ok(result) => {
            for row in result.osquery_rows() {
                println!("{}", serde_json::Value::Object(row));
            }
            for w in &result.warnings {
                eprintln!("warning: {w}");
            }
            eprintln!("{} rows in {:?}", result.cost.rows, result.cost.wall);
        }
        Err(e) => {
            eprintln!("error: {e}");
            std::process::exit(1);
        }
    }
}
