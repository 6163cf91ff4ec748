//! The `dirtylimit` command line: see `dirtylimit --help`. Arguments are
//! parsed here; the commands live in the library (`sim::cli`, `observe`).
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};
use dirtylimit::observe::{CrosscheckOptions, ObserveOptions};
use dirtylimit::policy::Policy;
use dirtylimit::sim::cli as sim_cli;

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
    Plot(PlotArgs),
    /// Run one scenario (built-in name or TOML file); time series CSV to stdout or --csv.
    Simulate(SimulateArgs),
    /// List the built-in scenarios.
    Scenarios,
    /// Sample the running kernel's per-bdi dirty thresholds beside the model's (root, debugfs).
    Observe(ObserveArgs),
    /// Bounded experiment on loop devices (and FUSE): the model's error against the kernel.
    Crosscheck(CrosscheckArgs),
    /// Re-run a `crosscheck --csv` recording in the simulator, side by side with the kernel.
    Replay(ReplayArgs),
}

/// Arguments of `dirtylimit replay`.
#[derive(Debug, Args)]
struct ReplayArgs {
    /// The recording: `dirtylimit crosscheck --csv FILE`.
    csv: PathBuf,
    /// The simulator's policy (the kernel runs `linux`).
    #[arg(long, default_value = "linux", value_parser = policy_arg)]
    policy: Policy,
    /// Seconds at the start of each phase that are not scored.
    #[arg(long, default_value = "9", value_parser = seconds)]
    settle: Duration,
    /// Also draw one figure per phase into this directory (replay-<n>.svg/png).
    #[arg(long, value_name = "DIR")]
    out: Option<PathBuf>,
    /// Also write the scenario the recording was turned into (TOML, for `simulate`).
    #[arg(long, value_name = "FILE")]
    scenario: Option<PathBuf>,
}

/// Arguments of `dirtylimit plot`.
#[derive(Debug, Args)]
struct PlotArgs {
    /// Directory for the figures (SVG and PNG), metrics.csv and summary.md.
    #[arg(long, default_value = "plots")]
    out: PathBuf,
    /// Only these scenarios (built-in names or TOML files); repeatable. Default: every built-in one.
    #[arg(long = "scenario", value_name = "SCENARIO")]
    scenarios: Vec<String>,
    /// Only this policy (clip-only, linux, redistribute, lend). Default: all four.
    #[arg(long, value_parser = policy_arg)]
    policy: Option<Policy>,
}

/// Arguments of `dirtylimit simulate`.
#[derive(Debug, Args)]
struct SimulateArgs {
    /// A built-in scenario name (see `dirtylimit scenarios`) or a TOML scenario file.
    scenario: String,
    /// Only this policy (clip-only, linux, redistribute, lend). Default: all four.
    #[arg(long, value_parser = policy_arg)]
    policy: Option<Policy>,
    /// Write the time series CSV to this file instead of stdout.
    #[arg(long, value_name = "FILE")]
    csv: Option<PathBuf>,
    /// Also write this scenario's figures and metrics CSV into this directory.
    #[arg(long, value_name = "DIR")]
    out: Option<PathBuf>,
}

/// A policy by [`Policy::name`].
fn policy_arg(s: &str) -> Result<Policy, String> {
    Policy::from_name(s).ok_or_else(|| {
        let names: Vec<&str> = Policy::ALL.iter().map(|p| p.name()).collect();
        format!("unknown policy {s:?} ({})", names.join(", "))
    })
}

/// Arguments of `dirtylimit observe`.
#[derive(Debug, Args)]
struct ObserveArgs {
    /// Seconds between samples (e.g. 1, 0.5).
    #[arg(long, default_value = "1", value_parser = seconds)]
    interval: Duration,
    /// Stop after this many samples (default: until Ctrl-C).
    #[arg(long)]
    count: Option<u64>,
    /// Record every sample (one row per bdi) to this CSV file.
    #[arg(long)]
    csv: Option<PathBuf>,
    /// Show every bdi, also idle ones sitting at the idle floor.
    #[arg(long)]
    all: bool,
    /// Print nothing per sample (with --csv).
    #[arg(long)]
    quiet: bool,
    /// Read the kernel files under this directory instead of `/` (a captured tree).
    #[arg(long, value_name = "DIR")]
    root: Option<PathBuf>,
    /// Model slots: the most bdis the model can track at once.
    #[arg(long, default_value_t = 256)]
    max_bdis: usize,
    /// Slices each interval's completions are spread over when fed to the model.
    #[arg(long, default_value_t = 32)]
    slices: u32,
    /// Do not follow the kernel's period boundaries (tracefs); run the model's own 3 s clock.
    #[arg(long)]
    free_running_periods: bool,
    /// Start the model empty instead of from the kernel's fractions and estimated global
    /// count (see `TrackerConfig::seed_from_kernel`).
    #[arg(long)]
    no_seed: bool,
}

impl From<ObserveArgs> for ObserveOptions {
    fn from(a: ObserveArgs) -> Self {
        ObserveOptions {
            interval: a.interval,
            count: a.count,
            csv: a.csv,
            all: a.all,
            quiet: a.quiet,
            root: a.root,
            max_bdis: a.max_bdis,
            slices: a.slices,
            free_running_periods: a.free_running_periods,
            no_seed: a.no_seed,
        }
    }
}

/// Arguments of `dirtylimit crosscheck`.
#[derive(Debug, Args)]
struct CrosscheckArgs {
    /// When the experiment cannot run here (not root, no debugfs, no loop devices or tools),
    /// print why and exit 0 instead of failing.
    #[arg(long)]
    skip_unavailable: bool,
    /// Length of each writing phase, seconds.
    #[arg(long, default_value = "25", value_parser = seconds)]
    phase: Duration,
    /// Seconds at the start of each phase that are not scored (3 periods by default).
    #[arg(long, default_value = "9", value_parser = seconds)]
    settle: Duration,
    /// Seconds of idle baseline before the first writer starts (8 periods: what the kernel
    /// counted before the experiment has aged to 1/256 when writer A starts).
    #[arg(long, default_value = "24", value_parser = seconds)]
    baseline: Duration,
    /// Seconds between samples (completions arrive in bursts; 0.25 s places them in time
    /// well enough for the model to age them as the kernel did).
    #[arg(long, default_value = "0.25", value_parser = seconds)]
    interval: Duration,
    /// Writer A's rate, MiB/s (0: as fast as the kernel lets it).
    #[arg(long, default_value_t = 48)]
    rate_a: u64,
    /// Writer B's rate, MiB/s.
    #[arg(long, default_value_t = 16)]
    rate_b: u64,
    /// The FUSE writer's rate, MiB/s.
    #[arg(long, default_value_t = 16)]
    rate_fuse: u64,
    /// The FUSE server's speed, MiB/s (0: as fast as it can).
    #[arg(long, default_value_t = 0)]
    fuse_server_rate: u64,
    /// The max_ratio (percent) A is lowered to in phase 3.
    #[arg(long, default_value_t = 10)]
    lowered_max_ratio: u64,
    /// vm.dirty_bytes during the run, MiB (0 keeps the host's dirty settings).
    #[arg(long, default_value_t = 256)]
    dirty_mib: u64,
    /// vm.dirty_background_bytes during the run, MiB.
    #[arg(long, default_value_t = 32)]
    background_mib: u64,
    /// Size of each loop image, MiB (sparse); the writers wrap around in half of it.
    #[arg(long, default_value_t = 1024)]
    image_mib: u64,
    /// Leave out the FUSE phase.
    #[arg(long)]
    no_fuse: bool,
    /// Directory for the image files and mount points.
    #[arg(long, default_value = "/var/tmp")]
    dir: PathBuf,
    /// Record every sample to this CSV file.
    #[arg(long)]
    csv: Option<PathBuf>,
    /// Write the result table (Markdown) to this file.
    #[arg(long)]
    table: Option<PathBuf>,
    /// Copy the kernel's files (vmstat, bdi stats, knobs) mid-way through the last phase into
    /// this directory, laid out like the live system (test data for the parsers).
    #[arg(long, value_name = "DIR")]
    capture: Option<PathBuf>,
    /// Median relative error a bdi may have in a phase.
    #[arg(long, default_value_t = 0.05)]
    target: f64,
    /// Exit with status 3 when some phase misses the target.
    #[arg(long)]
    fail_over_target: bool,
    /// Do not follow the kernel's period boundaries (tracefs); run the model's own 3 s clock.
    #[arg(long)]
    free_running_periods: bool,
    /// Start the model empty instead of from the kernel's fractions and estimated global
    /// count (see `TrackerConfig::seed_from_kernel`).
    #[arg(long)]
    no_seed: bool,
    /// Say what is being set up and torn down.
    #[arg(long)]
    verbose: bool,
    /// No per-sample lines.
    #[arg(long)]
    quiet: bool,
}

impl From<CrosscheckArgs> for CrosscheckOptions {
    fn from(a: CrosscheckArgs) -> Self {
        CrosscheckOptions {
            skip_unavailable: a.skip_unavailable,
            phase: a.phase,
            settle: a.settle,
            baseline: a.baseline,
            interval: a.interval,
            rate_a: a.rate_a,
            rate_b: a.rate_b,
            rate_fuse: a.rate_fuse,
            fuse_server_rate: a.fuse_server_rate,
            lowered_max_ratio: a.lowered_max_ratio,
            dirty_mib: a.dirty_mib,
            background_mib: a.background_mib,
            image_mib: a.image_mib,
            no_fuse: a.no_fuse,
            dir: a.dir,
            csv: a.csv,
            table: a.table,
            capture: a.capture,
            target: a.target,
            fail_over_target: a.fail_over_target,
            free_running_periods: a.free_running_periods,
            no_seed: a.no_seed,
            verbose: a.verbose,
            quiet: a.quiet,
        }
    }
}

/// Parses a positive number of seconds (`1`, `0.25`).
fn seconds(s: &str) -> Result<Duration, String> {
    let v: f64 = s
        .trim()
        .parse()
        .map_err(|_| format!("`{s}` is not a number of seconds"))?;
    if !v.is_finite() || v <= 0.0 || v > 86_400.0 {
        return Err(format!(
            "`{s}`: must be a positive number of seconds (at most a day)"
        ));
    }
    Ok(Duration::from_secs_f64(v))
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let res: Result<ExitCode, Box<dyn std::error::Error>> = match cli.command {
        Command::Plot(a) => sim_cli::plot_cmd(&a.out, &a.scenarios, a.policy)
            .map(|()| ExitCode::SUCCESS)
            .map_err(Into::into),
        Command::Simulate(a) => {
            sim_cli::simulate_cmd(&a.scenario, a.policy, a.csv.as_deref(), a.out.as_deref())
                .map(|()| ExitCode::SUCCESS)
                .map_err(Into::into)
        }
        Command::Scenarios => sim_cli::scenarios_cmd()
            .map(|()| ExitCode::SUCCESS)
            .map_err(Into::into),
        Command::Observe(a) => dirtylimit::observe::run_observe(&a.into())
            .map(|()| ExitCode::SUCCESS)
            .map_err(Into::into),
        Command::Crosscheck(a) => {
            dirtylimit::observe::run_crosscheck(&a.into()).map_err(Into::into)
        }
        Command::Replay(a) => a
            .scenario
            .as_deref()
            .map_or(Ok(()), |path| {
                let toml = dirtylimit::observe::replay::replay_scenario(&a.csv)?;
                std::fs::write(path, toml).map_err(|e| {
                    dirtylimit::observe::error::ObserveError::io_path("writing", path, e)
                })
            })
            .and_then(|()| {
                dirtylimit::observe::replay::replay(
                    &a.csv,
                    a.policy,
                    a.settle.as_secs_f64(),
                    a.out.as_deref(),
                )
            })
            .map(|table| {
                print!("{table}");
                ExitCode::SUCCESS
            })
            .map_err(Into::into),
    };
    match res {
        Ok(code) => code,
        Err(e) => {
            eprintln!("dirtylimit: {e}");
            ExitCode::FAILURE
        }
    }
}
