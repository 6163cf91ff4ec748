//! What a run records (sampled every `sample_ms`) and the metrics computed
//! from it.

use std::string::{String, ToString};
use std::vec::Vec;

use crate::policy::Policy;

use super::scenario::{Scenario, PAGES_PER_MIB};

/// One device at one sample, in pages (rates in pages/s).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct DevSample {
    /// The core's `wb_thresh`.
    pub wb_thresh: u64,
    /// The core's `wb_bg_thresh`.
    pub wb_bg_thresh: u64,
    /// Dirty pages.
    pub dirty: u64,
    /// Pages under writeback.
    pub writeback: u64,
    /// Completed writeback so far.
    pub written: u64,
    /// `avg_write_bandwidth`, the throttling estimate.
    pub bw_est: u64,
    /// The device's real bandwidth.
    pub bw: u64,
}

/// Global state at one sample.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct GlobalSample {
    /// Time (ms).
    pub t_ms: u64,
    /// Dirty threshold `T`.
    pub thresh: u64,
    /// Background threshold.
    pub bg_thresh: u64,
    /// Hard limit `max(T, dirty_limit)`.
    pub hard_limit: u64,
    /// Global dirty pages.
    pub dirty: u64,
    /// Global pages under writeback.
    pub writeback: u64,
    /// `Σ wb_thresh` over all devices.
    pub sum_wb_thresh: u64,
    /// Some writer was throttled in the step starting here.
    pub throttled: bool,
}

/// One writer at one sample.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct WriterSample {
    /// Pages dirtied so far.
    pub dirtied: u64,
    /// Throttled (not free-running) in the step starting here.
    pub throttled: bool,
}

/// The record of one run.
#[derive(Clone, Debug, Default)]
pub struct Recording {
    /// The policy of the run.
    pub policy: Option<Policy>,
    /// Devices per sample.
    pub n_devs: usize,
    /// Writers per sample.
    pub n_writers: usize,
    /// Global samples, in time order.
    pub global: Vec<GlobalSample>,
    /// Device samples, `n_devs` per global sample.
    pub devs: Vec<DevSample>,
    /// Writer samples, `n_writers` per global sample.
    pub writers: Vec<WriterSample>,
    /// Peak global dirty + writeback (every step).
    pub peak_dirty: u64,
    /// Peak of global dirty minus the hard limit (every step; negative when always below).
    pub peak_over_limit: i64,
    /// The most pages all writers dirtied in one step.
    pub max_step_dirtied: u64,
    /// Time-average of `(T − Σ wb_thresh)/T` over the steps in which some
    /// writer was throttled; `None` if none was.
    pub unused_share: Option<f64>,
    /// Time with some writer throttled (ms).
    pub throttled_ms: u64,
    /// Simulated time (ms).
    pub elapsed_ms: u64,
    /// Peak dirty + writeback per device (every step).
    pub peak_pinned: Vec<u64>,
    /// Pages dirtied per writer.
    pub writer_dirtied: Vec<u64>,
}

impl Recording {
    /// An empty recording with room for the whole run.
    pub fn new(sc: &Scenario) -> Self {
        let n = (sc.duration_ms / sc.sample_ms + 1) as usize;
        Recording {
            n_devs: sc.devices.len(),
            n_writers: sc.writers.len(),
            global: Vec::with_capacity(n),
            devs: Vec::with_capacity(n * sc.devices.len()),
            writers: Vec::with_capacity(n * sc.writers.len()),
            peak_over_limit: i64::MIN,
            ..Recording::default()
        }
    }

    /// Number of samples.
    pub fn len(&self) -> usize {
        self.global.len()
    }

    /// Whether nothing was recorded.
    pub fn is_empty(&self) -> bool {
        self.global.is_empty()
    }

    /// Device `d` at sample `k`.
    pub fn dev(&self, k: usize, d: usize) -> &DevSample {
        &self.devs[k * self.n_devs + d]
    }

    /// Writer `w` at sample `k`.
    pub fn writer(&self, k: usize, w: usize) -> &WriterSample {
        &self.writers[k * self.n_writers + w]
    }
}

/// Convergence after one change.
#[derive(Clone, Debug, PartialEq)]
pub struct Convergence {
    /// When the change happened (ms).
    pub at_ms: u64,
    /// Until the next change or the end (ms).
    pub until_ms: u64,
    /// What changed.
    pub label: String,
    /// Seconds until every device's `wb_thresh` stayed within 5% of its new
    /// steady value; `None`: some device never settled before the next change.
    pub secs: Option<f64>,
    /// The device that settled last (or did not settle).
    pub slowest: String,
}

/// The metrics of one run.
#[derive(Clone, Debug, PartialEq)]
pub struct Metrics {
    /// Scenario name.
    pub scenario: String,
    /// Policy.
    pub policy: Policy,
    /// One entry per change point.
    pub convergence: Vec<Convergence>,
    /// See [`Recording::unused_share`].
    pub unused_share: Option<f64>,
    /// Seconds with some writer throttled.
    pub throttled_s: f64,
    /// Average dirtying rate of each writer over its active time (MiB/s).
    pub writer_mib_s: Vec<(String, f64)>,
    /// All writers' pages over the whole run (MiB/s).
    pub total_mib_s: f64,
    /// Peak dirty + writeback per device (MiB).
    pub peak_pinned_mib: Vec<(String, f64)>,
    /// Peak global dirty + writeback (MiB).
    pub peak_dirty_mib: f64,
    /// The dirty threshold `T` (MiB).
    pub thresh_mib: f64,
    /// Peak of global dirty minus the hard limit (MiB; ≤ 0 when never above).
    pub peak_over_limit_mib: f64,
}

/// Tolerance of the convergence test: 5% of the steady value...
pub const CONVERGENCE_REL: f64 = 0.05;
/// ...but at least this share of `T` (a steady value near 0 would otherwise
/// demand an exact match).
pub const CONVERGENCE_ABS_OF_T: f64 = 0.001;
/// The steady value after a change is the mean over this last share of the
/// interval up to the next change.
pub const STEADY_TAIL: f64 = 0.2;

fn mib(pages: u64) -> f64 {
    pages as f64 / PAGES_PER_MIB as f64
}

/// Computes the metrics of a run of `sc`.
pub fn metrics(sc: &Scenario, rec: &Recording) -> Metrics {
    let policy = rec.policy.unwrap_or(Policy::Redistribute);
    let thresh = rec.global.first().map_or(0, |g| g.thresh);
    let points = sc.change_points();
    let mut convergence = Vec::with_capacity(points.len());
    for (i, &a) in points.iter().enumerate() {
        let b = points.get(i + 1).copied().unwrap_or(sc.duration_ms);
        convergence.push(converge(sc, rec, a, b, thresh));
    }
    let writer_mib_s = sc
        .writers
        .iter()
        .zip(&rec.writer_dirtied)
        .map(|(w, &p)| {
            let end = w.stop_ms.unwrap_or(u64::MAX).min(rec.elapsed_ms);
            let active = end.saturating_sub(w.start_ms) as f64 / 1000.0;
            let r = if active > 0.0 { mib(p) / active } else { 0.0 };
            (w.name.clone(), r)
        })
        .collect();
    let total: u64 = rec.writer_dirtied.iter().sum();
    let secs = rec.elapsed_ms as f64 / 1000.0;
    Metrics {
        scenario: sc.name.clone(),
        policy,
        convergence,
        unused_share: rec.unused_share,
        throttled_s: rec.throttled_ms as f64 / 1000.0,
        writer_mib_s,
        total_mib_s: if secs > 0.0 { mib(total) / secs } else { 0.0 },
        peak_pinned_mib: sc
            .devices
            .iter()
            .zip(&rec.peak_pinned)
            .map(|(d, &p)| (d.name.clone(), mib(p)))
            .collect(),
        peak_dirty_mib: mib(rec.peak_dirty),
        thresh_mib: mib(thresh),
        peak_over_limit_mib: rec.peak_over_limit as f64 / PAGES_PER_MIB as f64,
    }
}

fn converge(sc: &Scenario, rec: &Recording, a: u64, b: u64, thresh: u64) -> Convergence {
    let s = sc.sample_ms;
    let ia = a.div_ceil(s) as usize;
    let ib = (b.div_ceil(s) as usize).min(rec.len());
    let label = sc.change_label(a);
    let mut worst: Option<f64> = Some(0.0);
    let mut slowest = String::new();
    if ia >= ib {
        return Convergence {
            at_ms: a,
            until_ms: b,
            label,
            secs: None,
            slowest,
        };
    }
    let n = ib - ia;
    let tail = ((n as f64 * STEADY_TAIL).ceil() as usize).clamp(1, n);
    let abs_tol = thresh as f64 * CONVERGENCE_ABS_OF_T;
    for (d, spec) in sc.devices.iter().enumerate() {
        let steady = (ib - tail..ib)
            .map(|k| rec.dev(k, d).wb_thresh as f64)
            .sum::<f64>()
            / tail as f64;
        let tol = (steady * CONVERGENCE_REL).max(abs_tol);
        let last_out = (ia..ib)
            .rev()
            .find(|&k| (rec.dev(k, d).wb_thresh as f64 - steady).abs() > tol);
        let secs = match last_out {
            None => Some(0.0),
            Some(k) if k + 1 == ib => None,
            Some(k) => Some(((k + 1) as u64 * s).saturating_sub(a) as f64 / 1000.0),
        };
        let worse = match (secs, worst) {
            (_, None) => false,
            (None, Some(_)) => true,
            (Some(x), Some(y)) => x > y,
        };
        if worse || slowest.is_empty() {
            if worse {
                worst = secs;
            }
            slowest = spec.name.to_string();
        }
    }
    Convergence {
        at_ms: a,
        until_ms: b,
        label,
        secs: worst,
        slowest,
    }
}
