//! `bench_report`: turns criterion's saved estimates into `plots/bench-table.md`
//! and the log-log scaling plot `plots/bench-scaling.{svg,png}`.
//!
//! ```text
//! CARGO_TARGET_DIR=target cargo bench            # or: --bench hot_paths, ...
//! cargo run --release --bin bench_report -- [--criterion DIR] [--out DIR]
//! ```
//!
//! Every figure is criterion's median of the last run of that benchmark
//! (`<id>/new/estimates.json`); a ratio to `Linux` compares medians of the
//! same invocation only when both were run by it (run the whole bench file,
//! as above). Sizes are `size_of` of this build of the core.
//!
//! * [`estimates`]: criterion's files;
//! * [`table`]: the Markdown report with the targets;
//! * [`scaling`]: power-law fits of the recompute and rollover, and their plot.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;

mod estimates;
mod scaling;
mod table;

/// Reads DIR/**/new/estimates.json, writes OUT/bench-table.md and
/// OUT/bench-scaling.{svg,png}.
#[derive(Debug, Parser)]
#[command(name = "bench_report")]
struct Args {
    /// criterion's directory (default: $CARGO_TARGET_DIR/criterion, else target/criterion).
    #[arg(long, value_name = "DIR")]
    criterion: Option<PathBuf>,
    /// Where the table and the figures go.
    #[arg(long, value_name = "DIR", default_value = "plots")]
    out: PathBuf,
}

fn main() -> ExitCode {
    match run(Args::parse()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("bench_report: {e}");
            ExitCode::FAILURE
        }
    }
}

fn run(args: Args) -> Result<(), String> {
    let criterion = args.criterion.unwrap_or_else(|| {
        std::env::var_os("CARGO_TARGET_DIR")
            .map(|d| PathBuf::from(d).join("criterion"))
            .unwrap_or_else(|| PathBuf::from("target/criterion"))
    });
    let results = estimates::load(&criterion)?;
    if results.is_empty() {
        return Err(format!(
            "no criterion estimates under {} (run `cargo bench` first)",
            criterion.display()
        ));
    }
    std::fs::create_dir_all(&args.out).map_err(|e| format!("{}: {e}", args.out.display()))?;
    let fits = scaling::fits(&results);
    let md = table::table(&results, &fits);
    let md_path = args.out.join("bench-table.md");
    std::fs::write(&md_path, md).map_err(|e| format!("{}: {e}", md_path.display()))?;
    println!("wrote {}", md_path.display());
    if fits.is_empty() {
        println!("no recompute/rollover results: no scaling plot");
    } else {
        dirtylimit::sim::plot::init_font()?;
        for ext in ["svg", "png"] {
            let p = args.out.join(format!("bench-scaling.{ext}"));
            scaling::plot(&p, &fits).map_err(|e| format!("{}: {e}", p.display()))?;
            println!("wrote {}", p.display());
        }
    }
    Ok(())
}
