//! The one output formatter: tables for people, JSON or YAML for scripts.

use clap::ValueEnum;
use comfy_table::{ContentArrangement, Table, presets};
use serde::Serialize;

/// How read commands print.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, ValueEnum)]
pub enum Format {
    /// Aligned columns for people.
    #[default]
    Table,
    /// JSON, one document.
    Json,
    /// YAML.
    Yaml,
}

/// Prints a serialisable value as JSON or YAML.
pub fn structured<T: Serialize>(format: Format, value: &T) -> anyhow::Result<()> {
    match format {
        Format::Yaml => print!("{}", serde_yaml::to_string(value)?),
        _ => println!("{}", serde_json::to_string_pretty(value)?),
    }
    Ok(())
}

/// A borderless table with a header row.
pub fn table(header: &[&str], rows: Vec<Vec<String>>) -> String {
    let mut t = Table::new();
    t.load_style(presets::NOTHING)
        .set_content_arrangement(ContentArrangement::Dynamic)
        .set_header(header.to_vec());
    for r in rows {
        t.add_row(r);
    }
    t.to_string()
}

/// Formats Unix nanoseconds as a short UTC time (`2026-11-21 10:04:05`).
pub fn time(nanos: i64) -> String {
    let s = shoal_types::time::rfc3339(nanos);
    s.get(..19).map(|t| t.replace('T', " ")).unwrap_or(s)
}

/// Prints a log chunk to the stream it came from (stderr for 2, stdout otherwise).
pub fn log_line(l: shoal_client::LogLine) {
    if l.stream == 2 {
        eprint!("{}", l.line);
    } else {
        print!("{}", l.line);
    }
}
