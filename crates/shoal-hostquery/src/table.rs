//! What a host table is: a name, osquery's columns, and a function that reads the host.
//!
//! Adding a table is one file in `tables/` that implements [`HostTable`] and one line in
//! `tables/mod.rs`. The SQLite plumbing (`vtab.rs`) is shared by every table.
//!
//! A scan also learns which columns the statement reads ([`ScanContext::wants`]); a table
//! may skip computing the others, which then read as `NULL` (SQLite never asks for them).

use std::collections::BTreeMap;
use std::time::Instant;

use crate::allowed::AllowedDir;
use crate::value::Value;

/// One row, with values in the order of the table's [`HostTable::COLUMNS`]. A row shorter
/// than the column list reads as `NULL` in the missing columns (osquery's behaviour for
/// columns a platform does not fill).
pub type Row = Vec<Value>;

/// osquery's column types. They map to SQLite declared types, hence to SQLite affinities.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ColumnType {
    /// `TEXT`.
    Text,
    /// `INTEGER` (32-bit in osquery).
    Integer,
    /// `BIGINT`.
    BigInt,
    /// `UNSIGNED_BIGINT`.
    UnsignedBigInt,
    /// `DOUBLE`.
    Double,
}

impl ColumnType {
    /// The type as written in the SQLite table declaration (osquery's spelling).
    pub fn sql(self) -> &'static str {
        match self {
            ColumnType::Text => "TEXT",
            ColumnType::Integer => "INTEGER",
            ColumnType::BigInt => "BIGINT",
            ColumnType::UnsignedBigInt => "UNSIGNED BIGINT",
            ColumnType::Double => "DOUBLE",
        }
    }
}

/// One column of a host table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Column {
    /// Column name, as osquery spells it.
    pub name: &'static str,
    /// Column type.
    pub ty: ColumnType,
    /// Left out of `SELECT *` but selectable by name (osquery's `hidden=True` and other
    /// platforms' extended columns).
    pub hidden: bool,
    /// `WHERE col = v` and `WHERE col IN (...)` reach the table as a [`Constraints`] entry
    /// (osquery's `index`, `optimized` and `additional` flags).
    pub pushdown: bool,
    /// The table yields no rows unless one of its required columns is constrained
    /// (osquery's `required=True`: `file`, `hash`).
    pub required: bool,
    /// `WHERE col GLOB 'pattern'` also reaches the table ([`Constraints::globs`]), for
    /// tables that expand file patterns themselves (`file_lines`).
    pub glob: bool,
}

impl Column {
    const fn new(name: &'static str, ty: ColumnType) -> Self {
        Column {
            name,
            ty,
            hidden: false,
            pushdown: false,
            required: false,
            glob: false,
        }
    }

    /// A `TEXT` column.
    pub const fn text(name: &'static str) -> Self {
        Self::new(name, ColumnType::Text)
    }

    /// An `INTEGER` column.
    pub const fn integer(name: &'static str) -> Self {
        Self::new(name, ColumnType::Integer)
    }

    /// A `BIGINT` column.
    pub const fn bigint(name: &'static str) -> Self {
        Self::new(name, ColumnType::BigInt)
    }

    /// An `UNSIGNED_BIGINT` column.
    pub const fn unsigned_bigint(name: &'static str) -> Self {
        Self::new(name, ColumnType::UnsignedBigInt)
    }

    /// A `DOUBLE` column.
    pub const fn double(name: &'static str) -> Self {
        Self::new(name, ColumnType::Double)
    }

    /// Marks the column hidden.
    pub const fn hidden(mut self) -> Self {
        self.hidden = true;
        self
    }

    /// Marks the column as one whose equality constraints reach the table.
    pub const fn index(mut self) -> Self {
        self.pushdown = true;
        self
    }

    /// Lets `GLOB` constraints on the column reach the table too (implies [`Column::index`]).
    pub const fn glob(mut self) -> Self {
        self.pushdown = true;
        self.glob = true;
        self
    }

    /// Marks the column required (implies [`Column::index`]).
    pub const fn required(mut self) -> Self {
        self.pushdown = true;
        self.required = true;
        self
    }
}

/// The equality (and, on [`Column::glob`] columns, `GLOB`) constraints SQLite pushed down
/// to a table for one scan, by column name.
///
/// Tables may use them to read less of the host (`processes WHERE pid = 1`) or to learn
/// their input (`file WHERE path = '/etc/passwd'`). SQLite re-checks every constraint on
/// the rows a table returns, so a table may ignore them or return extra rows, never fewer.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Constraints {
    eq: BTreeMap<&'static str, Vec<Value>>,
    globs: BTreeMap<&'static str, Vec<String>>,
}

impl Constraints {
    /// No constraints: the table should produce every row it can.
    pub fn none() -> Self {
        Self::default()
    }

    /// Adds `column = value` (several values for one column mean `column IN (...)`).
    pub fn with(mut self, column: &'static str, value: impl Into<Value>) -> Self {
        self.add(column, value.into());
        self
    }

    pub(crate) fn add(&mut self, column: &'static str, value: Value) {
        if value != Value::Null {
            self.eq.entry(column).or_default().push(value);
        }
    }

    /// Adds `column GLOB pattern`.
    pub fn with_glob(mut self, column: &'static str, pattern: impl Into<String>) -> Self {
        self.globs.entry(column).or_default().push(pattern.into());
        self
    }

    pub(crate) fn add_glob(&mut self, column: &'static str, value: Value) {
        if value != Value::Null {
            self.globs
                .entry(column)
                .or_default()
                .push(value.to_osquery_string());
        }
    }

    /// Whether `column` is constrained (by equality or by a glob).
    pub fn has(&self, column: &str) -> bool {
        self.eq.contains_key(column) || self.globs.contains_key(column)
    }

    /// The `GLOB` patterns `column` must match, if any reached the table.
    pub fn globs(&self, column: &str) -> Option<&[String]> {
        self.globs.get(column).map(Vec::as_slice)
    }

    /// The values `column` must equal, if it is constrained.
    pub fn values(&self, column: &str) -> Option<&[Value]> {
        self.eq.get(column).map(Vec::as_slice)
    }

    /// The constrained values of `column` rendered as text.
    pub fn texts(&self, column: &str) -> Option<Vec<String>> {
        self.values(column)
            .map(|vs| vs.iter().map(Value::to_osquery_string).collect())
    }

    /// The constrained values of `column` that are integers (others cannot match an
    /// integer column and are dropped).
    pub fn integers(&self, column: &str) -> Option<Vec<i64>> {
        self.values(column)
            .map(|vs| vs.iter().filter_map(Value::as_integer).collect())
    }

    pub(crate) fn cache_key(&self) -> String {
        format!("{:?} {:?}", self.eq, self.globs)
    }
}

/// The columns of a table that one statement reads, as SQLite's `colUsed` mask: bit `i`
/// is column `i`, and bit 63 stands for column 63 and every later one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct UsedColumns(u64);

impl UsedColumns {
    /// Every column: what a scan assumes when nobody said which columns it needs.
    pub const ALL: UsedColumns = UsedColumns(u64::MAX);

    /// The columns of a `colUsed` mask.
    pub const fn from_mask(mask: u64) -> Self {
        UsedColumns(mask)
    }

    /// The columns of `table` named in `names` (names that are not columns are ignored).
    pub fn named(table: &[Column], names: &[&str]) -> Self {
        let mask = table
            .iter()
            .enumerate()
            .filter(|(_, c)| names.contains(&c.name))
            .fold(0, |mask, (i, _)| mask | bit(i));
        UsedColumns(mask)
    }

    /// The `colUsed` mask.
    pub const fn mask(self) -> u64 {
        self.0
    }

    /// Whether the column at `index` is used.
    pub const fn contains(self, index: usize) -> bool {
        self.0 & bit(index) != 0
    }

    /// Whether every column of `other` is in `self`.
    pub const fn covers(self, other: UsedColumns) -> bool {
        self.0 & other.0 == other.0
    }

    /// The columns in either set.
    pub const fn union(self, other: UsedColumns) -> Self {
        UsedColumns(self.0 | other.0)
    }
}

/// The `colUsed` bit of the column at `index` (63 and later share bit 63).
const fn bit(index: usize) -> u64 {
    1 << if index < 63 { index } else { 63 }
}

/// Why a table could not produce its rows.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum TableError {
    /// The query's time limit passed while the table was reading the host.
    #[error(
        "query time limit reached while reading the host; narrow the query or raise its time limit"
    )]
    Timeout,
    /// The host source could not be read at all.
    #[error("{0}")]
    Source(String),
}

/// What a table gets for one scan: the pushed-down constraints, the columns the statement
/// reads, the query's deadline and a place for warnings (osquery prints these to stderr;
/// Shoal returns them with the result).
#[derive(Debug)]
pub struct ScanContext<'a> {
    /// Pushed-down equality constraints.
    pub constraints: &'a Constraints,
    columns: &'a [Column],
    used: UsedColumns,
    deadline: Option<Instant>,
    readable: &'a [AllowedDir],
    warnings: Vec<String>,
}

impl<'a> ScanContext<'a> {
    /// A context with the given constraints and deadline, wanting every column, allowed to
    /// read no file contents.
    pub fn new(constraints: &'a Constraints, deadline: Option<Instant>) -> Self {
        ScanContext {
            constraints,
            columns: &[],
            used: UsedColumns::ALL,
            deadline,
            readable: &[],
            warnings: Vec::new(),
        }
    }

    /// Lets the scan read the files under `dirs` (the node's `--log-allow`).
    pub fn with_readable(mut self, dirs: &'a [AllowedDir]) -> Self {
        self.readable = dirs;
        self
    }

    /// The directories whose files the tables that read file contents may open
    /// ([`QueryLimits::log_dirs`](crate::QueryLimits::log_dirs)).
    pub fn readable(&self) -> &'a [AllowedDir] {
        self.readable
    }

    /// Narrows the scan to the `used` columns of a table with the given `columns`.
    pub fn with_used_columns(mut self, columns: &'a [Column], used: UsedColumns) -> Self {
        self.columns = columns;
        self.used = used;
        self
    }

    /// Whether the statement reads the column `name`. A table may leave a column it is not
    /// wanted `NULL` rather than read the host for it. True when the scan was not narrowed
    /// or `name` is not one of the table's columns.
    pub fn wants(&self, name: &str) -> bool {
        let index = self.columns.iter().position(|c| c.name == name);
        debug_assert!(
            self.columns.is_empty() || index.is_some(),
            "wants({name:?}): not a column of this table"
        );
        index.is_none_or(|i| self.used.contains(i))
    }

    /// Whether the statement reads any of the columns `names`.
    pub fn wants_any(&self, names: &[&str]) -> bool {
        names.iter().any(|n| self.wants(n))
    }

    /// Fails with [`TableError::Timeout`] once the deadline has passed. Tables that can run
    /// long (hashing, walking directories) call it between units of work.
    pub fn check_deadline(&self) -> Result<(), TableError> {
        match self.deadline {
            Some(d) if Instant::now() >= d => Err(TableError::Timeout),
            _ => Ok(()),
        }
    }

    /// When the query's time limit ends, if it has one. Tables that wait on another
    /// process (a daemon's API) bound their waits by it.
    pub fn deadline(&self) -> Option<Instant> {
        self.deadline
    }

    /// Records a warning for the query's caller.
    pub fn warn(&mut self, message: impl Into<String>) {
        self.warnings.push(message.into());
    }

    /// The warnings recorded so far.
    pub fn into_warnings(self) -> Vec<String> {
        self.warnings
    }
}

/// An osquery-compatible table. Implementations are unit structs; see `tables/`.
pub trait HostTable: Send + Sync + 'static {
    /// Table name, as osquery spells it.
    const NAME: &'static str;
    /// Columns, in osquery's order; hidden columns last.
    const COLUMNS: &'static [Column];
    /// Reads the host now and returns the rows, in [`HostTable::COLUMNS`] order.
    fn rows(&self, cx: &mut ScanContext<'_>) -> Result<Vec<Row>, TableError>;
}

/// The object-safe face of [`HostTable`], used by the registry and the SQLite adapter.
pub trait TableDef: Send + Sync + 'static {
    /// Table name.
    fn name(&self) -> &'static str;
    /// Columns.
    fn columns(&self) -> &'static [Column];
    /// Reads the host.
    fn rows(&self, cx: &mut ScanContext<'_>) -> Result<Vec<Row>, TableError>;
}

impl<T: HostTable> TableDef for T {
    fn name(&self) -> &'static str {
        T::NAME
    }

    fn columns(&self) -> &'static [Column] {
        T::COLUMNS
    }

    fn rows(&self, cx: &mut ScanContext<'_>) -> Result<Vec<Row>, TableError> {
        HostTable::rows(self, cx)
    }
}

/// The `CREATE TABLE` statement SQLite needs to learn a table's shape.
pub(crate) fn declaration(columns: &[Column]) -> String {
    let cols: Vec<String> = columns
        .iter()
        .map(|c| {
            format!(
                "\"{}\" {}{}",
                c.name,
                c.ty.sql(),
                if c.hidden { " HIDDEN" } else { "" }
            )
        })
        .collect();
    format!("CREATE TABLE x({})", cols.join(", "))
}

#[cfg(test)]
mod tests {
    use super::*;

    const COLUMNS: &[Column] = &[Column::text("a"), Column::text("b"), Column::text("c")];

    #[test]
    fn bit_63_stands_for_every_later_column() {
        let late = UsedColumns::from_mask(1 << 63);
        assert!(late.contains(63) && late.contains(64) && late.contains(200));
        assert!(!late.contains(62) && !late.contains(0));
        assert!(UsedColumns::from_mask(1).contains(0));
    }

    #[test]
    fn a_scan_wants_every_column_unless_narrowed() {
        let constraints = Constraints::none();
        let cx = ScanContext::new(&constraints, None);
        assert!(cx.wants("a") && cx.wants("anything"));

        let used = UsedColumns::named(COLUMNS, &["b"]);
        assert_eq!(used, UsedColumns::from_mask(0b010));
        let cx = ScanContext::new(&constraints, None).with_used_columns(COLUMNS, used);
        assert!(cx.wants("b") && !cx.wants("a") && !cx.wants("c"));
        assert!(cx.wants_any(&["a", "b"]) && !cx.wants_any(&["a", "c"]));
    }

    #[test]
    fn covers_and_union_compare_column_sets() {
        let ab = UsedColumns::named(COLUMNS, &["a", "b"]);
        let b = UsedColumns::named(COLUMNS, &["b"]);
        let c = UsedColumns::named(COLUMNS, &["c"]);
        assert!(ab.covers(b) && !b.covers(ab) && !ab.covers(c));
        assert_eq!(b.union(c), UsedColumns::named(COLUMNS, &["b", "c"]));
        assert!(UsedColumns::ALL.covers(ab));
    }
}
