//! `dirtylimit observe`: the sampling loop, the live table and the CSV record.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::fs::File;
use std::io::{BufWriter, Write as _};
use std::path::PathBuf;
use std::string::String;
use std::time::{Duration, Instant};
use std::vec;
use std::vec::Vec;
use std::{format, println, writeln};

use super::error::{ObserveError, Result};
use super::model::{BdiRow, StepSummary, Tracker, TrackerConfig};
use super::signal;
use super::sysfs::{self, KernelPaths, Sample};
use super::trace::PeriodTrace;
use crate::bdi::Bdi;

/// Options of `dirtylimit observe` (the command line sets them; see `dirtylimit observe --help`).
#[derive(Debug, Clone)]
pub struct ObserveOptions {
    /// Seconds between samples (e.g. 1, 0.5).
    pub interval: Duration,
    /// Stop after this many samples (default: until Ctrl-C).
    pub count: Option<u64>,
    /// Record every sample (one row per bdi) to this CSV file.
    pub csv: Option<PathBuf>,
    /// Show every bdi, also idle ones sitting at the idle floor.
    pub all: bool,
    /// Print nothing per sample (with --csv).
    pub quiet: bool,
    /// Read the kernel files under this directory instead of `/` (a captured tree).
    pub root: Option<PathBuf>,
    /// Model slots: the most bdis the model can track at once.
    pub max_bdis: usize,
    /// Slices each interval's completions are spread over when fed to the model.
    pub slices: u32,
    /// Do not follow the kernel's period boundaries (tracefs); run the model's own 3 s clock.
    pub free_running_periods: bool,
    /// Start the model empty instead of from the kernel's fractions and estimated global
    /// count (see `TrackerConfig::seed_from_kernel`).
    pub no_seed: bool,
}

impl Default for ObserveOptions {
    fn default() -> Self {
        ObserveOptions {
            interval: Duration::from_secs(1),
            count: None,
            csv: None,
            all: false,
            quiet: false,
            root: None,
            max_bdis: 256,
            slices: 32,
            free_running_periods: false,
            no_seed: false,
        }
    }
}

/// What the per-sample callback tells the loop.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flow {
    /// Take the next sample.
    Continue,
    /// End the loop.
    Stop,
}

/// How the model's period clock is driven.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Periods {
    /// Follow the kernel's `writeout_period()` runs seen through tracefs; fall back to
    /// [`Periods::FreeRunning`] (with a note on stderr) when tracing is unavailable.
    FollowKernel,
    /// The model's own 3 s clock, armed at the first completion it sees.
    FreeRunning,
}

/// Samples `paths` every `interval`, feeds the [`Tracker`], and hands every step to `on_step`
/// until it returns [`Flow::Stop`], `count` samples were taken, or a signal arrives
/// (`Err(Interrupted)`). Returns whether the kernel's period boundaries were followed.
pub fn sample_loop<F>(
    paths: &KernelPaths,
    interval: Duration,
    count: Option<u64>,
    max_bdis: usize,
    tracker_cfg: TrackerConfig,
    periods: Periods,
    mut on_step: F,
) -> Result<bool>
where
    F: FnMut(&Sample, &[BdiRow], &StepSummary) -> Result<Flow>,
{
    let mut linux_slots = vec![Bdi::EMPTY; max_bdis.max(1)];
    let mut redistribute_slots = vec![Bdi::EMPTY; max_bdis.max(1)];
    let mut tracker = Tracker::new(&mut linux_slots, &mut redistribute_slots, tracker_cfg);
    let start = Instant::now();
    let mut ptrace = None;
    if periods == Periods::FollowKernel && paths.is_host() {
        match PeriodTrace::start(start) {
            Ok(t) => {
                ptrace = Some(t);
                tracker.follow_kernel_periods();
            }
            Err(e) => std::eprintln!(
                "note: cannot see the kernel's period boundaries ({e}); the model's period clock runs free (unknown phase)"
            ),
        }
    }
    let followed = ptrace.is_some();
    let mut k: u64 = 0;
    loop {
        signal::check()?;
        let sample = sysfs::read_sample(paths, start.elapsed())?;
        let bounds = match ptrace.as_mut() {
            Some(t) => t.poll()?,
            None => Vec::new(),
        };
        let (rows, summary) = tracker.step_with_boundaries(&sample, &bounds)?;
        k += 1;
        if on_step(&sample, &rows, &summary)? == Flow::Stop {
            break;
        }
        if count.is_some_and(|c| k >= c) {
            break;
        }
        let next = start + interval.saturating_mul(u32::try_from(k).unwrap_or(u32::MAX));
        signal::sleep(next.saturating_duration_since(Instant::now()))?;
    }
    if let Some(mut t) = ptrace {
        t.stop()?;
    }
    Ok(followed)
}

/// Labels of bdis (device names), looked up once.
#[derive(Debug, Default)]
pub struct Labels {
    map: BTreeMap<String, String>,
}

impl Labels {
    /// The label of `bdi` (its device name, read once).
    pub fn get(&mut self, paths: &KernelPaths, bdi: &str) -> String {
        self.map
            .entry(bdi.into())
            .or_insert_with(|| sysfs::describe_bdi(paths, bdi))
            .clone()
    }

    /// Names `bdi` `label` in the CSV.
    pub fn set(&mut self, bdi: &str, label: &str) {
        self.map.insert(bdi.into(), label.into());
    }
}

/// The CSV record: one row per bdi per sample.
pub struct CsvRecord {
    out: BufWriter<File>,
    path: PathBuf,
}

/// The header of the CSV `observe --csv` and `crosscheck --csv` write.
pub const CSV_HEADER: &str =
    "t_s,bdi,device,written_kb,min_ratio_fine,max_ratio_fine,strict_limit,\
dirty_thresh_kb,dirty_kb,kernel_kb,linux_kb,linux_lo_kb,linux_hi_kb,redistribute_kb,rel_err,\
fraction_ppm,active,wb_count,unused_kernel,unused_linux,unused_redistribute,phase,writer_mib_s,kernel_period_s,held_kb,write_bandwidth_kbps";

fn kb(pages: u64) -> u64 {
    pages.saturating_mul(4)
}

fn opt(v: Option<f64>) -> String {
    v.map(|x| format!("{x:.6}")).unwrap_or_default()
}

impl CsvRecord {
    /// Creates the CSV file at `path` with its header.
    pub fn create(path: &std::path::Path) -> Result<Self> {
        let f = File::create(path).map_err(|e| ObserveError::io_path("creating", path, e))?;
        let mut out = BufWriter::new(f);
        writeln!(out, "{CSV_HEADER}").map_err(|e| ObserveError::io_path("writing", path, e))?;
        Ok(CsvRecord {
            out,
            path: path.into(),
        })
    }

    /// Writes one row per bdi of a sample. `writer_rate(bdi)`: the rate
    /// (MiB/s, 0 = as fast as the kernel lets it) the experiment's writer on
    /// that bdi was started at, `None` without one (column `writer_mib_s`,
    /// empty for `observe`).
    #[allow(clippy::too_many_arguments)]
    pub fn write_step(
        &mut self,
        t: Duration,
        rows: &[BdiRow],
        sum: &StepSummary,
        labels: &mut Labels,
        paths: &KernelPaths,
        phase: &str,
        writer_rate: impl Fn(&str) -> Option<u64>,
    ) -> Result<()> {
        for r in rows {
            let label = labels.get(paths, &r.name);
            writeln!(
                self.out,
                "{:.3},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{}",
                t.as_secs_f64(),
                r.name,
                label,
                kb(r.written),
                r.min_ratio_fine,
                r.max_ratio_fine,
                u8::from(r.strict_limit),
                kb(r.thresh),
                kb(r.dirty),
                kb(r.kernel),
                kb(r.linux),
                kb(r.linux_lo),
                kb(r.linux_hi),
                kb(r.redistribute),
                opt(r.rel_err()),
                r.fraction.ppm(),
                u8::from(r.active()),
                r.wb_count.map(|c| format!("{c}")).unwrap_or_default(),
                opt(sum.unused_kernel),
                opt(sum.unused_linux),
                opt(sum.unused_redistribute),
                phase,
                writer_rate(&r.name)
                    .map(|m| format!("{m}"))
                    .unwrap_or_default(),
                sum.kernel_period_s
                    .map(|b| format!("{b:.3}"))
                    .unwrap_or_default(),
                kb(r.held),
                r.write_bandwidth_kbps,
            )
            .map_err(|e| ObserveError::io_path("writing", &self.path, e))?;
        }
        Ok(())
    }

    /// Flushes the file.
    pub fn finish(mut self) -> Result<()> {
        self.out
            .flush()
            .map_err(|e| ObserveError::io_path("writing", &self.path, e))
    }
}

fn mib(pages: u64) -> f64 {
    pages as f64 * 4096.0 / (1024.0 * 1024.0)
}

fn pct(v: Option<f64>) -> String {
    v.map(|x| format!("{:5.1}%", x * 100.0))
        .unwrap_or_else(|| String::from("    -"))
}

/// Formats one step as the live table.
pub fn format_step(
    t: Duration,
    interval: Duration,
    rows: &[BdiRow],
    sum: &StepSummary,
    all: bool,
    labels: &mut Labels,
    paths: &KernelPaths,
) -> String {
    let mut s = String::new();
    let dirty = rows.first().map(|r| r.dirty).unwrap_or(0);
    let _ = writeln!(
        s,
        "t={:7.1}s  DirtyThresh {:8.1} MiB  dirty {:8.1} MiB  unused share (active bdis): kernel {}  model {}  redistribute {}",
        t.as_secs_f64(),
        mib(sum.thresh),
        mib(dirty),
        pct(sum.unused_kernel),
        pct(sum.unused_linux),
        pct(sum.unused_redistribute),
    );
    let _ = writeln!(
        s,
        "  {:<8} {:<16} {:>10} {:>7} {:>6} {:>11} {:>11} {:>7} {:>11} {:>7}",
        "bdi",
        "device",
        "written/s",
        "max%",
        "strict",
        "kernel MiB",
        "model MiB",
        "error",
        "redist MiB",
        "frac%"
    );
    let secs = interval.as_secs_f64().max(1e-3);
    let mut hidden = 0;
    for r in rows {
        if !all && !r.active() && r.written == 0 {
            hidden += 1;
            continue;
        }
        let label = labels.get(paths, &r.name);
        let err = r
            .rel_err()
            .map(|e| format!("{:+6.1}%", e * 100.0))
            .unwrap_or_else(|| String::from("     -"));
        let _ = writeln!(
            s,
            "  {:<8} {:<16} {:>6.1}MB/s {:>7.2} {:>6} {:>11.1} {:>11.1} {:>7} {:>11.1} {:>6.1}%",
            r.name,
            truncate(&label, 16),
            kb(r.written) as f64 / 1024.0 / secs,
            r.max_ratio_fine as f64 / 10_000.0,
            if r.strict_limit { "yes" } else { "no" },
            mib(r.kernel),
            mib(r.linux),
            err,
            mib(r.redistribute),
            r.fraction.ppm() as f64 / 10_000.0,
        );
    }
    if hidden > 0 {
        let _ = writeln!(
            s,
            "  ({hidden} idle bdis at the idle floor (DirtyThresh − dirty)/8 not shown; --all shows them)"
        );
    }
    s
}

fn truncate(s: &str, n: usize) -> String {
    if s.chars().count() <= n {
        String::from(s)
    } else {
        let mut t: String = s.chars().take(n.saturating_sub(1)).collect();
        t.push('…');
        t
    }
}

/// Checks that observation can work here: root, debugfs (mounting it if needed), 4 KiB pages.
pub fn preflight(paths: &KernelPaths) -> Result<()> {
    sysfs::ensure_debugfs(paths)?;
    if paths.is_host() {
        match sysfs::host_page_size_kb() {
            Some(4) | None => {}
            Some(other) => {
                return Err(ObserveError::Unavailable(format!(
                    "the kernel uses {other} KiB pages; the model assumes 4 KiB"
                )))
            }
        }
    }
    Ok(())
}

/// `dirtylimit observe`.
pub fn run_observe(args: &ObserveOptions) -> Result<()> {
    let paths = match &args.root {
        Some(r) => KernelPaths::at(r),
        None => KernelPaths::host(),
    };
    preflight(&paths)?;
    signal::install()?;
    let mut csv = match &args.csv {
        Some(p) => Some(CsvRecord::create(p)?),
        None => None,
    };
    let mut labels = Labels::default();
    let mut warned_wb = false;
    let res = sample_loop(
        &paths,
        args.interval,
        args.count,
        args.max_bdis,
        TrackerConfig {
            slices: args.slices,
            seed_from_kernel: !args.no_seed,
            idle_floor: sysfs::kernel_has_idle_floor(&paths),
            ..TrackerConfig::default()
        },
        if args.free_running_periods {
            Periods::FreeRunning
        } else {
            Periods::FollowKernel
        },
        |sample, rows, sum| {
            if let Some(c) = csv.as_mut() {
                c.write_step(sample.t, rows, sum, &mut labels, &paths, "", |_| None)?;
            }
            if !warned_wb {
                if let Some(r) = rows.iter().find(|r| r.wb_count.is_some_and(|c| c > 1)) {
                    std::eprintln!(
                        "note: bdi {} has {} bdi_writebacks (cgroup writeback): the kernel sums a threshold per wb, the model has one per bdi",
                        r.name,
                        r.wb_count.unwrap_or(0)
                    );
                    warned_wb = true;
                }
            }
            if !args.quiet {
                println!(
                    "{}",
                    format_step(
                        sample.t,
                        args.interval,
                        rows,
                        sum,
                        args.all,
                        &mut labels,
                        &paths
                    )
                );
            }
            Ok(Flow::Continue)
        },
    );
    if let Some(c) = csv {
        c.finish()?;
    }
    match res {
        Err(ObserveError::Interrupted) | Ok(_) => Ok(()),
        Err(e) => Err(e),
    }
}
