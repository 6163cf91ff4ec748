//! The simulator's commands (`plot`, `simulate`, `scenarios`); `main.rs`
//! only parses arguments and dispatches here.

use std::format;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::string::{String, ToString};
use std::time::Instant;
use std::vec::Vec;
use std::{eprintln, println};

use clap::Args;
use indicatif::{ProgressBar, ProgressStyle};

use crate::policy::Policy;

use super::engine::{policy_name, run, POLICIES};
use super::record::{metrics, Metrics, Recording};
use super::report::{table, write_metrics_csv, write_timeseries};
use super::scenario::Scenario;
use super::{all_builtin, builtin, plot, BUILTIN};

/// Finds a scenario: a built-in name, or else a TOML file path.
pub fn load_scenario(arg: &str) -> Result<Scenario, String> {
    if let Some(sc) = builtin(arg) {
        return sc.map_err(|e| e.to_string());
    }
    let path = Path::new(arg);
    if path.exists() {
        return Scenario::from_file(path).map_err(|e| e.to_string());
    }
    Err(format!(
        "{arg:?} is neither a built-in scenario nor a file (built-in: {})",
        BUILTIN
            .iter()
            .map(|(n, _)| *n)
            .collect::<Vec<_>>()
            .join(", ")
    ))
}

fn policies(only: Option<Policy>) -> Vec<Policy> {
    match only {
        Some(p) => std::vec![p],
        None => POLICIES.to_vec(),
    }
}

fn run_all(
    sc: &Scenario,
    ps: &[Policy],
    bar: Option<&ProgressBar>,
) -> Result<(Vec<Recording>, Vec<Metrics>), String> {
    let mut recs = Vec::with_capacity(ps.len());
    let mut ms = Vec::with_capacity(ps.len());
    for &p in ps {
        if let Some(b) = bar {
            b.set_message(format!("{} / {}", sc.name, policy_name(p)));
        }
        let rec = run(sc, p).map_err(|e| e.to_string())?;
        ms.push(metrics(sc, &rec));
        recs.push(rec);
        if let Some(b) = bar {
            b.inc(1);
        }
    }
    Ok((recs, ms))
}

fn write_file(
    path: &Path,
    f: impl FnOnce(&mut dyn Write) -> std::io::Result<()>,
) -> Result<(), String> {
    let file = std::fs::File::create(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let mut w = std::io::BufWriter::new(file);
    f(&mut w)
        .and_then(|()| w.flush())
        .map_err(|e| format!("{}: {e}", path.display()))
}

/// `dirtylimit plot`: every built-in scenario (or those named) under every
/// policy (or the one given); figures, `metrics.csv` and `summary.md` into
/// `out`; the table on stdout.
pub fn plot_cmd(out: &Path, only: &[String], policy: Option<Policy>) -> Result<(), String> {
    let started = Instant::now();
    let font = plot::init_font()?;
    let mut scenarios = Vec::new();
    if only.is_empty() {
        scenarios = all_builtin().map_err(|e| e.to_string())?;
    } else {
        for name in only {
            scenarios.push(load_scenario(name)?);
        }
    }
    std::fs::create_dir_all(out).map_err(|e| format!("{}: {e}", out.display()))?;
    let ps = policies(policy);
    let total = (scenarios.len() * (ps.len() + 1)) as u64;
    let bar = ProgressBar::new(total);
    bar.set_style(
        ProgressStyle::with_template("{spinner} [{elapsed_precise}] {bar:30} {pos}/{len} {msg}")
            .map_err(|e| e.to_string())?,
    );
    let mut all = Vec::new();
    let mut files = 0;
    for sc in &scenarios {
        let (recs, ms) = run_all(sc, &ps, Some(&bar))?;
        bar.set_message(format!("{}: figures", sc.name));
        files += plot::plot_scenario(sc, &recs, &ms, out)?.len();
        bar.inc(1);
        all.extend(ms);
    }
    bar.finish_and_clear();
    let csv = out.join("metrics.csv");
    write_file(&csv, |w| write_metrics_csv(w, &all))?;
    let t = table(&all);
    let md = out.join("summary.md");
    write_file(&md, |w| w.write_all(t.as_bytes()))?;
    println!("{t}");
    eprintln!(
        "{} scenarios × {} policies: {files} figures, {} and {} in {} ({:.1} s; font {})",
        scenarios.len(),
        ps.len(),
        csv.display(),
        md.display(),
        out.display(),
        started.elapsed().as_secs_f64(),
        font.display()
    );
    Ok(())
}

/// `dirtylimit simulate`: one scenario; the time series as CSV to `csv` (or
/// stdout), the metrics table on stderr, and figures + `metrics.csv` into
/// `out` if given.
pub fn simulate_cmd(
    scenario: &str,
    policy: Option<Policy>,
    csv: Option<&Path>,
    out: Option<&Path>,
) -> Result<(), String> {
    let sc = load_scenario(scenario)?;
    let ps = policies(policy);
    let (recs, ms) = run_all(&sc, &ps, None)?;
    match csv {
        Some(path) => write_file(path, |w| write_timeseries(w, &sc, &recs))?,
        None => {
            let stdout = std::io::stdout();
            let mut lock = stdout.lock();
            write_timeseries(&mut lock, &sc, &recs)
                .and_then(|()| lock.flush())
                .map_err(|e| format!("stdout: {e}"))?;
        }
    }
    if let Some(dir) = out {
        plot::plot_scenario(&sc, &recs, &ms, dir)?;
        write_file(&dir.join(format!("{}-metrics.csv", sc.name)), |w| {
            write_metrics_csv(w, &ms)
        })?;
    }
    eprint!("{}", table(&ms));
    Ok(())
}

/// `dirtylimit scenarios`: the built-in scenarios, one per line.
pub fn scenarios_cmd() -> Result<(), String> {
    for sc in all_builtin().map_err(|e| e.to_string())? {
        println!("{:<24} {}", sc.name, sc.title);
    }
    Ok(())
}

fn policy_arg(s: &str) -> Result<Policy, String> {
    super::parse_policy(s)
        .ok_or_else(|| format!("unknown policy {s:?} (clip-only, linux, redistribute, lend)"))
}

/// Arguments of `dirtylimit plot`.
#[derive(Debug, Args)]
pub struct PlotArgs {
    /// Directory for the figures (SVG and PNG), metrics.csv and summary.md.
    #[arg(long, default_value = "plots")]
    pub out: PathBuf,
    /// Only these scenarios (built-in names or TOML files); repeatable. Default: every built-in one.
    #[arg(long = "scenario", value_name = "SCENARIO")]
    pub scenarios: Vec<String>,
    /// Only this policy (clip-only, linux, redistribute, lend). Default: all.
    #[arg(long, value_parser = policy_arg)]
    pub policy: Option<Policy>,
}

/// Arguments of `dirtylimit simulate`.
#[derive(Debug, Args)]
pub struct SimulateArgs {
    /// A built-in scenario name (see `dirtylimit scenarios`) or a TOML scenario file.
    pub scenario: String,
    /// Only this policy (clip-only, linux, redistribute, lend). Default: all.
    #[arg(long, value_parser = policy_arg)]
    pub policy: Option<Policy>,
    /// Write the time series CSV to this file instead of stdout.
    #[arg(long, value_name = "FILE")]
    pub csv: Option<PathBuf>,
    /// Also write this scenario's figures and metrics CSV into this directory.
    #[arg(long, value_name = "DIR")]
    pub out: Option<PathBuf>,
}

/// Runs `dirtylimit plot`.
pub fn run_plot(a: &PlotArgs) -> Result<(), String> {
    plot_cmd(&a.out, &a.scenarios, a.policy)
}

/// Runs `dirtylimit simulate`.
pub fn run_simulate(a: &SimulateArgs) -> Result<(), String> {
    simulate_cmd(&a.scenario, a.policy, a.csv.as_deref(), a.out.as_deref())
}

/// Runs `dirtylimit scenarios`.
pub fn run_scenarios() -> Result<(), String> {
    scenarios_cmd()
}

use std::eprint;
