//! `shoal demo sales-data`: writes the retail sales of Bacalhau's distributed-data-warehouse
//! demo, one directory per region, for trying `shoal query --engine analytics` (see the
//! README's "SQL over the nodes' data").

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Subcommand, ValueEnum};

/// `demo` subcommands.
#[derive(Subcommand, Debug)]
pub enum DemoCommand {
    /// Write generated sales (Parquet or CSV) into OUT/<region>/, e.g. for
    /// `shoal devstack --data-allow '/data/sales=OUT/{region}'`.
    SalesData(SalesDataArgs),
}

/// `demo sales-data` arguments.
#[derive(Args, Debug)]
pub struct SalesDataArgs {
    /// Directory to write into (OUT/<region>/sales-N.<format>); created if missing.
    #[arg(long)]
    pub out: PathBuf,
    /// Regions, comma-separated; eu, us and ap have their own countries and cities.
    #[arg(long, default_value = "eu,us,ap", value_delimiter = ',')]
    pub regions: Vec<String>,
    /// Rows per region.
    #[arg(long, default_value_t = 100_000)]
    pub rows: usize,
    /// Files per region.
    #[arg(long, default_value_t = 4)]
    pub files: usize,
    /// File format.
    #[arg(long, value_enum, default_value_t = Format::Parquet)]
    pub format: Format,
    /// Seed of the generator (the same seed writes the same rows).
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
}

/// A file format for generated data.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Format {
    /// Apache Parquet.
    Parquet,
    /// CSV with a header row.
    Csv,
}

/// Runs `shoal demo`.
pub async fn run(cmd: DemoCommand) -> anyhow::Result<ExitCode> {
    match cmd {
        DemoCommand::SalesData(args) => sales_data(args),
    }
}

#[cfg(feature = "analytics")]
fn sales_data(args: SalesDataArgs) -> anyhow::Result<ExitCode> {
    use shoal_analytics::sample::{Sales, SampleFormat, write};
    anyhow::ensure!(args.files > 0, "--files must be at least 1");
    let format = match args.format {
        Format::Parquet => SampleFormat::Parquet,
        Format::Csv => SampleFormat::Csv,
    };
    for (i, region) in args.regions.iter().enumerate() {
        let region = region.trim();
        anyhow::ensure!(
            !region.is_empty() && !region.contains(['/', '.']),
            "--regions: {region:?} is not a region name (letters, digits and dashes, e.g. eu)"
        );
        let dir = args.out.join(region);
        let sales = Sales {
            region: region.to_string(),
            rows: args.rows,
            files: args.files,
            seed: args.seed.wrapping_add(i as u64),
        };
        let files = write(&dir, &sales, format)
            .map_err(|e| anyhow::anyhow!("cannot write into {}: {e}", dir.display()))?;
        println!(
            "{region}: {} rows in {} files under {}",
            args.rows,
            files.len(),
            dir.display()
        );
    }
    Ok(ExitCode::SUCCESS)
}

#[cfg(not(feature = "analytics"))]
fn sales_data(_args: SalesDataArgs) -> anyhow::Result<ExitCode> {
    anyhow::bail!("this shoal was built without the analytics engine (cargo feature analytics)")
}
