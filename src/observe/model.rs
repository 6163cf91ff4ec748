//! Feeding the kernel's observed completions into the core and predicting `BdiDirtyThresh`.
//!
//! A [`Tracker`] holds two [`Domain`]s over the same bdis:
//!
//! * `linux`: policy `Linux`, `bytes_mode = LinuxSnapshot`, `idle_floor = true`, 3 s periods in
//!   milliseconds: the model of the running kernel (6.13+);
//! * `redistribute`: policy `Redistribute` with the same inputs: the counterfactual.
//!
//! Each [`Sample`] brings, per bdi, the cumulative `BdiWritten` (writeback completions,
//! `WB_WRITTEN`), the knobs and the kernel's `BdiDirtyThresh`/`DirtyThresh`. The increase of
//! `BdiWritten` since the previous sample is fed as completions, spread evenly over the
//! interval in [`TrackerConfig::slices`] interleaved slices (so that period boundaries can fall
//! inside an interval and a capped bdi's `__fprop_add_percpu_max` sees the others' completions
//! arrive alongside its own, as in the kernel). Then the model's `wb_thresh` is computed with the
//! `DirtyThresh` that bdi's `stats` reported and the global dirty count (`nr_dirty +
//! nr_writeback`) read from vmstat around that `stats` file.
//!
//! What cannot be observed, or only indirectly, and how it is handled:
//!
//! * the kernel's period phase (`dom->period_time`, armed one period after the first
//!   completion after the clock stopped, fired by a deferrable timer that the timer wheel
//!   rounds up to 64 jiffies): not in /proc or /sys. When tracefs is available,
//!   [`super::trace`] sees every `writeout_period()` run through the `timer:timer_expire_entry`
//!   tracepoint and [`Tracker::follow_kernel_periods`] makes the model age exactly then.
//!   Without it the model's clock starts at the first completion it sees; in a steady state
//!   (constant rates) the fractions do not depend on the phase, but completions come in bursts
//!   and after a change the model then lags or leads the kernel by up to a period;
//! * the kernel's history before observation started: the counts are not shown, only the
//!   thresholds. With [`TrackerConfig::seed_from_kernel`] the model starts from the fractions
//!   read off `BdiDirtyThresh` and a global count estimated from how they move when the first
//!   completions arrive (`f' = (f·G + Δ)/(G + D)`); without it the model starts empty and the
//!   kernel's older history fades by halving every period;
//! * when exactly within a sampling interval the completions happened: `BdiWritten` is read
//!   once per sample, and the increase is spread evenly over the interval. Completions arrive
//!   in bursts (a loop device completes 16 MiB at once), so a short interval matters when a
//!   period boundary falls inside it;
//! * per-cpu counter error: `BdiWritten` and the fprop counters are `percpu_counter`s read with
//!   `percpu_counter_read[_positive]`, which miss up to `batch − 1` not yet folded events per
//!   CPU (`PROP_BATCH = 8·(1 + ilog2(nr_cpus))`). Negligible for a bdi with thousands of events
//!   per period; for a bdi held at its `max_prop_frac` with a few hundred events (a FUSE bdi at
//!   1%) it lets the kernel's fraction sit a few percent above the cap, which the exact model
//!   does not reproduce;
//! * the exact global dirty count at the instant the kernel computed `BdiDirtyThresh`: we read
//!   vmstat just before and just after each `stats` file and use the midpoint ([`BdiRow::linux_lo`]
//!   and [`BdiRow::linux_hi`] bound the model over that range); this only matters where the idle
//!   floor `(thresh − dirty)/8` (strict: `/100`) binds;
//! * cgroup writeback: with several `bdi_writeback`s per bdi the kernel sums `wb_calc_thresh()`
//!   over them (each with its own fraction and idle floor); the model has one per bdi and flags
//!   bdis with more than one wb ([`BdiRow::wb_count`]).

use std::collections::BTreeMap;
use std::format;
use std::string::String;
use std::vec::Vec;

use super::error::{ObserveError, Result};
use super::parse::BdiKnobs;
use super::sysfs::Sample;
use crate::bdi::{Bdi, BdiId};
use crate::domain::{Domain, DomainConfig};
use crate::flex_proportions::Fraction;
use crate::period::DEFAULT_PERIOD_MS;
use crate::policy::Policy;
use crate::sim::Warp;

/// How the tracker feeds the model.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TrackerConfig {
    /// Period length in milliseconds (`VM_COMPLETIONS_PERIOD_LEN` = 3 s).
    pub period_ms: u64,
    /// Slices each interval's completions are split into.
    pub slices: u32,
    /// Start the model from the kernel's state instead of empty: fractions read off
    /// `BdiDirtyThresh` (where it is above the idle floor), and the kernel's global count —
    /// not observable directly — estimated from how those fractions move when the first
    /// completions arrive (an interval with completions and, when periods are followed, no
    /// period boundary). Until then, and if no estimate comes within 40 intervals, the model
    /// runs unseeded.
    pub seed_from_kernel: bool,
    /// Model the 6.13+ idle-device floor (`false` for older kernels; see
    /// [`super::sysfs::kernel_has_idle_floor`]).
    pub idle_floor: bool,
}

impl Default for TrackerConfig {
    fn default() -> Self {
        TrackerConfig {
            period_ms: DEFAULT_PERIOD_MS,
            slices: 32,
            seed_from_kernel: false,
            idle_floor: true,
        }
    }
}

#[derive(Debug, Clone)]
struct Tracked {
    linux: BdiId,
    redistribute: BdiId,
    /// `BdiWritten` at the previous sample, pages.
    last_written: u64,
    knobs: Option<(u32, u32, bool)>,
    /// Samples since the bdi appeared.
    age: u64,
    /// When it last completed writeback (ms since start).
    last_write_ms: Option<u64>,
}

/// One bdi's line of a step: the kernel's numbers and the model's.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BdiRow {
    /// The bdi (`major:minor`).
    pub name: String,
    /// Pages completed since the previous sample (fed to the model).
    pub written: u64,
    /// Its `min_ratio_fine` (ppm).
    pub min_ratio_fine: u64,
    /// Its `max_ratio_fine` (ppm).
    pub max_ratio_fine: u64,
    /// Its `strict_limit`.
    pub strict_limit: bool,
    /// `DirtyThresh` this bdi's stats reported (pages).
    pub thresh: u64,
    /// Global dirty pages assumed for the kernel's computation (vmstat midpoint).
    pub dirty: u64,
    /// The kernel's `BdiDirtyThresh` (pages).
    pub kernel: u64,
    /// The `Linux` model (pages), at `dirty`.
    pub linux: u64,
    /// The `Linux` model at the vmstat reads before and after (the measurement band).
    pub linux_lo: u64,
    /// The model's threshold at the dirty count read after the stats file.
    pub linux_hi: u64,
    /// The `Redistribute` counterfactual (pages).
    pub redistribute: u64,
    /// The model's completion fraction (`Linux` policy).
    pub fraction: Fraction,
    /// Samples this bdi has been tracked (0 on the first).
    pub age: u64,
    /// Number of `bdi_writeback`s (cgroup writeback), when known.
    pub wb_count: Option<usize>,
    /// Completed writeback within the last two periods (6 s; bursty writers, like a disk
    /// flushed by other processes, complete a batch every few seconds).
    pub recent: bool,
    /// Pages the bdi held at its stats read: `BdiReclaimable + BdiWriteback` (the bdi's
    /// part of the global dirty + writeback count).
    pub held: u64,
    /// `BdiWriteBandwidth` (kB/s): the kernel's `avg_write_bandwidth` estimate of the bdi,
    /// which sizes its background writeback chunks and its pauses.
    pub write_bandwidth_kbps: u64,
}

impl BdiRow {
    /// Relative error of the model against the kernel: `(model − kernel)/kernel`
    /// (`None` when the kernel reports 0).
    pub fn rel_err(&self) -> Option<f64> {
        (self.kernel > 0).then(|| (self.linux as f64 - self.kernel as f64) / self.kernel as f64)
    }

    /// Relative distance from the kernel's value to the model's band `[linux_lo, linux_hi]`
    /// (0 when the kernel's value is inside: consistent within the dirty-count uncertainty).
    pub fn band_err(&self) -> Option<f64> {
        let k = self.kernel;
        (k > 0).then(|| {
            let (lo, hi) = (
                self.linux_lo.min(self.linux_hi),
                self.linux_lo.max(self.linux_hi),
            );
            if k < lo {
                (lo - k) as f64 / k as f64
            } else if k > hi {
                (k - hi) as f64 / k as f64
            } else {
                0.0
            }
        })
    }

    /// Whether the bdi counts as active: it completed writeback within the last two periods.
    /// (Its fraction stays positive for many periods after it stopped.)
    pub fn active(&self) -> bool {
        self.recent
    }
}

/// Per-sample totals.
#[derive(Debug, Clone, PartialEq)]
pub struct StepSummary {
    /// `DirtyThresh` (pages) the Redistribute water level was computed for.
    pub thresh: u64,
    /// Bdis counted as active (writeback completed within the last two periods).
    pub active: Vec<String>,
    /// `1 − Σ_active BdiDirtyThresh / DirtyThresh`: the kernel's unused share.
    pub unused_kernel: Option<f64>,
    /// The same for the `Linux` model and the `Redistribute` counterfactual.
    pub unused_linux: Option<f64>,
    /// The counterfactual's unused share.
    pub unused_redistribute: Option<f64>,
    /// Model period deadline (ms since start), for the record.
    pub period_deadline: Option<u64>,
    /// The latest `writeout_period()` run of the kernel seen so far (seconds since the
    /// sampler's start), when the model follows the kernel's boundaries.
    pub kernel_period_s: Option<f64>,
}

/// A kernel fraction read off `BdiDirtyThresh` (see [`TrackerConfig::seed_from_kernel`]).
#[derive(Debug, Clone, Copy, PartialEq)]
struct Inferred {
    linux: BdiId,
    redistribute: BdiId,
    f: f64,
    /// Read off the threshold (`false`: a share of the remainder given to a bdi at its floor).
    visible: bool,
}

/// Intervals to wait for a completion burst that shows the kernel's global count.
const SEED_TRIES: u32 = 40;

/// The model of the running kernel plus the counterfactual, over caller-provided slots.
pub struct Tracker<'a> {
    cfg: TrackerConfig,
    linux: Domain<'a>,
    redistribute: Domain<'a>,
    bdis: BTreeMap<String, Tracked>,
    last_ms: Option<u64>,
    /// The latest kernel period boundary seen (s since the sampler's start).
    last_boundary: Option<f64>,
    /// When set, the model's periods follow the kernel's observed `writeout_period()` runs.
    warp: Option<Warp>,
    /// Seeding in progress: the fractions seen at the previous sample, and how many
    /// intervals were tried.
    pending_seed: Option<(Vec<Inferred>, u32)>,
}

fn model_err(what: String, e: crate::error::Error) -> ObserveError {
    ObserveError::Model {
        what,
        source: format!("{e}"),
    }
}

impl<'a> Tracker<'a> {
    /// `linux_slots` and `redistribute_slots` bound the number of bdis (use the same length).
    pub fn new(
        linux_slots: &'a mut [Bdi],
        redistribute_slots: &'a mut [Bdi],
        cfg: TrackerConfig,
    ) -> Self {
        Tracker {
            cfg,
            linux: Domain::new(
                linux_slots,
                DomainConfig::new(Policy::Linux)
                    .with_period_len(cfg.period_ms)
                    .with_idle_floor(cfg.idle_floor),
            ),
            redistribute: Domain::new(
                redistribute_slots,
                DomainConfig::new(Policy::Redistribute)
                    .with_period_len(cfg.period_ms)
                    .with_idle_floor(cfg.idle_floor),
            ),
            bdis: BTreeMap::new(),
            last_ms: None,
            last_boundary: None,
            warp: None,
            pending_seed: None,
        }
    }

    /// Makes the model's period clock follow the kernel's period boundaries, which the caller
    /// then passes to [`Tracker::step_with_boundaries`] (see [`super::trace`]).
    pub fn follow_kernel_periods(&mut self) {
        self.warp = Some(Warp::new(self.cfg.period_ms));
    }

    /// Whether the model follows observed kernel period boundaries.
    pub fn follows_kernel_periods(&self) -> bool {
        self.warp.is_some()
    }

    /// The `Linux` model's domain.
    pub fn linux(&self) -> &Domain<'a> {
        &self.linux
    }

    /// The `Redistribute` counterfactual's domain.
    pub fn redistribute(&self) -> &Domain<'a> {
        &self.redistribute
    }

    fn sync_bdis(&mut self, s: &Sample) -> Result<()> {
        let gone: Vec<String> = self
            .bdis
            .keys()
            .filter(|n| s.bdi(n).is_none())
            .cloned()
            .collect();
        for n in gone {
            if let Some(t) = self.bdis.remove(&n) {
                let _ = self.linux.remove_bdi(t.linux);
                let _ = self.redistribute.remove_bdi(t.redistribute);
            }
        }
        for b in &s.bdis {
            if self.bdis.contains_key(&b.name) {
                continue;
            }
            let full = |e| {
                model_err(
                    format!("adding bdi {} (more bdis than model slots?)", b.name),
                    e,
                )
            };
            let l = self.linux.add_bdi().map_err(full)?;
            let r = match self.redistribute.add_bdi() {
                Ok(r) => r,
                Err(e) => {
                    let _ = self.linux.remove_bdi(l);
                    return Err(full(e));
                }
            };
            self.bdis.insert(
                b.name.clone(),
                Tracked {
                    linux: l,
                    redistribute: r,
                    last_written: b.stats.written_pages(),
                    knobs: None,
                    age: 0,
                    last_write_ms: None,
                },
            );
        }
        Ok(())
    }

    /// Applies changed knobs to both domains. The kernel keeps `min ≤ max` and `Σ min < 100%`
    /// after every write, so applying the floors that go down first, then the caps, then the
    /// floors that go up never trips the validation on the way.
    fn apply_knobs(&mut self, s: &Sample) -> Result<()> {
        let mut want: Vec<(String, (u32, u32, bool))> = Vec::new();
        for b in &s.bdis {
            let k: BdiKnobs = b.knobs;
            let clamp = |v: u64| u32::try_from(v.min(1_000_000)).unwrap_or(1_000_000);
            let w = (
                clamp(k.min_ratio_fine),
                clamp(k.max_ratio_fine),
                k.strict_limit,
            );
            if self.bdis.get(&b.name).and_then(|t| t.knobs) != Some(w) {
                want.push((b.name.clone(), w));
            }
        }
        for pass in 0..3 {
            for (name, (min, max, strict)) in &want {
                let Some(t) = self.bdis.get(name) else {
                    continue;
                };
                let cur_min = self.linux.min_ratio_fine(t.linux).unwrap_or(0);
                let cur_max = self.linux.max_ratio_fine(t.linux).unwrap_or(1_000_000);
                let (l, r) = (t.linux, t.redistribute);
                let ctx = |what: &str| format!("applying {what} of bdi {name} to the model");
                match pass {
                    0 if u64::from(*min) < cur_min => {
                        self.linux
                            .set_min_ratio_fine(l, *min)
                            .map_err(|e| model_err(ctx("min_ratio_fine"), e))?;
                        self.redistribute
                            .set_min_ratio_fine(r, *min)
                            .map_err(|e| model_err(ctx("min_ratio_fine"), e))?;
                    }
                    1 if u64::from(*max) != cur_max => {
                        self.linux
                            .set_max_ratio_fine(l, *max)
                            .map_err(|e| model_err(ctx("max_ratio_fine"), e))?;
                        self.redistribute
                            .set_max_ratio_fine(r, *max)
                            .map_err(|e| model_err(ctx("max_ratio_fine"), e))?;
                    }
                    2 => {
                        if u64::from(*min) > cur_min {
                            self.linux
                                .set_min_ratio_fine(l, *min)
                                .map_err(|e| model_err(ctx("min_ratio_fine"), e))?;
                            self.redistribute
                                .set_min_ratio_fine(r, *min)
                                .map_err(|e| model_err(ctx("min_ratio_fine"), e))?;
                        }
                        self.linux
                            .set_strict_limit(l, *strict)
                            .map_err(|e| model_err(ctx("strict_limit"), e))?;
                        self.redistribute
                            .set_strict_limit(r, *strict)
                            .map_err(|e| model_err(ctx("strict_limit"), e))?;
                    }
                    _ => {}
                }
            }
        }
        for (name, w) in want {
            if let Some(t) = self.bdis.get_mut(&name) {
                t.knobs = Some(w);
            }
        }
        Ok(())
    }

    /// The kernel's completion fractions as far as the sample shows them: from `BdiDirtyThresh`
    /// where it is above the idle floor and below the cap (`(wb_thresh − T·min)/(T·(1−Σmin))`),
    /// the cap's share where it sits at the cap. What is left of 1 is spread over the bdis at
    /// their idle floor (each at most `floor/pool`, the most it can have while at the floor),
    /// so that the fractions relate to the global count as the kernel's do.
    fn infer_fractions(&self, s: &Sample) -> Vec<Inferred> {
        let sum_min: u64 = s.bdis.iter().map(|b| b.knobs.min_ratio_fine).sum();
        let mut known = Vec::new();
        let mut at_floor = Vec::new();
        for b in &s.bdis {
            let Some(t) = self.bdis.get(&b.name) else {
                continue;
            };
            let th = b.stats.dirty_thresh_pages() as f64;
            let k = b.stats.bdi_dirty_thresh_pages() as f64;
            let dirty = b.dirty_estimate() as f64;
            let floor = if th > dirty {
                ((th - dirty) / if b.knobs.strict_limit { 100.0 } else { 8.0 }).floor()
            } else {
                0.0
            };
            let cap = th * b.knobs.max_ratio_fine.min(1_000_000) as f64 / 1e6;
            let min = th * b.knobs.min_ratio_fine as f64 / 1e6;
            let pool = th * (1e6 - sum_min.min(1_000_000) as f64) / 1e6;
            if pool <= 0.0 {
                continue;
            }
            let (f, visible) = if k > floor + 1.0 && k + 1.0 < cap {
                ((k - min) / pool, true)
            } else if k + 1.0 >= cap && cap > floor + 1.0 {
                // At the cap: at least the cap's share (exact when the cap is 100%).
                ((cap - min) / pool, cap + 1.0 >= th)
            } else {
                at_floor.push(Inferred {
                    linux: t.linux,
                    redistribute: t.redistribute,
                    f: ((floor - min) / pool).clamp(0.0, 1.0),
                    visible: false,
                });
                continue;
            };
            known.push(Inferred {
                linux: t.linux,
                redistribute: t.redistribute,
                f: f.clamp(0.0, 1.0),
                visible,
            });
        }
        let total: f64 = known.iter().map(|x| x.f).sum();
        if total > 1.0 {
            for x in &mut known {
                x.f /= total;
            }
        } else if !at_floor.is_empty() {
            let each = (1.0 - total) / at_floor.len() as f64;
            for mut x in at_floor {
                x.f = each.min(x.f);
                known.push(x);
            }
        }
        known
    }

    /// The kernel's global count at the previous sample, from how the visible fractions moved
    /// when `deltas` completions arrived (no period boundary in between):
    /// `f' = (f·G + Δ)/(G + D)` gives `G = (Δ − f'·D)/(f' − f)`; the median over the bdis whose
    /// fraction moved by at least 0.2%.
    fn estimate_global(
        before: &[Inferred],
        after: &[Inferred],
        deltas: &[(BdiId, BdiId, u64)],
    ) -> Option<f64> {
        let d_total: u64 = deltas.iter().map(|d| d.2).sum();
        if d_total == 0 {
            return None;
        }
        let mut est: Vec<f64> = Vec::new();
        for b in before.iter().filter(|b| b.visible) {
            let Some(a) = after.iter().find(|a| a.linux == b.linux && a.visible) else {
                continue;
            };
            if (a.f - b.f).abs() < 0.002 {
                continue;
            }
            let own = deltas.iter().find(|d| d.0 == b.linux).map_or(0, |d| d.2) as f64;
            let g = (own - a.f * d_total as f64) / (a.f - b.f);
            if g.is_finite() && g > 0.0 {
                est.push(g);
            }
        }
        if est.is_empty() {
            return None;
        }
        est.sort_by(|x, y| x.total_cmp(y));
        est.get(est.len() / 2).copied()
    }

    /// Feeds one sample and returns the per-bdi rows (in the sample's order) and the totals.
    pub fn step(&mut self, s: &Sample) -> Result<(Vec<BdiRow>, StepSummary)> {
        self.step_with_boundaries(s, &[])
    }

    /// [`Tracker::step`] with the kernel's period boundaries (seconds since the sampler's
    /// start) observed since the previous step; used after [`Tracker::follow_kernel_periods`].
    ///
    /// In order: the completions since the previous sample, the bdis and their knobs, the
    /// threshold, the seeding from the kernel's state, the period clock on the kernel's
    /// grid, the completions fed in slices, and the rows.
    pub fn step_with_boundaries(
        &mut self,
        s: &Sample,
        boundaries: &[f64],
    ) -> Result<(Vec<BdiRow>, StepSummary)> {
        let now = u64::try_from(s.t.as_millis()).unwrap_or(u64::MAX);
        let deltas = self.take_deltas(s, now);
        self.sync_bdis(s)?;
        self.apply_knobs(s)?;
        let thresh = s.dirty_thresh().unwrap_or(0);
        self.linux.update_dirty_limit(thresh);
        self.redistribute.update_dirty_limit(thresh);
        let seed = self.seed(s, boundaries, &deltas);
        let start = self.last_ms.unwrap_or(now).min(now);
        self.follow_boundaries(boundaries);
        self.feed(start, now, &seed, &deltas);
        self.last_ms = Some(now);
        let rows = self.rows(s, now, &deltas);
        if let Some(b) = boundaries.iter().copied().reduce(f64::max) {
            self.last_boundary = Some(b);
        }
        let mut summary = summarize(&rows, thresh, self.linux.period_deadline());
        summary.kernel_period_s = self.last_boundary;
        Ok((rows, summary))
    }

    /// Completions since the previous sample, per tracked bdi (bdis new in this sample have
    /// none yet): `(linux id, redistribute id, pages)`.
    fn take_deltas(&mut self, s: &Sample, now: u64) -> Vec<(BdiId, BdiId, u64)> {
        let mut deltas = Vec::new();
        for b in &s.bdis {
            if let Some(t) = self.bdis.get_mut(&b.name) {
                let w = b.stats.written_pages();
                // A counter that went down belongs to a new bdi under a reused name.
                let d = w.saturating_sub(t.last_written);
                t.last_written = w;
                if d > 0 {
                    deltas.push((t.linux, t.redistribute, d));
                    t.last_write_ms = Some(now);
                }
            }
        }
        deltas
    }

    /// Seeding: wait for an interval with completions and no kernel period boundary, read
    /// the kernel's global count off the fractions' response, then top the model's counts
    /// up to the kernel's fractions of the previous sample. Returns the counts to add.
    fn seed(
        &mut self,
        s: &Sample,
        boundaries: &[f64],
        deltas: &[(BdiId, BdiId, u64)],
    ) -> Vec<(BdiId, BdiId, u64)> {
        let mut seed = Vec::new();
        if self.cfg.seed_from_kernel && self.last_ms.is_none() {
            self.pending_seed = Some((self.infer_fractions(s), 0));
        } else if let Some((before, tries)) = self.pending_seed.take() {
            let after = self.infer_fractions(s);
            let clean = self.warp.is_none() || boundaries.is_empty();
            let g = if clean {
                Self::estimate_global(&before, &after, deltas)
            } else {
                None
            };
            match g {
                Some(g) => {
                    for b in &before {
                        let have = self.linux.fraction(b.linux).numerator;
                        let want = (b.f * g).round() as u64;
                        if want > have {
                            seed.push((b.linux, b.redistribute, want - have));
                        }
                    }
                }
                None if tries < SEED_TRIES => self.pending_seed = Some((after, tries + 1)),
                None => {}
            }
        }
        seed
    }

    /// Records the kernel's boundaries; a stopped model clock is re-armed on the kernel's
    /// grid (its first deadline is the next kernel boundary), not at the next completion.
    fn follow_boundaries(&mut self, boundaries: &[f64]) {
        let Some(w) = self.warp.as_mut() else {
            return;
        };
        w.push(boundaries);
        let base = w.base();
        for (dom, id) in [
            (&mut self.linux, self.bdis.values().next().map(|t| t.linux)),
            (
                &mut self.redistribute,
                self.bdis.values().next().map(|t| t.redistribute),
            ),
        ] {
            if let (None, Some(id)) = (dom.period_deadline(), id) {
                dom.writeout_inc(id, 0, base);
            }
        }
    }

    /// Feeds the seed at `start`, then the interval's completions in slices up to `now`
    /// (each on the model's clock), so that aging and capped adds see them interleaved.
    fn feed(
        &mut self,
        start: u64,
        now: u64,
        seed: &[(BdiId, BdiId, u64)],
        deltas: &[(BdiId, BdiId, u64)],
    ) {
        let mut clock = |real: u64| match self.warp.as_mut() {
            Some(w) => w.model_time(real),
            None => real,
        };
        let span = now - start;
        let k = u64::from(self.cfg.slices.max(1));
        if !seed.is_empty() {
            let at = clock(start);
            for &(l, r, n) in seed {
                self.linux.writeout_inc(l, n, at);
                self.redistribute.writeout_inc(r, n, at);
            }
        }
        for j in 0..k {
            let at = clock(start + span * (j + 1) / k);
            self.linux.tick(at);
            self.redistribute.tick(at);
            for &(l, r, d) in deltas {
                let part = d * (j + 1) / k - d * j / k;
                if part > 0 {
                    self.linux.writeout_inc(l, part, at);
                    self.redistribute.writeout_inc(r, part, at);
                }
            }
        }
        let at = clock(now);
        self.linux.tick(at);
        self.redistribute.tick(at);
    }

    /// One row per tracked bdi of the sample, in the sample's order.
    fn rows(&mut self, s: &Sample, now: u64, deltas: &[(BdiId, BdiId, u64)]) -> Vec<BdiRow> {
        let mut rows = Vec::with_capacity(s.bdis.len());
        for b in &s.bdis {
            let Some(t) = self.bdis.get_mut(&b.name) else {
                continue;
            };
            let th = b.stats.dirty_thresh_pages();
            let dirty = b.dirty_estimate();
            let fed = deltas
                .iter()
                .find(|d| d.0 == t.linux)
                .map(|d| d.2)
                .unwrap_or(0);
            rows.push(BdiRow {
                name: b.name.clone(),
                written: fed,
                min_ratio_fine: b.knobs.min_ratio_fine,
                max_ratio_fine: b.knobs.max_ratio_fine,
                strict_limit: b.knobs.strict_limit,
                thresh: th,
                dirty,
                kernel: b.stats.bdi_dirty_thresh_pages(),
                linux: self.linux.wb_thresh(t.linux, th, dirty),
                linux_lo: self.linux.wb_thresh(t.linux, th, b.dirty_before),
                linux_hi: self.linux.wb_thresh(t.linux, th, b.dirty_after),
                redistribute: self.redistribute.wb_thresh(t.redistribute, th, dirty),
                fraction: self.linux.fraction(t.linux),
                age: t.age,
                wb_count: b.wb_count,
                recent: t
                    .last_write_ms
                    .is_some_and(|w| now.saturating_sub(w) <= 2 * self.cfg.period_ms),
                held: b.stats.held_pages(),
                write_bandwidth_kbps: b.stats.write_bandwidth_kbps,
            });
            t.age += 1;
        }
        rows
    }
}

/// The unused shares over the active bdis.
pub fn summarize(rows: &[BdiRow], thresh: u64, period_deadline: Option<u64>) -> StepSummary {
    let active: Vec<&BdiRow> = rows.iter().filter(|r| r.active()).collect();
    let unused = |f: &dyn Fn(&BdiRow) -> u64| -> Option<f64> {
        if active.is_empty() || thresh == 0 {
            return None;
        }
        let sum: u64 = active.iter().map(|r| f(r)).sum();
        Some(1.0 - sum as f64 / thresh as f64)
    };
    StepSummary {
        thresh,
        active: active.iter().map(|r| r.name.clone()).collect(),
        unused_kernel: unused(&|r| r.kernel),
        unused_linux: unused(&|r| r.linux),
        unused_redistribute: unused(&|r| r.redistribute),
        period_deadline,
        kernel_period_s: None,
    }
}
