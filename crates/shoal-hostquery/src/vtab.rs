//! The one SQLite virtual-table adapter every [`TableDef`] runs through.
//!
//! Tables are eponymous-only modules (`SELECT * FROM processes` works without a
//! `CREATE VIRTUAL TABLE`). `best_index` pushes equality and `IN` constraints on the
//! columns a table marks [`Column::pushdown`](crate::table::Column) down to `filter`, which
//! reads the host at that moment. Rows are cached per query and per constraint set, so a
//! correlated subquery or a join that rescans a table does not re-read `/proc` per outer row
//! and sees one consistent snapshot.
//!
//! `best_index` also hands `filter` SQLite's `colUsed` mask (in `idx_str`) and records it
//! for the query. A scan computes only the columns some scan of that table in the statement
//! reads (the union over the statement, known once it is prepared; the rest are `NULL`), so
//! `SELECT hostname FROM system_info` reads no DMI files. A cached scan is only reused by a
//! scan whose columns it covers.

use std::borrow::Cow;
use std::collections::HashMap;
use std::ffi::{CString, c_int};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use rusqlite::fallible_iterator::FallibleIterator;
use rusqlite::vtab::{
    Context, Filters, IndexConstraintOp, IndexInfo, Module, VTab, VTabConnection, VTabCursor,
    sqlite3_vtab, sqlite3_vtab_cursor,
};
use rusqlite::{Connection, types::Value as SqlValue};

use crate::allowed::AllowedDir;
use crate::table::{Constraints, Row, ScanContext, TableDef, TableError, UsedColumns, declaration};
use crate::value::Value;

/// A table's name and the constraints of one scan of it.
type ScanKey = (&'static str, String);

/// One cached scan: the columns it computed and its rows.
type Scan = (UsedColumns, Arc<Vec<Row>>);

/// State shared by every table of one query's connection.
#[derive(Debug, Default)]
pub(crate) struct QueryState {
    pub(crate) deadline: Option<Instant>,
    /// Where the tables that read file contents may read ([`crate::QueryLimits::log_dirs`]).
    pub(crate) readable: Vec<AllowedDir>,
    pub(crate) timed_out: AtomicBool,
    pub(crate) warnings: Mutex<Vec<String>>,
    /// Per table, the union of the columns every `best_index` call saw used.
    used: Mutex<HashMap<&'static str, UsedColumns>>,
    cache: Mutex<HashMap<ScanKey, Scan>>,
}

impl QueryState {
    pub(crate) fn new(deadline: Option<Instant>, readable: Vec<AllowedDir>) -> Self {
        QueryState {
            deadline,
            readable,
            ..Default::default()
        }
    }

    /// Records that a scan of `table` reads the `used` columns.
    fn note_used(&self, table: &'static str, used: UsedColumns) {
        let mut all = self.used.lock().unwrap_or_else(|e| e.into_inner());
        let entry = all.entry(table).or_insert(used);
        *entry = entry.union(used);
    }

    /// The columns a scan of `table` that reads `needed` computes: every column any scan of
    /// `table` in the statement reads, so that rescans can share one snapshot.
    fn to_compute(&self, table: &'static str, needed: UsedColumns) -> UsedColumns {
        let all = self.used.lock().unwrap_or_else(|e| e.into_inner());
        all.get(table).map_or(needed, |u| u.union(needed))
    }

    fn warn(&self, message: String) {
        let mut warnings = self.warnings.lock().unwrap_or_else(|e| e.into_inner());
        if !warnings.contains(&message) {
            warnings.push(message);
        }
    }
}

/// The state of the query a connection is running, which its tables read. A connection is
/// kept for many queries (see `query.rs`); each query puts its own fresh state here first, so
/// no snapshot or warning of one query is seen by the next.
#[derive(Debug, Default)]
pub(crate) struct StateSlot(Mutex<Arc<QueryState>>);

impl StateSlot {
    /// Makes `state` the one the connection's tables read from now on.
    pub(crate) fn set(&self, state: Arc<QueryState>) {
        *self.0.lock().unwrap_or_else(|e| e.into_inner()) = state;
    }

    /// The state of the query now running.
    fn current(&self) -> Arc<QueryState> {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }
}

/// Client data for one registered table.
pub(crate) struct Aux {
    table: &'static dyn TableDef,
    query: Arc<StateSlot>,
}

#[repr(C)]
pub(crate) struct HostVTab {
    /// SQLite's base struct; must come first.
    base: sqlite3_vtab,
    table: &'static dyn TableDef,
    query: Arc<StateSlot>,
}

const MODULE: Module<'static, HostVTab> = Module::eponymous_only_module();

/// Registers `table` on `conn` under its own name.
pub(crate) fn register(
    conn: &Connection,
    table: &'static dyn TableDef,
    query: &Arc<StateSlot>,
) -> rusqlite::Result<()> {
    conn.create_module(
        table.name(),
        &MODULE,
        Some(Aux {
            table,
            query: query.clone(),
        }),
    )
}

// SAFETY: `HostVTab` is `#[repr(C)]` with `sqlite3_vtab` as its first field.
unsafe impl<'vtab> VTab<'vtab> for HostVTab {
    type Aux = Aux;
    type Cursor = HostCursor<'vtab>;

    fn connect(
        _db: &mut VTabConnection,
        aux: Option<&Aux>,
        _module: &[u8],
        _database: &[u8],
        _table: &[u8],
        _args: &[&[u8]],
    ) -> rusqlite::Result<(Cow<'static, std::ffi::CStr>, Self)> {
        let aux = aux.ok_or_else(|| {
            rusqlite::Error::ModuleError("host table registered without its definition".into())
        })?;
        let decl = CString::new(declaration(aux.table.columns()))
            .map_err(|e| rusqlite::Error::ModuleError(e.to_string()))?;
        Ok((
            Cow::Owned(decl),
            HostVTab {
                base: sqlite3_vtab::default(),
                table: aux.table,
                query: aux.query.clone(),
            },
        ))
    }

    fn best_index(&self, info: &mut IndexInfo) -> rusqlite::Result<bool> {
        let columns = self.table.columns();
        // (constraint index, column, whether it is a GLOB)
        let candidates: Vec<(usize, usize, bool)> = info
            .constraints()
            .enumerate()
            .filter_map(|(i, c)| {
                let col = usize::try_from(c.column()).ok()?;
                let column = columns.get(col)?;
                let glob = c.operator() == IndexConstraintOp::SQLITE_INDEX_CONSTRAINT_GLOB;
                let pushable = c.is_usable()
                    && if glob {
                        column.glob
                    } else {
                        c.operator() == IndexConstraintOp::SQLITE_INDEX_CONSTRAINT_EQ
                            && column.pushdown
                    };
                pushable.then_some((i, col, glob))
            })
            .collect();
        // idx_str is the colUsed mask in hex, then the pushed columns in argv order:
        // "29/3e,5i,0g" = columns 0, 3 and 5 are read, column 3 is pushed by equality, column
        // 5 as a whole IN list, column 0 as a GLOB pattern.
        let mut plan = Vec::with_capacity(candidates.len());
        for (argv, (i, col, glob)) in candidates.iter().enumerate() {
            let kind = if *glob {
                'g'
            } else if info.is_in_constraint(*i)? && info.set_in_constraint(*i, true)? {
                'i'
            } else {
                'e'
            };
            info.constraint_usage(*i).set_argv_index(argv as c_int + 1);
            plan.push(format!("{col}{kind}"));
        }
        let required_met = !columns.iter().any(|c| c.required)
            || candidates.iter().any(|(_, col, _)| columns[*col].required);
        let (cost, rows) = match (plan.is_empty(), required_met) {
            (false, _) => (10.0, 10),
            // Steer the planner to any plan that feeds a required column.
            (true, false) => (1e12, 1_000_000),
            (true, true) => (100_000.0, 1000),
        };
        info.set_estimated_cost(cost);
        info.set_estimated_rows(rows);
        let used = UsedColumns::from_mask(info.col_used());
        self.query.current().note_used(self.table.name(), used);
        info.set_idx_str(&format!("{:x}/{}", used.mask(), plan.join(",")));
        Ok(true)
    }

    fn open(&'vtab mut self) -> rusqlite::Result<HostCursor<'vtab>> {
        Ok(HostCursor {
            base: sqlite3_vtab_cursor::default(),
            vtab: self,
            rows: Arc::default(),
            i: 0,
        })
    }
}

#[repr(C)]
pub(crate) struct HostCursor<'vtab> {
    /// SQLite's base struct; must come first.
    base: sqlite3_vtab_cursor,
    vtab: &'vtab HostVTab,
    rows: Arc<Vec<Row>>,
    i: usize,
}

impl HostCursor<'_> {
    fn constraints(&self, plan: &str, args: &Filters<'_>) -> rusqlite::Result<Constraints> {
        let columns = self.vtab.table.columns();
        let mut constraints = Constraints::none();
        let plan = plan.split(',').filter(|s| !s.is_empty());
        for (argv, entry) in plan.enumerate() {
            let (col, kind) = entry.split_at(entry.len() - 1);
            let Some(column) = col.parse::<usize>().ok().and_then(|c| columns.get(c)) else {
                continue;
            };
            if kind == "i" {
                let mut values = args.in_values(argv)?;
                while let Some(v) = values.next()? {
                    constraints.add(column.name, Value::from_sql(v));
                }
            } else if kind == "g" {
                let v: SqlValue = args.get(argv)?;
                constraints.add_glob(column.name, from_sql_value(v));
            } else {
                let v: SqlValue = args.get(argv)?;
                constraints.add(column.name, from_sql_value(v));
            }
        }
        Ok(constraints)
    }

    /// The rows of a scan under `constraints` that reads the `needed` columns.
    fn scan(
        &self,
        constraints: &Constraints,
        needed: UsedColumns,
    ) -> rusqlite::Result<Arc<Vec<Row>>> {
        let table = self.vtab.table;
        let query = self.vtab.query.current();
        let columns = table.columns();
        let required: Vec<&str> = columns
            .iter()
            .filter(|c| c.required)
            .map(|c| c.name)
            .collect();
        if !required.is_empty() && !required.iter().any(|c| constraints.has(c)) {
            query.warn(format!(
                "table {} needs a constraint on {}: add WHERE {} = '...' (no rows returned)",
                table.name(),
                required.join(" or "),
                required[0]
            ));
            return Ok(Arc::default());
        }
        let key = (table.name(), constraints.cache_key());
        if let Some((computed, rows)) = query
            .cache
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(&key)
            && computed.covers(needed)
        {
            return Ok(rows.clone());
        }
        let used = query.to_compute(table.name(), needed);
        let mut cx = ScanContext::new(constraints, query.deadline)
            .with_used_columns(columns, used)
            .with_readable(&query.readable);
        let result = table.rows(&mut cx);
        for w in cx.into_warnings() {
            query.warn(w);
        }
        let rows = match result {
            Ok(rows) => Arc::new(rows),
            Err(TableError::Timeout) => {
                query.timed_out.store(true, Ordering::SeqCst);
                return Err(rusqlite::Error::ModuleError(
                    TableError::Timeout.to_string(),
                ));
            }
            Err(e) => {
                return Err(rusqlite::Error::ModuleError(format!(
                    "table {}: {e}",
                    table.name()
                )));
            }
        };
        query
            .cache
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(key, (used, rows.clone()));
        Ok(rows)
    }
}

/// Splits `best_index`'s idx_str into the columns read and the pushed-constraint plan. An
/// idx_str without a readable mask reads every column.
fn parse_idx_str(idx_str: &str) -> (UsedColumns, &str) {
    match idx_str.split_once('/') {
        Some((mask, plan)) => match u64::from_str_radix(mask, 16) {
            Ok(mask) => (UsedColumns::from_mask(mask), plan),
            Err(_) => (UsedColumns::ALL, plan),
        },
        None => (UsedColumns::ALL, idx_str),
    }
}

fn from_sql_value(v: SqlValue) -> Value {
    match v {
        SqlValue::Null => Value::Null,
        SqlValue::Integer(i) => Value::Integer(i),
        SqlValue::Real(f) => Value::Real(f),
        SqlValue::Text(s) => Value::Text(s),
        SqlValue::Blob(b) => Value::Text(String::from_utf8_lossy(&b).into_owned()),
    }
}

// SAFETY: `HostCursor` is `#[repr(C)]` with `sqlite3_vtab_cursor` as its first field.
unsafe impl VTabCursor for HostCursor<'_> {
    fn filter(
        &mut self,
        _idx_num: c_int,
        idx_str: Option<&str>,
        args: &Filters<'_>,
    ) -> rusqlite::Result<()> {
        let (used, plan) = parse_idx_str(idx_str.unwrap_or(""));
        let constraints = self.constraints(plan, args)?;
        self.rows = self.scan(&constraints, used)?;
        self.i = 0;
        Ok(())
    }

    fn next(&mut self) -> rusqlite::Result<()> {
        self.i += 1;
        Ok(())
    }

    fn eof(&self) -> bool {
        self.i >= self.rows.len()
    }

    fn column(&self, ctx: &mut Context, col: c_int) -> rusqlite::Result<()> {
        let value = usize::try_from(col)
            .ok()
            .and_then(|c| self.rows.get(self.i)?.get(c));
        match value {
            Some(v) => ctx.set_result(v),
            None => ctx.set_result(&Value::Null),
        }
    }

    fn rowid(&self) -> rusqlite::Result<i64> {
        Ok(self.i as i64)
    }
}

#[cfg(test)]
mod tests {
    use std::cell::RefCell;

    use super::*;
    use crate::table::{Column, HostTable};

    thread_local! {
        /// The columns each scan of [`Probe`] on this thread wanted.
        static SCANS: RefCell<Vec<Vec<&'static str>>> = const { RefCell::new(Vec::new()) };
    }

    /// A table that records which columns each scan wants and fills only those, with
    /// values `"<column>1"` and `"<column>2"` in its two rows.
    struct Probe;

    impl HostTable for Probe {
        const NAME: &'static str = "probe";
        const COLUMNS: &'static [Column] = &[
            Column::text("a"),
            Column::text("b"),
            Column::text("c"),
            Column::text("d").hidden(),
        ];

        fn rows(&self, cx: &mut ScanContext<'_>) -> Result<Vec<Row>, TableError> {
            let wanted: Vec<&'static str> = Self::COLUMNS
                .iter()
                .map(|c| c.name)
                .filter(|c| cx.wants(c))
                .collect();
            SCANS.with(|s| s.borrow_mut().push(wanted));
            Ok((1..=2)
                .map(|i| {
                    Self::COLUMNS
                        .iter()
                        .map(|c| cx.wants(c.name).then(|| format!("{}{i}", c.name)).into())
                        .collect()
                })
                .collect())
        }
    }

    fn connection() -> Connection {
        let conn = Connection::open_in_memory().unwrap();
        register(&conn, &Probe, &Arc::default()).unwrap();
        SCANS.with(|s| s.borrow_mut().clear());
        conn
    }

    fn rows(conn: &Connection, sql: &str) -> Vec<Vec<Option<String>>> {
        let mut stmt = conn.prepare(sql).unwrap();
        let width = stmt.column_count();
        stmt.query_map([], |r| (0..width).map(|i| r.get(i)).collect())
            .unwrap()
            .collect::<rusqlite::Result<_>>()
            .unwrap()
    }

    fn scans() -> Vec<Vec<&'static str>> {
        SCANS.with(|s| s.borrow().clone())
    }

    fn text(s: &str) -> Option<String> {
        Some(s.to_string())
    }

    #[test]
    fn a_scan_wants_only_the_columns_the_statement_reads() {
        let conn = connection();
        assert_eq!(
            rows(&conn, "SELECT b FROM probe"),
            [[text("b1")], [text("b2")]]
        );
        assert_eq!(scans(), [["b"]]);

        let conn = connection();
        let sql = "SELECT c, a FROM probe WHERE d = 'd2' ORDER BY b";
        assert_eq!(rows(&conn, sql), [[text("c2"), text("a2")]]);
        assert_eq!(scans(), [["a", "b", "c", "d"]]);

        let conn = connection();
        assert_eq!(
            rows(&conn, "SELECT CAST(count(*) AS TEXT) FROM probe"),
            [[text("2")]]
        );
        assert_eq!(scans(), [Vec::<&str>::new()]);
    }

    #[test]
    fn select_star_wants_every_visible_column() {
        let conn = connection();
        assert_eq!(
            rows(&conn, "SELECT * FROM probe"),
            [
                [text("a1"), text("b1"), text("c1")],
                [text("a2"), text("b2"), text("c2")]
            ]
        );
        assert_eq!(scans(), [["a", "b", "c"]]);
    }

    #[test]
    fn scans_of_one_table_with_different_columns_each_get_their_values() {
        let conn = connection();
        let sql = "SELECT p.a, q.c FROM probe p JOIN probe q ON substr(q.b, 2) = substr(p.a, 2)";
        assert_eq!(
            rows(&conn, sql),
            [[text("a1"), text("c1")], [text("a2"), text("c2")]]
        );
        let sql = "SELECT a, (SELECT d FROM probe q WHERE substr(q.d, 2) = substr(p.a, 2)) \
                   FROM probe p";
        assert_eq!(
            rows(&conn, sql),
            [[text("a1"), text("d1")], [text("a2"), text("d2")]]
        );
    }

    #[test]
    fn a_cached_scan_is_not_reused_by_a_scan_that_reads_more_columns() {
        // Two statements on one query state: the second reads a column the first's cached
        // scan did not compute, so the table is scanned again, for both sets of columns.
        let conn = connection();
        assert_eq!(
            rows(&conn, "SELECT a FROM probe"),
            [[text("a1")], [text("a2")]]
        );
        assert_eq!(
            rows(&conn, "SELECT c FROM probe"),
            [[text("c1")], [text("c2")]]
        );
        assert_eq!(rows(&conn, "SELECT a FROM probe").len(), 2);
        assert_eq!(scans(), [vec!["a"], vec!["a", "c"]]);
    }

    #[test]
    fn idx_str_without_a_mask_reads_every_column() {
        assert_eq!(
            parse_idx_str("29/3e,5i"),
            (UsedColumns::from_mask(0x29), "3e,5i")
        );
        assert_eq!(parse_idx_str(""), (UsedColumns::ALL, ""));
        assert_eq!(parse_idx_str("3e"), (UsedColumns::ALL, "3e"));
    }
}
