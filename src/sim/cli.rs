//! The simulator's commands (`plot`, `simulate`, `scenarios`); `main.rs`
//! parses the arguments and calls these.

use std::fmt;
use std::format;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::string::{String, ToString};
use std::time::Instant;
use std::vec::Vec;
use std::{eprint, eprintln, println};

use indicatif::{ProgressBar, ProgressStyle};

use crate::policy::Policy;

use super::engine::{run, SimError};
use super::record::{metrics, Metrics, Recording};
use super::report::{table, write_metrics_csv, write_timeseries};
use super::scenario::Scenario;
use super::scenario_file::ScenarioError;
use super::{all_builtin, builtin, plot, BUILTIN};

/// Why a simulator command failed.
#[derive(Debug)]
pub enum CliError {
    /// A scenario file (or built-in scenario) was rejected.
    Scenario(ScenarioError),
    /// A name that is neither a built-in scenario nor a file.
    UnknownScenario(String),
    /// The core rejected a setting during a run.
    Run(SimError),
    /// A file could not be written (or the output directory made).
    Io {
        /// The file or directory.
        path: PathBuf,
        /// What the OS said.
        source: std::io::Error,
    },
    /// Figures could not be drawn (no font, or a plotting error).
    Plot(String),
}

impl fmt::Display for CliError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CliError::Scenario(e) => write!(f, "{e}"),
            CliError::UnknownScenario(name) => write!(
                f,
                "{name:?} is neither a built-in scenario nor a file (built-in: {})",
                BUILTIN
                    .iter()
                    .map(|(n, _)| *n)
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
            CliError::Run(e) => write!(f, "{e}"),
            CliError::Io { path, source } => write!(f, "{}: {source}", path.display()),
            CliError::Plot(e) => f.write_str(e),
        }
    }
}

impl std::error::Error for CliError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            CliError::Scenario(e) => Some(e),
            CliError::Run(e) => Some(e),
            CliError::Io { source, .. } => Some(source),
            CliError::UnknownScenario(_) | CliError::Plot(_) => None,
        }
    }
}

impl From<ScenarioError> for CliError {
    fn from(e: ScenarioError) -> Self {
        CliError::Scenario(e)
    }
}

impl From<SimError> for CliError {
    fn from(e: SimError) -> Self {
        CliError::Run(e)
    }
}

fn io_err(path: &Path) -> impl FnOnce(std::io::Error) -> CliError + '_ {
    move |source| CliError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// Finds a scenario: a built-in name, or else a TOML file path.
pub fn load_scenario(arg: &str) -> Result<Scenario, CliError> {
    if let Some(sc) = builtin(arg) {
        return Ok(sc?);
    }
    let path = Path::new(arg);
    if path.exists() {
        return Ok(Scenario::from_file(path)?);
    }
    Err(CliError::UnknownScenario(arg.into()))
}

fn policies(only: Option<Policy>) -> Vec<Policy> {
    match only {
        Some(p) => std::vec![p],
        None => Policy::ALL.to_vec(),
    }
}

fn run_all(
    sc: &Scenario,
    ps: &[Policy],
    bar: Option<&ProgressBar>,
) -> Result<(Vec<Recording>, Vec<Metrics>), CliError> {
    let mut recs = Vec::with_capacity(ps.len());
    let mut ms = Vec::with_capacity(ps.len());
    for &p in ps {
        if let Some(b) = bar {
            b.set_message(format!("{} / {}", sc.name, p.name()));
        }
        let rec = run(sc, p)?;
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
) -> Result<(), CliError> {
    let file = std::fs::File::create(path).map_err(io_err(path))?;
    let mut w = std::io::BufWriter::new(file);
    f(&mut w).and_then(|()| w.flush()).map_err(io_err(path))
}

/// `dirtylimit plot`: every built-in scenario (or those named) under every
/// policy (or the one given); figures, `metrics.csv` and `summary.md` into
/// `out`; the table on stdout.
pub fn plot_cmd(out: &Path, only: &[String], policy: Option<Policy>) -> Result<(), CliError> {
    let started = Instant::now();
    let font = plot::init_font().map_err(CliError::Plot)?;
    let mut scenarios = Vec::new();
    if only.is_empty() {
        scenarios = all_builtin()?;
    } else {
        for name in only {
            scenarios.push(load_scenario(name)?);
        }
    }
    std::fs::create_dir_all(out).map_err(io_err(out))?;
    let ps = policies(policy);
    let total = (scenarios.len() * (ps.len() + 1)) as u64;
    let bar = ProgressBar::new(total);
    bar.set_style(
        ProgressStyle::with_template("{spinner} [{elapsed_precise}] {bar:30} {pos}/{len} {msg}")
            .map_err(|e| CliError::Plot(e.to_string()))?,
    );
    let mut all = Vec::new();
    let mut files = 0;
    for sc in &scenarios {
        let (recs, ms) = run_all(sc, &ps, Some(&bar))?;
        bar.set_message(format!("{}: figures", sc.name));
        files += plot::plot_scenario(sc, &recs, &ms, out)
            .map_err(CliError::Plot)?
            .len();
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
) -> Result<(), CliError> {
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
                .map_err(io_err(Path::new("stdout")))?;
        }
    }
    if let Some(dir) = out {
        plot::plot_scenario(&sc, &recs, &ms, dir).map_err(CliError::Plot)?;
        write_file(&dir.join(format!("{}-metrics.csv", sc.name)), |w| {
            write_metrics_csv(w, &ms)
        })?;
    }
    eprint!("{}", table(&ms));
    Ok(())
}

/// `dirtylimit scenarios`: the built-in scenarios, one per line.
pub fn scenarios_cmd() -> Result<(), CliError> {
    for sc in all_builtin()? {
        println!("{:<24} {}", sc.name, sc.title);
    }
    Ok(())
}
