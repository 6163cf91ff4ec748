//! The `dirtylimit` command line: see `dirtylimit --help`.
use std::process::ExitCode;

use clap::{Parser, Subcommand};

#[derive(Debug, Parser)]
#[command(
    name = "dirtylimit",
    version,
    about = "Linux per-bdi dirty limits: simulator, and a cross-check against the running kernel"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run every built-in scenario under every policy: figures, metrics CSV and table.
    Plot(dirtylimit::sim::cli::PlotArgs),
    /// Run one scenario (built-in name or TOML file); time series CSV to stdout or --csv.
    Simulate(dirtylimit::sim::cli::SimulateArgs),
    /// List the built-in scenarios.
    Scenarios,
    /// Sample the running kernel's per-bdi dirty thresholds beside the model's (root, debugfs).
    Observe(dirtylimit::observe::ObserveArgs),
    /// Bounded experiment on loop devices (and FUSE): the model's error against the kernel.
    Crosscheck(dirtylimit::observe::CrosscheckArgs),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let res = match cli.command {
        Command::Plot(a) => return sim_exit(dirtylimit::sim::cli::run_plot(&a)),
        Command::Simulate(a) => return sim_exit(dirtylimit::sim::cli::run_simulate(&a)),
        Command::Scenarios => return sim_exit(dirtylimit::sim::cli::run_scenarios()),
        Command::Observe(a) => dirtylimit::observe::run_observe(&a).map(|()| ExitCode::SUCCESS),
        Command::Crosscheck(a) => dirtylimit::observe::run_crosscheck(&a),
    };
    match res {
        Ok(code) => code,
        Err(e) => {
            eprintln!("dirtylimit: {e}");
            ExitCode::FAILURE
        }
    }
}

/// Exit status of a simulator command; its error on stderr.
fn sim_exit(res: Result<(), String>) -> ExitCode {
    match res {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("dirtylimit: {e}");
            ExitCode::FAILURE
        }
    }
}
