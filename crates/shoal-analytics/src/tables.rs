//! The table functions `read_parquet`, `read_csv` and `read_json`: each call's paths are
//! resolved under the node's allowed directories ([`resolve`](shoal_hostquery::allowed::resolve)),
//! each file's schema is read, and the files become one table.
//!
//! Files whose columns differ are joined by column name (DuckDB's `union_by_name`): files
//! with the same schema are scanned together, each group is projected onto the union of the
//! columns (`NULL` where a group lacks one) and the groups are unioned. A column whose type
//! differs between files takes a common type: `Float64` when all are numbers, else text.

use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use datafusion::catalog::{Session, TableFunctionArgs, TableFunctionImpl, TableProvider};
use datafusion::common::{Column, ScalarValue};
use datafusion::datasource::file_format::FileFormat;
use datafusion::datasource::file_format::csv::CsvFormat;
use datafusion::datasource::file_format::json::JsonFormat;
use datafusion::datasource::file_format::parquet::ParquetFormat;
use datafusion::datasource::listing::{
    ListingOptions, ListingTable, ListingTableConfig, ListingTableUrl,
};
use datafusion::datasource::{ViewTable, provider_as_source};
use datafusion::error::{DataFusionError, Result};
use datafusion::logical_expr::{Expr, LogicalPlanBuilder, cast, lit};
use datafusion::prelude::SessionContext;

use shoal_hostquery::allowed::resolve;

use crate::{DataDir, DataError};

/// A file format a table function reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// `read_parquet`.
    Parquet,
    /// `read_csv`: a header row; `.tsv` files are tab-separated.
    Csv,
    /// `read_json`: one JSON object per line.
    Json,
}

impl Format {
    /// Every format, in the order the functions are listed.
    pub const ALL: [Format; 3] = [Format::Parquet, Format::Csv, Format::Json];

    /// The table function's name.
    pub fn function(self) -> &'static str {
        match self {
            Format::Parquet => "read_parquet",
            Format::Csv => "read_csv",
            Format::Json => "read_json",
        }
    }

    fn options(self, first: &str) -> ListingOptions {
        let format: Arc<dyn FileFormat> = match self {
            Format::Parquet => Arc::new(ParquetFormat::default()),
            Format::Csv => {
                let delimiter = if first.ends_with(".tsv") { b'\t' } else { b',' };
                Arc::new(
                    CsvFormat::default()
                        .with_has_header(true)
                        .with_delimiter(delimiter),
                )
            }
            Format::Json => Arc::new(JsonFormat::default()),
        };
        ListingOptions::new(format).with_file_extension("")
    }
}

/// What the table functions of one query read, and the first error they met: planning
/// wraps a table function's error in its own words, so the query takes it from here.
#[derive(Debug, Clone, Default)]
pub struct Reads(Arc<Mutex<ReadsInner>>);

#[derive(Debug, Default)]
struct ReadsInner {
    files: usize,
    error: Option<DataError>,
}

impl Reads {
    /// Files the query's table functions read.
    pub fn files(&self) -> usize {
        self.0.lock().expect("reads lock").files
    }

    /// The first error a table function met, once.
    pub fn take_error(&self) -> Option<DataError> {
        self.0.lock().expect("reads lock").error.take()
    }

    fn fail(&self, e: DataError) -> DataFusionError {
        let message = e.to_string();
        self.0.lock().expect("reads lock").error.get_or_insert(e);
        DataFusionError::Plan(message)
    }
}

/// Registers the table functions on `ctx`, reading only under `allow`.
pub fn register(ctx: &SessionContext, allow: &[DataDir]) -> Reads {
    let reads = Reads::default();
    for format in Format::ALL {
        ctx.register_udtf(
            format.function(),
            Arc::new(ReadFiles {
                format,
                allow: allow.to_vec(),
                reads: reads.clone(),
            }),
        );
    }
    reads
}

#[derive(Debug)]
struct ReadFiles {
    format: Format,
    allow: Vec<DataDir>,
    reads: Reads,
}

impl TableFunctionImpl for ReadFiles {
    fn call_with_args(&self, args: TableFunctionArgs) -> Result<Arc<dyn TableProvider>> {
        let function = self.format.function();
        let patterns = args
            .exprs()
            .iter()
            .map(|e| match e {
                Expr::Literal(
                    ScalarValue::Utf8(Some(s))
                    | ScalarValue::LargeUtf8(Some(s))
                    | ScalarValue::Utf8View(Some(s)),
                    _,
                ) => Ok(s.clone()),
                other => Err(self.reads.fail(DataError::Sql(format!(
                    "{function}: arguments are file paths or globs as string literals, e.g. {function}('/data/sales/*.{}'); got {other}",
                    self.extension()
                )))),
            })
            .collect::<Result<Vec<String>>>()?;
        if patterns.is_empty() {
            return Err(self.reads.fail(DataError::Sql(format!(
                "{function}: give at least one path, e.g. {function}('/data/sales/*.{}')",
                self.extension()
            ))));
        }
        let files: Vec<PathBuf> = resolve(function, &patterns, &self.allow, "--data-allow")
            .map_err(|e| self.reads.fail(DataError::Files(e.to_string())))?
            .into_iter()
            .map(|f| f.real)
            .collect();
        self.reads.0.lock().expect("reads lock").files += files.len();
        // Planning is synchronous and reading schemas is not; queries run on a runtime of
        // their own (crate::run_sql), whose worker may block here.
        let session = args.session();
        let table = tokio::task::block_in_place(|| {
            tokio::runtime::Handle::current().block_on(self.table(session, &files))
        });
        table.map_err(|e| self.reads.fail(e))
    }
}

impl ReadFiles {
    fn extension(&self) -> &'static str {
        match self.format {
            Format::Parquet => "parquet",
            Format::Csv => "csv",
            Format::Json => "jsonl",
        }
    }

    /// One table over `files`, grouped by schema and unioned by column name.
    async fn table(
        &self,
        session: &dyn Session,
        files: &[PathBuf],
    ) -> std::result::Result<Arc<dyn TableProvider>, DataError> {
        let function = self.format.function();
        let first = files[0].display().to_string();
        let options = self.format.options(&first);
        let mut groups: Vec<(SchemaRef, Vec<ListingTableUrl>, String)> = Vec::new();
        for file in files {
            let shown = file.display().to_string();
            let bad = |e: DataFusionError| {
                DataError::Files(format!(
                    "{function}: cannot read {shown}: {}",
                    crate::clean(&e.find_root().to_string())
                ))
            };
            let url = ListingTableUrl::parse(&shown).map_err(bad)?;
            let schema = options.infer_schema(session, &url).await.map_err(bad)?;
            match groups.iter_mut().find(|(s, _, _)| same_columns(s, &schema)) {
                Some((_, urls, _)) => urls.push(url),
                None => groups.push((schema, vec![url], shown)),
            }
        }
        let table = |schema: &SchemaRef, urls: &[ListingTableUrl]| {
            let config = ListingTableConfig::new_with_multi_paths(urls.to_vec())
                .with_listing_options(options.clone())
                .with_schema(schema.clone());
            ListingTable::try_new(config).map_err(|e| {
                DataError::Sql(format!("{function}: {}", crate::clean(&e.to_string())))
            })
        };
        if let [(schema, urls, _)] = groups.as_slice() {
            return Ok(Arc::new(table(schema, urls)?));
        }
        let merged = union_schema(groups.iter().map(|(s, _, _)| s));
        let mut plan: Option<LogicalPlanBuilder> = None;
        for (i, (schema, urls, _)) in groups.iter().enumerate() {
            let name = format!("files{i}");
            let columns = merged.fields().iter().map(|f| {
                let value = match schema.field_with_name(f.name()) {
                    Ok(have) => {
                        let c = Expr::Column(Column::new(Some(name.clone()), f.name()));
                        if have.data_type() == f.data_type() {
                            c
                        } else {
                            cast(c, f.data_type().clone())
                        }
                    }
                    Err(_) => cast(lit(ScalarValue::Null), f.data_type().clone()),
                };
                value.alias(f.name())
            });
            let planned = LogicalPlanBuilder::scan(
                name.clone(),
                provider_as_source(Arc::new(table(schema, urls)?)),
                None,
            )
            .and_then(|b| b.project(columns));
            let planned = match plan {
                None => planned,
                Some(p) => planned.and_then(|b| b.build()).and_then(|b| p.union(b)),
            };
            plan = Some(planned.map_err(|e| {
                DataError::Sql(format!(
                    "{function}: cannot combine {} with the other files: {}",
                    groups[i].2,
                    crate::clean(&e.to_string())
                ))
            })?);
        }
        let plan = plan
            .expect("at least two groups")
            .build()
            .map_err(|e| DataError::Sql(format!("{function}: {}", crate::clean(&e.to_string()))))?;
        Ok(Arc::new(ViewTable::new(plan, None)))
    }
}

/// Same column names and types, in the same order.
fn same_columns(a: &Schema, b: &Schema) -> bool {
    a.fields().len() == b.fields().len()
        && a.fields()
            .iter()
            .zip(b.fields())
            .all(|(x, y)| x.name() == y.name() && x.data_type() == y.data_type())
}

/// Every column of every schema, in order of first appearance, nullable, with a type all
/// of them convert to.
fn union_schema<'a>(schemas: impl Iterator<Item = &'a SchemaRef>) -> Schema {
    let mut fields: Vec<(String, DataType)> = Vec::new();
    for schema in schemas {
        for f in schema.fields() {
            match fields.iter_mut().find(|(n, _)| n == f.name()) {
                None => fields.push((f.name().clone(), f.data_type().clone())),
                Some((_, t)) if t == f.data_type() => {}
                Some((_, t)) if t.is_numeric() && f.data_type().is_numeric() => {
                    *t = DataType::Float64
                }
                Some((_, t)) => *t = DataType::Utf8,
            }
        }
    }
    Schema::new(
        fields
            .into_iter()
            .map(|(n, t)| Field::new(n, t, true))
            .collect::<Vec<_>>(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_union_of_schemas_keeps_first_order_and_finds_a_common_type() {
        let a = Arc::new(Schema::new(vec![
            Field::new("region", DataType::Utf8, false),
            Field::new("amount", DataType::Int64, false),
        ]));
        let b = Arc::new(Schema::new(vec![
            Field::new("amount", DataType::Float64, false),
            Field::new("region", DataType::Int64, false),
            Field::new("store", DataType::Utf8, false),
        ]));
        let u = union_schema([&a, &b].into_iter());
        let got: Vec<(&str, &DataType)> = u
            .fields()
            .iter()
            .map(|f| (f.name().as_str(), f.data_type()))
            .collect();
        assert_eq!(
            got,
            vec![
                ("region", &DataType::Utf8),
                ("amount", &DataType::Float64),
                ("store", &DataType::Utf8)
            ]
        );
    }
}
