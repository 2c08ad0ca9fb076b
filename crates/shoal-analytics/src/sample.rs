//! Generated retail sales, the data of Bacalhau's distributed-data-warehouse demo: one
//! region's transactions as Parquet or CSV files (`shoal demo sales-data`, the tests and the
//! benchmark use it). Deterministic for a seed.
//!
//! Columns: `ts` (timestamp, ms), `region`, `country`, `city`, `store`, `product`,
//! `quantity` (integer), `amount` (float, the sale's value).

use std::path::{Path, PathBuf};
use std::sync::Arc;

use datafusion::arrow::array::{
    ArrayRef, Float64Array, Int64Array, RecordBatch, StringArray, TimestampMillisecondArray,
};
use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef, TimeUnit};
use datafusion::parquet::arrow::ArrowWriter;

/// How a region's sales are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SampleFormat {
    /// `sales-N.parquet`.
    Parquet,
    /// `sales-N.csv` with a header row.
    Csv,
}

/// One region's sales to generate.
#[derive(Debug, Clone)]
pub struct Sales {
    /// The region (`eu`, `us`, `ap` have their own countries and cities; others get one).
    pub region: String,
    /// Rows in all files together.
    pub rows: usize,
    /// Files to split them over (at least one).
    pub files: usize,
    /// Seed of the generator.
    pub seed: u64,
}

const PRODUCTS: [&str; 6] = ["coffee", "tea", "bread", "cheese", "fish", "olives"];

fn places(region: &str) -> Vec<(&'static str, &'static str)> {
    match region {
        "eu" => vec![
            ("PT", "Lisbon"),
            ("DE", "Berlin"),
            ("FR", "Paris"),
            ("ES", "Madrid"),
        ],
        "us" => vec![("US", "New York"), ("US", "Austin"), ("CA", "Toronto")],
        "ap" => vec![("JP", "Tokyo"), ("SG", "Singapore"), ("AU", "Sydney")],
        _ => vec![("XX", "Springfield")],
    }
}

/// The schema every generated file has.
pub fn schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new(
            "ts",
            DataType::Timestamp(TimeUnit::Millisecond, None),
            false,
        ),
        Field::new("region", DataType::Utf8, false),
        Field::new("country", DataType::Utf8, false),
        Field::new("city", DataType::Utf8, false),
        Field::new("store", DataType::Utf8, false),
        Field::new("product", DataType::Utf8, false),
        Field::new("quantity", DataType::Int64, false),
        Field::new("amount", DataType::Float64, false),
    ]))
}

/// A small fast generator (xorshift64*), so files are the same for a seed everywhere.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

/// The rows of file `index` of `sales` as one batch.
pub fn batch(sales: &Sales, index: usize) -> RecordBatch {
    let files = sales.files.max(1);
    let rows = sales.rows / files + usize::from(index < sales.rows % files);
    let mut rng = Rng(sales.seed.wrapping_mul(31).wrapping_add(index as u64) | 1);
    let places = places(&sales.region);
    // 2026-01-01T00:00:00Z, then spread over 90 days.
    let start = 1_767_225_600_000i64;
    let (mut ts, mut country, mut city, mut store, mut product, mut qty, mut amount) = (
        Vec::with_capacity(rows),
        Vec::with_capacity(rows),
        Vec::with_capacity(rows),
        Vec::with_capacity(rows),
        Vec::with_capacity(rows),
        Vec::with_capacity(rows),
        Vec::with_capacity(rows),
    );
    for _ in 0..rows {
        let (c, t) = places[rng.below(places.len())];
        ts.push(start + (rng.next() % (90 * 86_400_000)) as i64);
        country.push(c);
        city.push(t);
        store.push(format!("{t}-{}", rng.below(5) + 1));
        product.push(PRODUCTS[rng.below(PRODUCTS.len())]);
        let q = rng.below(9) as i64 + 1;
        qty.push(q);
        // Cents, so sums are exact in any order.
        amount.push(q as f64 * (rng.below(2_000) as f64 + 50.0) / 100.0);
    }
    let region = vec![sales.region.as_str(); rows];
    let columns: Vec<ArrayRef> = vec![
        Arc::new(TimestampMillisecondArray::from(ts)),
        Arc::new(StringArray::from(region)),
        Arc::new(StringArray::from(country)),
        Arc::new(StringArray::from(city)),
        Arc::new(StringArray::from(store)),
        Arc::new(StringArray::from(product)),
        Arc::new(Int64Array::from(qty)),
        Arc::new(Float64Array::from(amount)),
    ];
    RecordBatch::try_new(schema(), columns).expect("columns match the schema")
}

/// Writes `sales` into `dir` (created if missing) as `sales-N.parquet` or `sales-N.csv`;
/// returns the files written.
pub fn write(dir: &Path, sales: &Sales, format: SampleFormat) -> std::io::Result<Vec<PathBuf>> {
    std::fs::create_dir_all(dir)?;
    let mut written = Vec::new();
    for i in 0..sales.files.max(1) {
        let batch = batch(sales, i);
        let path = match format {
            SampleFormat::Parquet => dir.join(format!("sales-{i}.parquet")),
            SampleFormat::Csv => dir.join(format!("sales-{i}.csv")),
        };
        let file = std::fs::File::create(&path)?;
        match format {
            SampleFormat::Parquet => {
                let mut w = ArrowWriter::try_new(file, batch.schema(), None)
                    .map_err(std::io::Error::other)?;
                w.write(&batch).map_err(std::io::Error::other)?;
                w.close().map_err(std::io::Error::other)?;
            }
            SampleFormat::Csv => write_csv(file, &batch)?,
        }
        written.push(path);
    }
    Ok(written)
}

fn write_csv(file: std::fs::File, batch: &RecordBatch) -> std::io::Result<()> {
    use datafusion::arrow::util::display::{ArrayFormatter, FormatOptions};
    use std::io::Write;
    let mut out = std::io::BufWriter::new(file);
    let names: Vec<&str> = batch
        .schema_ref()
        .fields()
        .iter()
        .map(|f| f.name().as_str())
        .collect();
    writeln!(out, "{}", names.join(","))?;
    let options = FormatOptions::default();
    let formatters: Vec<ArrayFormatter<'_>> = batch
        .columns()
        .iter()
        .map(|c| ArrayFormatter::try_new(c.as_ref(), &options).map_err(std::io::Error::other))
        .collect::<std::io::Result<_>>()?;
    for row in 0..batch.num_rows() {
        let cells: Vec<String> = formatters
            .iter()
            .map(|f| f.value(row).to_string())
            .collect();
        writeln!(out, "{}", cells.join(","))?;
    }
    out.flush()
}
