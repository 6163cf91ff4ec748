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
    // (simulator subcommands: plot / simulate / scenarios go here)
    /// Sample the running kernel's per-bdi dirty thresholds beside the model's (root, debugfs).
    Observe(dirtylimit::observe::ObserveArgs),
    /// Bounded experiment on loop devices (and FUSE): the model's error against the kernel.
    Crosscheck(dirtylimit::observe::CrosscheckArgs),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let res = match cli.command {
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
