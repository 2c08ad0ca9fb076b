//! The one SQLite virtual-table adapter every [`TableDef`] runs through.
//!
//! Tables are eponymous-only modules (`SELECT * FROM processes` works without a
//! `CREATE VIRTUAL TABLE`). `best_index` pushes equality and `IN` constraints on the
//! columns a table marks [`Column::pushdown`](crate::table::Column) down to `filter`, which
//! reads the host at that moment. Rows are cached per query and per constraint set, so a
//! correlated subquery or a join that rescans a table does not re-read `/proc` per outer row
//! and sees one consistent snapshot.

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

use crate::table::{Constraints, Row, ScanContext, TableDef, TableError, declaration};
use crate::value::Value;

/// A table's name and the constraints of one scan of it.
type ScanKey = (&'static str, String);

/// State shared by every table of one query's connection.
#[derive(Debug, Default)]
pub(crate) struct QueryState {
    pub(crate) deadline: Option<Instant>,
    pub(crate) timed_out: AtomicBool,
    pub(crate) warnings: Mutex<Vec<String>>,
    cache: Mutex<HashMap<ScanKey, Arc<Vec<Row>>>>,
}

impl QueryState {
    pub(crate) fn new(deadline: Option<Instant>) -> Self {
        QueryState {
            deadline,
            ..Default::default()
        }
    }

    fn warn(&self, message: String) {
        let mut warnings = self.warnings.lock().unwrap_or_else(|e| e.into_inner());
        if !warnings.contains(&message) {
            warnings.push(message);
        }
    }
}

/// Client data for one registered table.
pub(crate) struct Aux {
    table: &'static dyn TableDef,
    query: Arc<QueryState>,
}

#[repr(C)]
pub(crate) struct HostVTab {
    /// SQLite's base struct; must come first.
    base: sqlite3_vtab,
    table: &'static dyn TableDef,
    query: Arc<QueryState>,
}

const MODULE: Module<'static, HostVTab> = Module::eponymous_only_module();

/// Registers `table` on `conn` under its own name.
pub(crate) fn register(
    conn: &Connection,
    table: &'static dyn TableDef,
    query: &Arc<QueryState>,
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
        let candidates: Vec<(usize, usize)> = info
            .constraints()
            .enumerate()
            .filter_map(|(i, c)| {
                let col = usize::try_from(c.column()).ok()?;
                let pushable = c.is_usable()
                    && c.operator() == IndexConstraintOp::SQLITE_INDEX_CONSTRAINT_EQ
                    && columns.get(col).is_some_and(|c| c.pushdown);
                pushable.then_some((i, col))
            })
            .collect();
        // idx_str lists the pushed columns in argv order: "3e,5i" = column 3 by equality,
        // column 5 as a whole IN list.
        let mut plan = Vec::with_capacity(candidates.len());
        for (argv, (i, col)) in candidates.iter().enumerate() {
            let whole_in = info.is_in_constraint(*i)? && info.set_in_constraint(*i, true)?;
            info.constraint_usage(*i).set_argv_index(argv as c_int + 1);
            plan.push(format!("{col}{}", if whole_in { 'i' } else { 'e' }));
        }
        let required_met = !columns.iter().any(|c| c.required)
            || candidates.iter().any(|(_, col)| columns[*col].required);
        let (cost, rows) = match (plan.is_empty(), required_met) {
            (false, _) => (10.0, 10),
            // Steer the planner to any plan that feeds a required column.
            (true, false) => (1e12, 1_000_000),
            (true, true) => (100_000.0, 1000),
        };
        info.set_estimated_cost(cost);
        info.set_estimated_rows(rows);
        info.set_idx_str(&plan.join(","));
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
    fn constraints(
        &self,
        idx_str: Option<&str>,
        args: &Filters<'_>,
    ) -> rusqlite::Result<Constraints> {
        let columns = self.vtab.table.columns();
        let mut constraints = Constraints::none();
        let plan = idx_str.unwrap_or("").split(',').filter(|s| !s.is_empty());
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
            } else {
                let v: SqlValue = args.get(argv)?;
                constraints.add(column.name, from_sql_value(v));
            }
        }
        Ok(constraints)
    }

    fn scan(&self, constraints: &Constraints) -> rusqlite::Result<Arc<Vec<Row>>> {
        let table = self.vtab.table;
        let query = &self.vtab.query;
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
        if let Some(rows) = query
            .cache
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(&key)
        {
            return Ok(rows.clone());
        }
        let mut cx = ScanContext::new(constraints, query.deadline);
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
            .insert(key, rows.clone());
        Ok(rows)
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
        let constraints = self.constraints(idx_str, args)?;
        self.rows = self.scan(&constraints)?;
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
