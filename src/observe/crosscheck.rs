//! `dirtylimit crosscheck`: a bounded experiment that holds the `Linux` model against the
//! running kernel.
//!
//! Two ext4 filesystems on loop devices (`losetup --direct-io=on`, so the image files on the
//! host disk are written with O_DIRECT and do not add page cache of their own), and, when
//! `/dev/fuse` is usable, a FUSE mount served by [`super::fusefs`]. Writer threads of this
//! process dirty pages at fixed rates in phases:
//!
//! 0. `idle`: nothing (a baseline, not scored). Its default, 24 s, is 8 periods: the
//!    completions the kernel counted before the experiment (other processes' writes, the
//!    file systems' creation) have aged to 1/256 of what they were when writer A starts, so
//!    A's share grows from an empty history, as in the simulator's replay;
//! 1. `A alone`: writer A;
//! 2. `A+B`: writer B starts beside A;
//! 3. `A max_ratio→N%`: A's `max_ratio` is lowered while both keep writing;
//! 4. `B+FUSE`: A stops, a writer on the FUSE mount starts beside B.
//!
//! The phases are data ([`phases`]); `run_phase` applies one as it begins.
//!
//! `vm.dirty_bytes`/`vm.dirty_background_bytes` are lowered for the run (default 256/32 MiB) so
//! that background writeback runs continuously and completions follow the writers' rates
//! instead of the 30 s expiry; they are restored at the end. Everything is recorded with the
//! `observe` sampler; per phase, after a settling time, the model's median relative error
//! against `BdiDirtyThresh` is reported per bdi, with the kernel's unused share beside the
//! model's and the `Redistribute` counterfactual's.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::fs;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::string::String;
use std::time::Duration;
use std::vec::Vec;
use std::{eprintln, format, print, println, vec, writeln};

use super::error::{ObserveError, Result};
use super::lab::{self, Lab};
use super::model::{BdiRow, StepSummary, TrackerConfig};
use super::run::{preflight, sample_loop, CsvRecord, Flow, Labels, Periods};
use super::signal;
use super::sysfs::{self, KernelPaths};

const MIB: u64 = 1 << 20;

/// Options of `dirtylimit crosscheck` (the command line sets them; see `dirtylimit crosscheck --help`).
#[derive(Debug, Clone)]
pub struct CrosscheckOptions {
    /// When the experiment cannot run here (not root, no debugfs, no loop devices or tools),
    /// print why and exit 0 instead of failing.
    pub skip_unavailable: bool,
    /// Length of each writing phase, seconds.
    pub phase: Duration,
    /// Seconds at the start of each phase that are not scored (3 periods by default).
    pub settle: Duration,
    /// Seconds of idle baseline before the first writer starts.
    pub baseline: Duration,
    /// Seconds between samples (completions arrive in bursts; 0.25 s places them in time
    /// well enough for the model to age them as the kernel did).
    pub interval: Duration,
    /// Writer A's rate, MiB/s (0: as fast as the kernel lets it).
    pub rate_a: u64,
    /// Writer B's rate, MiB/s.
    pub rate_b: u64,
    /// The FUSE writer's rate, MiB/s.
    pub rate_fuse: u64,
    /// The FUSE server's speed, MiB/s (0: as fast as it can).
    pub fuse_server_rate: u64,
    /// The max_ratio (percent) A is lowered to in phase 3.
    pub lowered_max_ratio: u64,
    /// vm.dirty_bytes during the run, MiB (0 keeps the host's dirty settings).
    pub dirty_mib: u64,
    /// vm.dirty_background_bytes during the run, MiB.
    pub background_mib: u64,
    /// Size of each loop image, MiB (sparse); the writers wrap around in half of it.
    pub image_mib: u64,
    /// Leave out the FUSE phase.
    pub no_fuse: bool,
    /// Directory for the image files and mount points.
    pub dir: PathBuf,
    /// Record every sample to this CSV file.
    pub csv: Option<PathBuf>,
    /// Write the result table (Markdown) to this file.
    pub table: Option<PathBuf>,
    /// Copy the kernel's files (vmstat, bdi stats, knobs) mid-way through the last phase into
    /// this directory, laid out like the live system (test data for the parsers).
    pub capture: Option<PathBuf>,
    /// Median relative error a bdi may have in a phase.
    pub target: f64,
    /// Exit with status 3 when some phase misses the target.
    pub fail_over_target: bool,
    /// Do not follow the kernel's period boundaries (tracefs); run the model's own 3 s clock.
    pub free_running_periods: bool,
    /// Start the model empty instead of from the kernel's fractions and estimated global
    /// count (see `TrackerConfig::seed_from_kernel`).
    pub no_seed: bool,
    /// Say what is being set up and torn down.
    pub verbose: bool,
    /// No per-sample lines.
    pub quiet: bool,
}

/// What the environment offers.
#[derive(Debug, Clone)]
pub struct Environment {
    /// Whether the FUSE phase can run here, or why not.
    pub fuse: Result<(), String>,
}

fn unavailable(why: impl Into<String>) -> ObserveError {
    ObserveError::Unavailable(why.into())
}

/// Checks that the experiment can run; `Err(Unavailable)` says why not.
pub fn check_environment(args: &CrosscheckOptions) -> Result<Environment> {
    match sysfs::effective_uid() {
        Ok(0) => {}
        Ok(uid) => return Err(unavailable(format!("not root (effective uid {uid})"))),
        Err(e) => return Err(unavailable(format!("cannot tell the uid: {e}"))),
    }
    match preflight(&KernelPaths::host()) {
        Ok(()) => {}
        Err(ObserveError::Unavailable(w)) => return Err(unavailable(w)),
        Err(e) => return Err(unavailable(format!("{e}"))),
    }
    for tool in ["losetup", "mkfs.ext4", "mount", "umount"] {
        if !lab::have_program(tool) {
            return Err(unavailable(format!("`{tool}` is not installed")));
        }
    }
    if !Path::new("/dev/loop-control").exists() {
        return Err(unavailable("no loop devices (/dev/loop-control missing)"));
    }
    if let Err(e) = lab::run_cmd("losetup", ["--find"]) {
        return Err(unavailable(format!("no free loop device: {e}")));
    }
    let filesystems = fs::read_to_string("/proc/filesystems").unwrap_or_default();
    let has_fs = |name: &str, list: &str| {
        list.lines()
            .any(|l| l.split_whitespace().last() == Some(name))
    };
    if !has_fs("ext4", &filesystems) {
        let _ = lab::run_cmd("modprobe", ["ext4"]);
        let again = fs::read_to_string("/proc/filesystems").unwrap_or_default();
        if !has_fs("ext4", &again) {
            return Err(unavailable("the kernel has no ext4"));
        }
    }
    if args.dirty_mib > 0 {
        for n in ["dirty_bytes", "dirty_background_bytes"] {
            let p = Path::new("/proc/sys/vm").join(n);
            if let Err(e) = fs::OpenOptions::new().write(true).open(&p) {
                return Err(unavailable(format!(
                    "cannot change {} ({e}); --dirty-mib 0 keeps the host's settings",
                    p.display()
                )));
            }
        }
    }
    if !args.dir.is_dir() {
        return Err(ObserveError::Usage(format!(
            "--dir {}: not a directory",
            args.dir.display()
        )));
    }
    let fuse = if args.no_fuse {
        Err(String::from("--no-fuse"))
    } else if !has_fs("fuse", &filesystems) && lab::run_cmd("modprobe", ["fuse"]).is_err() {
        Err(String::from("the kernel has no fuse filesystem"))
    } else {
        match fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open("/dev/fuse")
        {
            Ok(_) => Ok(()),
            Err(e) => Err(format!("/dev/fuse: {e}")),
        }
    };
    Ok(Environment { fuse })
}

/// One scored observation of one bdi.
#[derive(Debug, Clone, PartialEq)]
pub struct Obs {
    /// Index of the phase (0 = idle).
    pub phase: usize,
    /// Seconds since the phase began.
    pub since: f64,
    /// The bdi (`major:minor`).
    pub bdi: String,
    /// Completions fed to the model in this sample (pages).
    pub written: u64,
    /// `DirtyThresh` this bdi's stats reported (pages).
    pub thresh: u64,
    /// The kernel's `BdiDirtyThresh` (pages).
    pub kernel: u64,
    /// The `Linux` model's threshold (pages).
    pub linux: u64,
    /// The `Redistribute` counterfactual's threshold (pages).
    pub redistribute: u64,
    /// Relative error of the model against the kernel, when the kernel's is not 0.
    pub rel_err: Option<f64>,
    /// Relative error outside the band the dirty count's uncertainty allows.
    pub band_err: Option<f64>,
    /// The bdi completed writeback in the last two periods.
    pub active: bool,
}

/// Median of the values (sorted in place); `None` if empty.
pub fn median(v: &mut [f64]) -> Option<f64> {
    quantile(v, 0.5)
}

/// The `q` quantile (nearest rank, `0 ≤ q ≤ 1`) of the values (sorted in place).
pub fn quantile(v: &mut [f64], q: f64) -> Option<f64> {
    if v.is_empty() {
        return None;
    }
    v.sort_by(|a, b| a.total_cmp(b));
    let n = v.len();
    if (q - 0.5).abs() < f64::EPSILON && n % 2 == 0 {
        let hi = n / 2;
        return Some((v[hi - 1] + v[hi]) / 2.0);
    }
    let idx = ((q * n as f64).ceil() as usize).clamp(1, n) - 1;
    Some(v[idx])
}

/// A bdi's result in one phase.
#[derive(Debug, Clone, PartialEq)]
pub struct BdiResult {
    /// Index of the phase.
    pub phase: usize,
    /// The bdi (`major:minor`).
    pub bdi: String,
    /// How the table names it (`A loop0`, `FUSE sink`, `other vda`).
    pub role: String,
    /// Scored samples.
    pub samples: usize,
    /// Completions, MiB/s, over the scored samples.
    pub written_mibs: f64,
    /// Median kernel `BdiDirtyThresh` (MiB).
    pub kernel_mib: f64,
    /// Median model threshold (MiB).
    pub model_mib: f64,
    /// Median counterfactual threshold (MiB).
    pub redistribute_mib: f64,
    /// Median relative error of the model.
    pub median_err: Option<f64>,
    /// 90th percentile of the relative error.
    pub p90_err: Option<f64>,
    /// Median error outside the dirty-count band.
    pub median_band_err: Option<f64>,
}

/// A phase's unused share `1 − Σ wb_thresh / DirtyThresh` over the bdis that completed
/// writeback within the last two periods (the experiment's writers and any other bdi that was
/// writing): mean and maximum over all the phase's samples (the transient after a change is
/// the point), for the kernel, the model and the counterfactual.
#[derive(Debug, Clone, PartialEq)]
pub struct PhaseResult {
    /// Index of the phase.
    pub phase: usize,
    /// Its name.
    pub name: String,
    /// Bdis counted in at least half of the phase's samples.
    pub counted: Vec<String>,
    /// Samples in the phase.
    pub samples: usize,
    /// The kernel's mean unused share.
    pub kernel_mean: Option<f64>,
    /// The kernel's largest unused share.
    pub kernel_max: Option<f64>,
    /// The model's mean unused share.
    pub linux_mean: Option<f64>,
    /// The counterfactual's mean unused share.
    pub redistribute_mean: Option<f64>,
    /// The counterfactual's largest unused share.
    pub redistribute_max: Option<f64>,
}

/// Per sample of phase `phase`: `1 − Σ_{active b} value(b) / thresh` for kernel, model and
/// counterfactual. Samples without an active bdi are skipped.
pub fn unused_series(obs: &[Obs], phase: usize) -> Vec<(f64, f64, f64)> {
    let mut by_t: BTreeMap<u64, Vec<&Obs>> = BTreeMap::new();
    for o in obs.iter().filter(|o| o.phase == phase) {
        by_t.entry((o.since * 1000.0).round() as u64)
            .or_default()
            .push(o);
    }
    let mut out = Vec::new();
    for rows in by_t.values() {
        let sel: Vec<&&Obs> = rows.iter().filter(|o| o.active).collect();
        let t = rows.iter().map(|o| o.thresh).max().unwrap_or(0);
        if sel.is_empty() || t == 0 {
            continue;
        }
        let u =
            |f: &dyn Fn(&Obs) -> u64| 1.0 - sel.iter().map(|o| f(o) as f64).sum::<f64>() / t as f64;
        out.push((u(&|o| o.kernel), u(&|o| o.linux), u(&|o| o.redistribute)));
    }
    out
}

/// Scores the observations: per phase and bdi (those in `roles`), samples with
/// `since >= settle` only.
pub fn score(
    obs: &[Obs],
    phases: &[String],
    roles: &[(String, String)],
    settle: f64,
    interval: f64,
) -> (Vec<BdiResult>, Vec<PhaseResult>) {
    let mib = |p: f64| p * 4096.0 / MIB as f64;
    let mut out = Vec::new();
    let mut pout = Vec::new();
    for (pi, pname) in phases.iter().enumerate() {
        for (bdi, role) in roles {
            let sel: Vec<&Obs> = obs
                .iter()
                .filter(|o| o.phase == pi && &o.bdi == bdi && o.since >= settle)
                .collect();
            if sel.is_empty() {
                continue;
            }
            let mut errs: Vec<f64> = sel.iter().filter_map(|o| o.rel_err.map(f64::abs)).collect();
            let mut bands: Vec<f64> = sel.iter().filter_map(|o| o.band_err).collect();
            let mut k: Vec<f64> = sel.iter().map(|o| o.kernel as f64).collect();
            let mut m: Vec<f64> = sel.iter().map(|o| o.linux as f64).collect();
            let mut r: Vec<f64> = sel.iter().map(|o| o.redistribute as f64).collect();
            let written: u64 = sel.iter().map(|o| o.written).sum();
            out.push(BdiResult {
                phase: pi,
                bdi: bdi.clone(),
                role: role.clone(),
                samples: sel.len(),
                written_mibs: mib(written as f64) / (sel.len() as f64 * interval.max(1e-3)),
                kernel_mib: median(&mut k).map(mib).unwrap_or(0.0),
                model_mib: median(&mut m).map(mib).unwrap_or(0.0),
                redistribute_mib: median(&mut r).map(mib).unwrap_or(0.0),
                median_err: median(&mut errs.clone()),
                p90_err: quantile(&mut errs, 0.9),
                median_band_err: median(&mut bands),
            });
        }
        let series = unused_series(obs, pi);
        let mut counts: BTreeMap<&str, usize> = BTreeMap::new();
        let mut n_samples = BTreeMap::new();
        for o in obs.iter().filter(|o| o.phase == pi) {
            n_samples.insert((o.since * 1000.0).round() as u64, ());
            if o.active {
                *counts.entry(o.bdi.as_str()).or_default() += 1;
            }
        }
        let half = n_samples.len().div_ceil(2).max(1);
        let counted: Vec<String> = counts
            .iter()
            .filter(|(_, c)| **c >= half)
            .map(|(b, _)| String::from(*b))
            .collect();
        let mean = |f: &dyn Fn(&(f64, f64, f64)) -> f64| {
            (!series.is_empty()).then(|| series.iter().map(f).sum::<f64>() / series.len() as f64)
        };
        let max = |f: &dyn Fn(&(f64, f64, f64)) -> f64| series.iter().map(f).reduce(f64::max);
        pout.push(PhaseResult {
            phase: pi,
            name: pname.clone(),
            counted,
            samples: series.len(),
            kernel_mean: mean(&|x| x.0),
            kernel_max: max(&|x| x.0),
            linux_mean: mean(&|x| x.1),
            redistribute_mean: mean(&|x| x.2),
            redistribute_max: max(&|x| x.2),
        });
    }
    (out, pout)
}

fn pct(v: Option<f64>) -> String {
    v.map(|x| format!("{:.1}%", x * 100.0))
        .unwrap_or_else(|| String::from("–"))
}

fn pct2(v: Option<f64>) -> String {
    v.map(|x| format!("{:.2}%", x * 100.0))
        .unwrap_or_else(|| String::from("–"))
}

/// The result as a Markdown table.
pub fn markdown(results: &[BdiResult], phases: &[PhaseResult], settle: f64, target: f64) -> String {
    let mut s = String::new();
    let _ = writeln!(
        s,
        "| phase | bdi | written MiB/s | kernel BdiDirtyThresh MiB | model MiB | median \\|err\\| | p90 \\|err\\| | median err outside dirty band | Redistribute MiB |"
    );
    let _ = writeln!(s, "|---|---|---:|---:|---:|---:|---:|---:|---:|");
    for r in results {
        let pname = phases.get(r.phase).map(|p| p.name.as_str()).unwrap_or("?");
        let mark = match r.median_err {
            Some(e) if e > target => " ✗",
            _ => "",
        };
        let _ = writeln!(
            s,
            "| {} | {} ({}) | {:.1} | {:.1} | {:.1} | {}{} | {} | {} | {:.1} |",
            pname,
            r.role,
            r.bdi,
            r.written_mibs,
            r.kernel_mib,
            r.model_mib,
            pct2(r.median_err),
            mark,
            pct2(r.p90_err),
            pct2(r.median_band_err),
            r.redistribute_mib
        );
    }
    let _ = writeln!(s);
    let _ = writeln!(
        s,
        "| phase | bdis writing (most samples) | samples | kernel unused share: mean (max) | model: mean | Redistribute: mean (max) |"
    );
    let _ = writeln!(s, "|---|---|---:|---:|---:|---:|");
    for p in phases.iter().filter(|p| p.samples > 0) {
        let _ = writeln!(
            s,
            "| {} | {} | {} | {} ({}) | {} | {} ({}) |",
            p.name,
            p.counted.join(", "),
            p.samples,
            pct(p.kernel_mean),
            pct(p.kernel_max),
            pct(p.linux_mean),
            pct(p.redistribute_mean),
            pct(p.redistribute_max)
        );
    }
    let _ = writeln!(
        s,
        "\nErrors: samples from {settle:.0} s after each phase began. Unused share: 1 − Σ wb_thresh / DirtyThresh over the bdis that completed writeback in the last 6 s, over all of the phase's samples (mean and maximum)."
    );
    s
}

/// A device of the experiment, and the writer on it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// Loop device A.
    A,
    /// Loop device B.
    B,
    /// The FUSE mount.
    Fuse,
}

impl Role {
    /// The writer's name in the lab.
    pub fn writer(self) -> &'static str {
        match self {
            Role::A => "A",
            Role::B => "B",
            Role::Fuse => "FUSE",
        }
    }
}

/// What changes when a phase begins.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Change {
    /// A writer starts on its device at a rate (MiB/s).
    Start(Role, u64),
    /// A writer stops.
    Stop(Role),
    /// A device's `max_ratio` (percent) is set.
    MaxRatio(Role, u64),
}

/// One phase of the experiment: its name and what changes as it begins.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Phase {
    /// As tables print it.
    pub name: String,
    /// Applied in order when the phase begins.
    pub changes: Vec<Change>,
}

/// The experiment's phases, in order: `idle` (nothing runs), then each
/// phase of the [module docs](self); `B+FUSE` only `with_fuse`.
pub fn phases(args: &CrosscheckOptions, with_fuse: bool) -> Vec<Phase> {
    let phase = |name: &str, changes: Vec<Change>| Phase {
        name: name.into(),
        changes,
    };
    let mut v = vec![
        phase("idle", vec![]),
        phase("A alone", vec![Change::Start(Role::A, args.rate_a)]),
        phase("A+B", vec![Change::Start(Role::B, args.rate_b)]),
        phase(
            &format!("A max_ratio→{}%", args.lowered_max_ratio),
            vec![Change::MaxRatio(Role::A, args.lowered_max_ratio)],
        ),
    ];
    if with_fuse {
        v.push(phase(
            "B+FUSE",
            vec![
                Change::Stop(Role::A),
                Change::Start(Role::Fuse, args.rate_fuse),
            ],
        ));
    }
    v
}

/// The experiment's devices once set up: where each role's writer writes
/// and which bdi it is.
struct Rig {
    /// Per role: the file its writer writes and its bdi (`None`: no FUSE).
    a: (PathBuf, String),
    b: (PathBuf, String),
    fuse: Option<(PathBuf, String)>,
    /// The loop devices of A and B.
    devices: (String, String),
    /// The scored bdis and their labels.
    roles: Vec<(String, String)>,
    /// Bytes each writer writes before it wraps around.
    file_size: u64,
}

impl Rig {
    /// One line: the devices, their bdis and the writers' rates.
    fn describe(&self, args: &CrosscheckOptions) -> String {
        format!(
            "A = {} (bdi {}) at {} MiB/s, B = {} (bdi {}) at {} MiB/s{}",
            self.devices.0,
            self.a.1,
            args.rate_a,
            self.devices.1,
            self.b.1,
            args.rate_b,
            self.fuse
                .as_ref()
                .map(|(_, b)| format!(", FUSE sink (bdi {b}) at {} MiB/s", args.rate_fuse))
                .unwrap_or_default()
        )
    }

    fn target(&self, role: Role) -> Option<&(PathBuf, String)> {
        match role {
            Role::A => Some(&self.a),
            Role::B => Some(&self.b),
            Role::Fuse => self.fuse.as_ref(),
        }
    }
}

/// Sets the experiment up: two ext4 filesystems on loop devices, the FUSE mount when
/// usable, the vm.dirty_* settings. Returns the rig and the bdis' labels for the CSV.
fn set_up(lab: &mut Lab, args: &CrosscheckOptions, env: &Environment) -> Result<(Rig, Labels)> {
    let image = args.image_mib.max(64) * MIB;
    let file_size = image / 2;
    // Two loop devices with ext4.
    let mut loop_fs = |name: &str| -> Result<(PathBuf, String, String)> {
        let img = lab.image(&format!("{name}.img"), image)?;
        let dev = lab.attach_loop(&img)?;
        lab.mkfs_ext4(&dev)?;
        let dir = lab.subdir(name)?;
        lab.mount(&dev, &dir)?;
        let bdi = lab::bdi_of(&dir)?;
        signal::check()?;
        Ok((dir, dev, bdi))
    };
    let (dir_a, dev_a, bdi_a) = loop_fs("a")?;
    let (dir_b, dev_b, bdi_b) = loop_fs("b")?;
    let mut labels = Labels::default();
    labels.set(&bdi_a, &format!("A {}", dev_a.trim_start_matches("/dev/")));
    labels.set(&bdi_b, &format!("B {}", dev_b.trim_start_matches("/dev/")));
    let mut roles = vec![
        (
            bdi_a.clone(),
            format!("A {}", dev_a.trim_start_matches("/dev/")),
        ),
        (
            bdi_b.clone(),
            format!("B {}", dev_b.trim_start_matches("/dev/")),
        ),
    ];

    // FUSE beside them, when usable.
    let mut fuse: Option<(PathBuf, String)> = None;
    match &env.fuse {
        Ok(()) => {
            let dir = lab.subdir("fuse")?;
            lab.mount_fuse(&dir, args.fuse_server_rate * MIB)?;
            let bdi = lab::bdi_of(&dir)?;
            labels.set(&bdi, "FUSE sink");
            roles.push((bdi.clone(), String::from("FUSE sink")));
            fuse = Some((dir, bdi));
        }
        Err(why) => println!("crosscheck: no FUSE phase: {why}"),
    }
    if args.dirty_mib > 0 {
        lab.set_dirty_bytes(args.dirty_mib * MIB, args.background_mib * MIB)?;
    }
    // Let the setup's writeback (mkfs, journal) finish before the baseline.
    let _ = lab::run_cmd("sync", std::iter::empty::<&str>());

    let rig = Rig {
        a: (dir_a.join("data"), bdi_a),
        b: (dir_b.join("data"), bdi_b),
        fuse: fuse.map(|(dir, bdi)| (dir.join(super::fusefs::DATA_NAME), bdi)),
        devices: (dev_a, dev_b),
        roles,
        file_size,
    };
    Ok((rig, labels))
}

/// Per phase, the rate (MiB/s, 0 = as fast as allowed) of every running
/// writer, by the bdi it writes to.
fn writer_rates(plan: &[Phase], rig: &Rig) -> Vec<BTreeMap<String, u64>> {
    let mut now: BTreeMap<String, u64> = BTreeMap::new();
    let mut v = Vec::with_capacity(plan.len());
    for p in plan {
        for &change in &p.changes {
            match change {
                Change::Start(role, rate) => {
                    if let Some((_, bdi)) = rig.target(role) {
                        now.insert(bdi.clone(), rate);
                    }
                }
                Change::Stop(role) => {
                    if let Some((_, bdi)) = rig.target(role) {
                        now.remove(bdi);
                    }
                }
                Change::MaxRatio(..) => {}
            }
        }
        v.push(now.clone());
    }
    v
}

/// Begins a phase: applies its changes to the lab.
fn run_phase(lab: &mut Lab, rig: &Rig, paths: &KernelPaths, phase: &Phase) -> Result<()> {
    for &change in &phase.changes {
        match change {
            Change::Start(role, rate) => {
                if let Some((file, _)) = rig.target(role) {
                    lab.start_writer(role.writer(), file, rig.file_size, rate * MIB)?;
                }
            }
            Change::Stop(role) => lab.stop_writer(role.writer())?,
            Change::MaxRatio(role, percent) => {
                if let Some((_, bdi)) = rig.target(role) {
                    lab.set_knob(paths, bdi, "max_ratio", percent)?;
                }
            }
        }
    }
    Ok(())
}

/// `dirtylimit crosscheck`. Exit 0 on a completed run (or a skip with
/// `--skip-unavailable`), 3 with `--fail-over-target` when the target is missed.
pub fn run_crosscheck(args: &CrosscheckOptions) -> Result<ExitCode> {
    if args.settle >= args.phase {
        return Err(ObserveError::Usage(String::from(
            "--settle must be shorter than --phase",
        )));
    }
    if !(1..=100).contains(&args.lowered_max_ratio) {
        return Err(ObserveError::Usage(String::from(
            "--lowered-max-ratio must be 1..=100",
        )));
    }
    if args.dirty_mib > 0 && args.background_mib >= args.dirty_mib {
        return Err(ObserveError::Usage(String::from(
            "--background-mib must be below --dirty-mib",
        )));
    }
    let env = match check_environment(args) {
        Ok(env) => env,
        Err(ObserveError::Unavailable(why)) if args.skip_unavailable => {
            println!("crosscheck skipped: {why}");
            return Ok(ExitCode::SUCCESS);
        }
        Err(e) => return Err(e),
    };
    signal::install()?;
    let mut lab = Lab::new(&args.dir, args.verbose)?;
    let res = experiment(&mut lab, args, &env);
    let cleanup_errors = lab.cleanup();
    for e in &cleanup_errors {
        eprintln!("crosscheck: cleanup failed: {e}");
    }
    let (table, met) = res?;
    if !cleanup_errors.is_empty() {
        return Err(ObserveError::Other(format!(
            "the experiment ran, but cleanup failed ({} problems, see above)",
            cleanup_errors.len()
        )));
    }
    print!("{table}");
    if let Some(p) = &args.table {
        fs::write(p, &table).map_err(|e| ObserveError::io_path("writing", p, e))?;
    }
    if met {
        println!(
            "crosscheck: every scored bdi is within {:.0}% median error in every phase",
            args.target * 100.0
        );
        Ok(ExitCode::SUCCESS)
    } else {
        println!(
            "crosscheck: some phase has a median error above {:.0}% (marked ✗)",
            args.target * 100.0
        );
        Ok(if args.fail_over_target {
            ExitCode::from(3)
        } else {
            ExitCode::SUCCESS
        })
    }
}

fn experiment(
    lab: &mut Lab,
    args: &CrosscheckOptions,
    env: &Environment,
) -> Result<(String, bool)> {
    let paths = KernelPaths::host();
    let (rig, mut labels) = set_up(lab, args, env)?;
    let roles = &rig.roles;
    let plan = phases(args, rig.fuse.is_some());
    let phase_names: Vec<String> = plan.iter().map(|p| p.name.clone()).collect();
    let rates = writer_rates(&plan, &rig);
    let n_phases = plan.len();
    let base = args.baseline.as_secs_f64();
    let plen = args.phase.as_secs_f64();
    // Phase i >= 1 begins at base + (i - 1)·plen; the run ends one phase
    // length after the last one began.
    let begins = |i: usize| base + (i - 1) as f64 * plen;
    let end = begins(n_phases);

    let mut csv = match &args.csv {
        Some(p) => Some(CsvRecord::create(p)?),
        None => None,
    };
    let mut obs: Vec<Obs> = Vec::new();
    let mut phase = 0usize;
    let mut phase_start = 0.0f64;
    let mut captured = false;
    println!(
        "crosscheck: {}; {} phases of {:.0} s",
        rig.describe(args),
        n_phases - 1,
        plen
    );

    let res = sample_loop(
        &paths,
        args.interval,
        None,
        256,
        TrackerConfig {
            seed_from_kernel: !args.no_seed,
            idle_floor: sysfs::kernel_has_idle_floor(&paths),
            ..TrackerConfig::default()
        },
        if args.free_running_periods {
            Periods::FreeRunning
        } else {
            Periods::FollowKernel
        },
        |sample, rows: &[BdiRow], sum: &StepSummary| {
            if let Some(e) = lab.writer_error() {
                return Err(ObserveError::Other(e));
            }
            let t = sample.t.as_secs_f64();
            let since = t - phase_start;
            let pname = phase_names.get(phase).cloned().unwrap_or_default();
            if let Some(c) = csv.as_mut() {
                let rates = &rates[phase.min(rates.len() - 1)];
                c.write_step(sample.t, rows, sum, &mut labels, &paths, &pname, |bdi| {
                    rates.get(bdi).copied()
                })?;
            }
            for r in rows {
                obs.push(Obs {
                    phase,
                    since,
                    bdi: r.name.clone(),
                    written: r.written,
                    thresh: r.thresh,
                    kernel: r.kernel,
                    linux: r.linux,
                    redistribute: r.redistribute,
                    rel_err: r.rel_err(),
                    band_err: r.band_err(),
                    active: r.active(),
                });
            }
            if !args.quiet {
                let mut line = format!("[{pname:>14}] t={t:6.1}s");
                for (bdi, role) in roles {
                    if let Some(r) = rows.iter().find(|r| &r.name == bdi) {
                        line.push_str(&format!(
                            "  {}: {:.1}/{:.1} MiB {}",
                            role.split(' ').next().unwrap_or(role),
                            r.kernel as f64 / 256.0,
                            r.linux as f64 / 256.0,
                            r.rel_err()
                                .map(|e| format!("{:+.1}%", e * 100.0))
                                .unwrap_or_default()
                        ));
                    }
                }
                line.push_str(&format!(
                    "  unused k/m/r {}/{}/{}",
                    pct(sum.unused_kernel),
                    pct(sum.unused_linux),
                    pct(sum.unused_redistribute)
                ));
                println!("{line}");
            }
            if let (Some(dir), false) = (&args.capture, captured) {
                if phase + 1 == n_phases && since >= plen / 2.0 {
                    sysfs::capture_tree(&paths, dir)?;
                    captured = true;
                }
            }
            // The phases due by now.
            while phase + 1 < n_phases && t + 1e-9 >= begins(phase + 1) {
                phase += 1;
                phase_start = t;
                run_phase(lab, &rig, &paths, &plan[phase])?;
            }
            if t + 1e-9 >= end {
                return Ok(Flow::Stop);
            }
            Ok(Flow::Continue)
        },
    );
    if let Some(c) = csv {
        c.finish()?;
    }
    let followed = res?;
    println!(
        "crosscheck: model periods {}",
        if followed {
            "followed the kernel's writeout_period() runs (tracefs)"
        } else {
            "ran free (3 s from the first completion; the kernel's phase unknown)"
        }
    );
    if let Some((true, bytes, cached)) = lab.fuse_stats() {
        println!(
            "crosscheck: the FUSE sink received {:.1} MiB in {} writeback requests",
            bytes as f64 / MIB as f64,
            cached
        );
    } else if let Some((false, _, _)) = lab.fuse_stats() {
        println!("crosscheck: the kernel refused FUSE writeback caching: FUSE writes bypass the page cache");
    }
    if let Some(dir) = &args.capture {
        if captured {
            println!("crosscheck: kernel files captured in {}", dir.display());
        }
    }

    let (table, met) = report(&obs, &phase_names, roles, &paths, args);
    let _ = std::io::stdout().flush();
    Ok((table, met))
}

/// Scores the experiment's bdis, plus any other bdi that wrote back during the run, and
/// one aggregate line for the idle bdis at their floor: the Markdown table and whether
/// every experiment bdi met the target in every phase.
fn report(
    obs: &[Obs],
    phase_names: &[String],
    roles: &[(String, String)],
    paths: &KernelPaths,
    args: &CrosscheckOptions,
) -> (String, bool) {
    let roles_map: BTreeMap<String, String> = roles.iter().cloned().collect();
    // Score the experiment's bdis, plus any other bdi that wrote back during the run.
    let mut score_roles = roles.to_vec();
    let mut others: Vec<String> = obs
        .iter()
        .filter(|o| o.written > 0 && !roles_map.contains_key(&o.bdi))
        .map(|o| o.bdi.clone())
        .collect();
    others.sort();
    others.dedup();
    for o in &others {
        score_roles.push((
            o.clone(),
            format!("other {}", sysfs::describe_bdi(paths, o)),
        ));
    }
    let (results, phases) = score(
        obs,
        phase_names,
        &score_roles,
        args.settle.as_secs_f64(),
        args.interval.as_secs_f64(),
    );
    let met = results
        .iter()
        .filter(|r| roles_map.contains_key(&r.bdi) && r.phase > 0)
        .all(|r| r.median_err.is_none_or(|e| e <= args.target));
    let mut table = markdown(&results, &phases, args.settle.as_secs_f64(), args.target);
    // Idle bdis sitting at the idle floor: one aggregate line.
    let mut idle_errs: Vec<f64> = obs
        .iter()
        .filter(|o| !o.active && !roles_map.contains_key(&o.bdi) && !others.contains(&o.bdi))
        .filter_map(|o| o.rel_err.map(f64::abs))
        .collect();
    if let Some(m) = median(&mut idle_errs.clone()) {
        let _ = writeln!(
            table,
            "Idle bdis (fraction 0, at the floor (DirtyThresh − dirty)/8): median |err| {:.2}%, p90 {:.2}% over {} readings.",
            m * 100.0,
            quantile(&mut idle_errs, 0.9).unwrap_or(0.0) * 100.0,
            idle_errs.len()
        );
    }
    (table, met)
}
