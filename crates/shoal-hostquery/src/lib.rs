//! osquery-compatible host tables, queried in SQLite's dialect.
//!
//! Each table (`processes`, `users`, `listening_ports`, ...) is an eponymous SQLite virtual
//! table with osquery's name, columns and types, so fleet queries written for osquery run
//! unchanged. [`run_query`] runs one read-only statement over them with time, row and
//! memory bounds and returns typed rows; [`QueryResult::osquery_rows`] renders them as
//! `osqueryi --json` does.
//!
//! ```no_run
//! use shoal_hostquery::{QueryLimits, run_query};
//! let result = run_query("SELECT hostname FROM system_info", &QueryLimits::default())?;
//! println!("{:?}", result.osquery_rows());
//! # Ok::<(), shoal_hostquery::QueryError>(())
//! ```

mod accounts;
pub mod allowed;
mod hostfs;
mod logfiles;
mod query;
mod sockets;
pub mod table;
pub mod tables;
mod value;
mod vtab;

pub use logfiles::SCAN_BYTES;
pub use query::{
    QueryCost, QueryError, QueryLimits, QueryResult, run_over_rows, run_query, table_names,
};
pub use table::{
    Column, ColumnType, Constraints, HostTable, Row, ScanContext, TableDef, TableError, UsedColumns,
};
pub use value::Value;
