//! Feeding the kernel's observed completions into the core and predicting `BdiDirtyThresh`.
//!
//! A [`Tracker`] holds two [`Domain`]s over the same bdis:
//!
//! * `linux`: policy `Linux`, `bytes_mode = LinuxSnapshot`, `idle_floor = true`, 3 s periods in
//!   milliseconds: the model of the running kernel (6.13+);
//! * `redis`: policy `Redistribute` with the same inputs: the counterfactual.
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
//! * the kernel's history before observation started: the model starts with every local count
//!   at 0 and global count 1. Aging halves that unknown history every period, so it fades within
//!   a few periods of new completions;
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
use crate::policy::{BytesMode, Policy};

use super::trace::Warp;

/// How the tracker feeds the model.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TrackerConfig {
    /// Period length in milliseconds (`VM_COMPLETIONS_PERIOD_LEN` = 3 s).
    pub period_ms: u64,
    /// Slices each interval's completions are split into.
    pub slices: u32,
}

impl Default for TrackerConfig {
    fn default() -> Self {
        TrackerConfig {
            period_ms: 3000,
            slices: 32,
        }
    }
}

/// The domain configuration of the kernel model.
pub fn linux_config(period_ms: u64) -> DomainConfig {
    DomainConfig {
        policy: Policy::Linux,
        bytes_mode: BytesMode::LinuxSnapshot,
        idle_floor: true,
        period_len: period_ms,
    }
}

/// The domain configuration of the counterfactual.
pub fn redistribute_config(period_ms: u64) -> DomainConfig {
    DomainConfig {
        policy: Policy::Redistribute,
        bytes_mode: BytesMode::Resolve,
        idle_floor: true,
        period_len: period_ms,
    }
}

#[derive(Debug, Clone)]
struct Tracked {
    linux: BdiId,
    redis: BdiId,
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
    pub name: String,
    /// Pages completed since the previous sample (fed to the model).
    pub written: u64,
    pub min_ratio_fine: u64,
    pub max_ratio_fine: u64,
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
    pub linux_hi: u64,
    /// The `Redistribute` counterfactual (pages).
    pub redis: u64,
    /// The model's completion fraction (`Linux` policy).
    pub fraction: Fraction,
    /// Samples this bdi has been tracked (0 on the first).
    pub age: u64,
    pub wb_count: Option<usize>,
    /// Completed writeback within the last two periods (6 s; bursty writers, like a disk
    /// flushed by other processes, complete a batch every few seconds).
    pub recent: bool,
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
    pub unused_redis: Option<f64>,
    /// Model period deadline (ms since start), for the record.
    pub period_deadline: Option<u64>,
}

/// The model of the running kernel plus the counterfactual, over caller-provided slots.
pub struct Tracker<'a> {
    cfg: TrackerConfig,
    linux: Domain<'a>,
    redis: Domain<'a>,
    bdis: BTreeMap<String, Tracked>,
    last_ms: Option<u64>,
    /// When set, the model's periods follow the kernel's observed `writeout_period()` runs.
    warp: Option<Warp>,
}

fn model_err(what: String, e: crate::error::Error) -> ObserveError {
    ObserveError::Model {
        what,
        source: format!("{e}"),
    }
}

impl<'a> Tracker<'a> {
    /// `linux_slots` and `redis_slots` bound the number of bdis (use the same length).
    pub fn new(linux_slots: &'a mut [Bdi], redis_slots: &'a mut [Bdi], cfg: TrackerConfig) -> Self {
        Tracker {
            cfg,
            linux: Domain::new(linux_slots, linux_config(cfg.period_ms)),
            redis: Domain::new(redis_slots, redistribute_config(cfg.period_ms)),
            bdis: BTreeMap::new(),
            last_ms: None,
            warp: None,
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

    pub fn linux(&self) -> &Domain<'a> {
        &self.linux
    }

    pub fn redistribute(&self) -> &Domain<'a> {
        &self.redis
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
                let _ = self.redis.remove_bdi(t.redis);
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
            let r = match self.redis.add_bdi() {
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
                    redis: r,
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
                let (l, r) = (t.linux, t.redis);
                let ctx = |what: &str| format!("applying {what} of bdi {name} to the model");
                match pass {
                    0 if u64::from(*min) < cur_min => {
                        self.linux
                            .set_min_ratio_fine(l, *min)
                            .map_err(|e| model_err(ctx("min_ratio_fine"), e))?;
                        self.redis
                            .set_min_ratio_fine(r, *min)
                            .map_err(|e| model_err(ctx("min_ratio_fine"), e))?;
                    }
                    1 if u64::from(*max) != cur_max => {
                        self.linux
                            .set_max_ratio_fine(l, *max)
                            .map_err(|e| model_err(ctx("max_ratio_fine"), e))?;
                        self.redis
                            .set_max_ratio_fine(r, *max)
                            .map_err(|e| model_err(ctx("max_ratio_fine"), e))?;
                    }
                    2 => {
                        if u64::from(*min) > cur_min {
                            self.linux
                                .set_min_ratio_fine(l, *min)
                                .map_err(|e| model_err(ctx("min_ratio_fine"), e))?;
                            self.redis
                                .set_min_ratio_fine(r, *min)
                                .map_err(|e| model_err(ctx("min_ratio_fine"), e))?;
                        }
                        self.linux
                            .set_strict_limit(l, *strict)
                            .map_err(|e| model_err(ctx("strict_limit"), e))?;
                        self.redis
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

    /// Feeds one sample and returns the per-bdi rows (in the sample's order) and the totals.
    pub fn step(&mut self, s: &Sample) -> Result<(Vec<BdiRow>, StepSummary)> {
        self.step_with_boundaries(s, &[])
    }

    /// [`Tracker::step`] with the kernel's period boundaries (seconds since the sampler's
    /// start) observed since the previous step; used after [`Tracker::follow_kernel_periods`].
    pub fn step_with_boundaries(
        &mut self,
        s: &Sample,
        boundaries: &[f64],
    ) -> Result<(Vec<BdiRow>, StepSummary)> {
        let now = u64::try_from(s.t.as_millis()).unwrap_or(u64::MAX);
        // Completions since the previous sample (bdis new in this sample have none yet).
        let mut deltas: Vec<(BdiId, BdiId, u64)> = Vec::new();
        for b in &s.bdis {
            if let Some(t) = self.bdis.get_mut(&b.name) {
                let w = b.stats.written_pages();
                // A counter that went down belongs to a new bdi under a reused name.
                let d = w.saturating_sub(t.last_written);
                t.last_written = w;
                if d > 0 {
                    deltas.push((t.linux, t.redis, d));
                    t.last_write_ms = Some(now);
                }
            }
        }
        self.sync_bdis(s)?;
        self.apply_knobs(s)?;
        let thresh = s.dirty_thresh().unwrap_or(0);
        self.linux.update_dirty_limit(thresh);
        self.redis.update_dirty_limit(thresh);

        let start = self.last_ms.unwrap_or(now).min(now);
        if let Some(w) = self.warp.as_mut() {
            w.push(boundaries);
            // A stopped model clock is re-armed on the kernel's grid (its first deadline is
            // the next kernel boundary), not at the next completion.
            let base = w.base();
            for (dom, id) in [
                (&mut self.linux, self.bdis.values().next().map(|t| t.linux)),
                (&mut self.redis, self.bdis.values().next().map(|t| t.redis)),
            ] {
                if let (None, Some(id)) = (dom.period_deadline(), id) {
                    dom.writeout_inc(id, 0, base);
                }
            }
        }
        let mut clock = |real: u64| match self.warp.as_mut() {
            Some(w) => w.model_time(real),
            None => real,
        };
        let span = now - start;
        let k = u64::from(self.cfg.slices.max(1));
        for j in 0..k {
            let at = clock(start + span * (j + 1) / k);
            self.linux.tick(at);
            self.redis.tick(at);
            for &(l, r, d) in &deltas {
                let part = d * (j + 1) / k - d * j / k;
                if part > 0 {
                    self.linux.writeout_inc(l, part, at);
                    self.redis.writeout_inc(r, part, at);
                }
            }
        }
        let at = clock(now);
        self.linux.tick(at);
        self.redis.tick(at);
        self.last_ms = Some(now);

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
                redis: self.redis.wb_thresh(t.redis, th, dirty),
                fraction: self.linux.fraction(t.linux),
                age: t.age,
                wb_count: b.wb_count,
                recent: t
                    .last_write_ms
                    .is_some_and(|w| now.saturating_sub(w) <= 2 * self.cfg.period_ms),
            });
            t.age += 1;
        }
        let summary = summarize(&rows, thresh, self.linux.period_deadline());
        Ok((rows, summary))
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
        unused_redis: unused(&|r| r.redis),
        period_deadline,
    }
}
