//! The discrete-time simulator: devices, writers, the flusher and a model of
//! `balance_dirty_pages()`, around the core's [`Domain`] (called unchanged).
//!
//! One [`Sim::step`] advances time by `step_ms`:
//!
//! 1. events due at `t` are applied (through the core's setters);
//! 2. the core's period clock is ticked ([`Domain::tick`]);
//! 3. every bdi's `wb_thresh`/`wb_bg_thresh` is queried ([`Domain::wb_limits`]),
//!    with the global dirty count (dirty + writeback) at `t`;
//! 4. every running writer asks [`throttle`](super::throttle) how much it may
//!    dirty during the step, all from the same snapshot of `t`;
//! 5. each bdi completes writeback at its bandwidth and reports the
//!    completions to the core ([`Domain::writeout_inc`]), then its flusher
//!    moves dirty pages under writeback if it is over a background threshold;
//! 6. the writers' pages become dirty; every 200 ms the bandwidth estimates
//!    and the domain's `dirty_limit` are updated.
//!
//! Nothing is allocated per step: all state and the recording are sized up front.

use std::string::{String, ToString};
use std::vec::Vec;
use std::{format, vec};

use crate::bdi::{Bdi, BdiId};
use crate::domain::{Domain, DomainConfig};
use crate::error::Error;
use crate::global_limits::{
    dirty_freerun_ceiling, domain_dirty_limits, global_dirtyable_memory, DirtyLimits,
};
use crate::policy::{BytesMode, Policy};

use super::record::{DevSample, GlobalSample, Recording, WriterSample};
use super::scenario::{Action, Scenario};
use super::throttle::{
    dirty_poll_interval, update_dirty_limit, BwEstimate, Dtc, BANDWIDTH_INTERVAL_MS,
    RATELIMIT_CALC_SHIFT, WB_STAT_ERROR,
};

/// The policies, in the order tables and plots show them.
pub const POLICIES: [Policy; 4] = Policy::ALL;

/// A short lowercase name for a policy (`clip-only`, `linux`, `redistribute`).
pub fn policy_name(p: Policy) -> &'static str {
    p.name()
}

/// A policy as plots label it.
pub fn policy_title(p: Policy) -> &'static str {
    match p {
        Policy::ClipOnly => "ClipOnly (2.6.24)",
        Policy::Linux => "Linux (6.13+)",
        Policy::Redistribute => "Redistribute",
        Policy::Lend => "Lend (idle shares lent)",
    }
}

/// Parses a policy name as [`policy_name`] prints it (also `cliponly`, `clip`).
pub fn parse_policy(s: &str) -> Option<Policy> {
    match s.to_ascii_lowercase().as_str() {
        "clip-only" | "cliponly" | "clip_only" | "clip" => Some(Policy::ClipOnly),
        "linux" => Some(Policy::Linux),
        "redistribute" | "redist" => Some(Policy::Redistribute),
        "lend" => Some(Policy::Lend),
        _ => None,
    }
}

/// The core configuration the simulator uses for a policy: `ClipOnly` is the
/// 2.6.24 allocation (no idle-device floor); `Linux` is mainline 6.13+ (floor,
/// bytes limits converted once); `Redistribute` has the floor and resolves
/// bytes limits at every query.
pub fn domain_config(p: Policy, period_ms: u64) -> DomainConfig {
    DomainConfig {
        policy: p,
        bytes_mode: if p == Policy::Linux {
            BytesMode::LinuxSnapshot
        } else {
            BytesMode::Resolve
        },
        idle_floor: p != Policy::ClipOnly,
        period_len: period_ms,
    }
}

/// A run could not go on: the core rejected a setting of the scenario.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SimError {
    /// What failed, with the scenario line.
    pub message: String,
}

impl core::fmt::Display for SimError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for SimError {}

fn apply(dom: &mut Domain<'_>, id: BdiId, a: Action, lim: &DirtyLimits) -> Result<(), Error> {
    match a {
        Action::Bandwidth(_) => Ok(()),
        Action::MinRatio(p) => dom.set_min_ratio(id, p),
        Action::MaxRatio(p) => dom.set_max_ratio(id, p),
        Action::MinRatioFine(p) => dom.set_min_ratio_fine(id, p),
        Action::MaxRatioFine(p) => dom.set_max_ratio_fine(id, p),
        Action::MinBytes(b) => dom.set_min_bytes(id, b, lim),
        Action::MaxBytes(b) => dom.set_max_bytes(id, b, lim),
        Action::StrictLimit(on) => dom.set_strict_limit(id, on),
    }
}

impl Action {
    /// The scenario field this action comes from.
    pub fn field(&self) -> &'static str {
        match self {
            Action::Bandwidth(_) => "bandwidth_mib_s",
            Action::MinRatio(_) => "min_ratio",
            Action::MaxRatio(_) => "max_ratio",
            Action::MinRatioFine(_) => "min_ratio_fine",
            Action::MaxRatioFine(_) => "max_ratio_fine",
            Action::MinBytes(_) => "min_bytes",
            Action::MaxBytes(_) => "max_bytes",
            Action::StrictLimit(_) => "strict_limit",
        }
    }
}

/// The scenario's global limits (dirtyable memory is constant in a run).
pub fn scenario_limits(sc: &Scenario) -> DirtyLimits {
    domain_dirty_limits(global_dirtyable_memory(&sc.mem), &sc.vm, None)
}

/// Applies every setting of the scenario to a scratch domain, in time order,
/// under each policy. On the first rejection returns its line, field and
/// message.
pub(crate) fn check_settings(sc: &Scenario) -> Result<(), (Option<usize>, String, String)> {
    let lim = scenario_limits(sc);
    for p in POLICIES {
        let mut slots = vec![Bdi::EMPTY; sc.devices.len()];
        let mut dom = Domain::new(&mut slots, domain_config(p, sc.period_ms));
        dom.update_dirty_limit(lim.thresh);
        let mut ids = Vec::with_capacity(sc.devices.len());
        for d in &sc.devices {
            let id = dom
                .add_bdi()
                .map_err(|e| (Some(d.line), "device".to_string(), e.to_string()))?;
            ids.push(id);
            for &a in &d.settings {
                apply(&mut dom, id, a, &lim).map_err(|e| {
                    (
                        Some(d.line),
                        format!("device {:?} {}", d.name, a.field()),
                        format!("the core rejects {a}: {e}"),
                    )
                })?;
            }
        }
        for e in &sc.events {
            let id = ids[e.device];
            apply(&mut dom, id, e.action, &lim).map_err(|err| {
                (
                    Some(e.line),
                    format!("event.{}", e.action.field()),
                    format!(
                        "the core rejects {} on {:?} at {} s: {err}",
                        e.action,
                        sc.devices[e.device].name,
                        e.at_ms as f64 / 1000.0
                    ),
                )
            })?;
        }
    }
    Ok(())
}

/// A device's state.
#[derive(Clone, Copy, Debug, Default)]
struct Dev {
    id: u32,
    /// Bandwidth now, pages/s.
    bw: u64,
    /// Writeback queue depth (pages).
    inflight: u64,
    /// Dirty (reclaimable) pages.
    dirty: u64,
    /// Pages under writeback.
    writeback: u64,
    /// Completed writeback, in total.
    written: u64,
    /// Pages dirtied on this device, in total.
    dirtied: u64,
    /// Pages granted to its writers in the current step, not yet dirty.
    pend: u64,
    /// Unspent writeback capacity, in 1/1000 pages.
    carry: u64,
    /// Whole pages the device completes per step (`bw · step_ms / 1000`)...
    step_pages: u64,
    /// ...and the rest, in 1/1000 pages.
    step_frac: u64,
    est: BwEstimate,
    wb_thresh: u64,
    wb_bg_thresh: u64,
    strict: bool,
    /// Running writers on this device in the current step.
    n_writers: u32,
    /// A writer on this device was throttled in the current step.
    throttled: bool,
    peak_pinned: u64,
}

impl Dev {
    fn set_bw(&mut self, bw: u64, step_ms: u64) {
        self.bw = bw;
        let per_step = bw.saturating_mul(step_ms);
        self.step_pages = per_step / 1000;
        self.step_frac = per_step % 1000;
    }
}

/// A writer's state.
#[derive(Clone, Copy, Debug, Default)]
struct Wr {
    dev: usize,
    /// Wanted rate, pages/s.
    rate: u64,
    start: u64,
    stop: u64,
    /// Unspent dirtying credit, in 1/1000 pages.
    carry: u64,
    dirtied: u64,
    throttled: bool,
}

/// Conservation counters of a run at one instant, in pages.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Counts {
    /// Pages dirtied since the start.
    pub dirtied: u64,
    /// Dirty (not yet under writeback).
    pub dirty: u64,
    /// Under writeback.
    pub writeback: u64,
    /// Written back.
    pub written: u64,
}

/// One simulation of one scenario under one policy.
pub struct Sim<'s, 'a> {
    sc: &'s Scenario,
    policy: Policy,
    dom: Domain<'a>,
    lim: DirtyLimits,
    dirty_limit: u64,
    now: u64,
    steps_done: u64,
    next_event: usize,
    devs: Vec<Dev>,
    wrs: Vec<Wr>,
    nr_dirty: u64,
    nr_writeback: u64,
    last_step_dirtied: u64,
    max_step_dirtied: u64,
    peak_dirty: u64,
    peak_over_limit: i64,
    /// Σ over throttled steps of (T − Σ wb_thresh) · dt, in page·ms (T is
    /// constant in a run, so the share is this / (T · throttled_ms)).
    unused_acc: u128,
    throttled_ms: u64,
    rec: Recording,
}

impl<'s, 'a> Sim<'s, 'a> {
    /// The slots a domain for this scenario needs.
    pub fn slots(sc: &Scenario) -> Vec<Bdi> {
        vec![Bdi::EMPTY; sc.devices.len()]
    }

    /// Sets up the machine at time 0: adds every device to a fresh domain in
    /// `slots` and applies its settings.
    pub fn new(sc: &'s Scenario, policy: Policy, slots: &'a mut [Bdi]) -> Result<Self, SimError> {
        let lim = scenario_limits(sc);
        let mut dom = Domain::new(slots, domain_config(policy, sc.period_ms));
        dom.update_dirty_limit(lim.thresh);
        let mut devs = Vec::with_capacity(sc.devices.len());
        for d in &sc.devices {
            let id = dom.add_bdi().map_err(|e| SimError {
                message: format!("{}: device {:?}: {e}", sc.origin, d.name),
            })?;
            for &a in &d.settings {
                apply(&mut dom, id, a, &lim).map_err(|e| SimError {
                    message: format!("{}:{}: device {:?}: {a}: {e}", sc.origin, d.line, d.name),
                })?;
            }
            let mut dev = Dev {
                id: id.0,
                inflight: d.inflight,
                strict: d.settings.iter().rev().find_map(|a| match a {
                    Action::StrictLimit(on) => Some(*on),
                    _ => None,
                }) == Some(true),
                ..Dev::default()
            };
            dev.set_bw(d.bandwidth, sc.step_ms);
            devs.push(dev);
        }
        let wrs = sc
            .writers
            .iter()
            .map(|w| Wr {
                dev: w.device,
                rate: w.rate.unwrap_or(sc.max_rate),
                start: w.start_ms,
                stop: w.stop_ms.unwrap_or(u64::MAX),
                ..Wr::default()
            })
            .collect();
        Ok(Sim {
            sc,
            policy,
            dom,
            lim,
            dirty_limit: lim.thresh,
            now: 0,
            steps_done: 0,
            next_event: 0,
            devs,
            wrs,
            nr_dirty: 0,
            nr_writeback: 0,
            last_step_dirtied: 0,
            max_step_dirtied: 0,
            peak_dirty: 0,
            peak_over_limit: i64::MIN,
            unused_acc: 0,
            throttled_ms: 0,
            rec: Recording::new(sc),
        })
    }

    /// Simulated time (ms).
    pub fn now(&self) -> u64 {
        self.now
    }

    /// Whether the run has reached its duration.
    pub fn done(&self) -> bool {
        self.steps_done >= self.sc.steps()
    }

    /// The global limits.
    pub fn limits(&self) -> DirtyLimits {
        self.lim
    }

    /// The hard limit now: `max(thresh, dirty_limit)`.
    pub fn hard_limit(&self) -> u64 {
        self.dirty_limit.max(self.lim.thresh)
    }

    /// Global dirty pages (dirty + writeback).
    pub fn global_dirty(&self) -> u64 {
        self.nr_dirty + self.nr_writeback
    }

    /// Pages the writers dirtied in the last step.
    pub fn last_step_dirtied(&self) -> u64 {
        self.last_step_dirtied
    }

    /// Conservation counters of device `i`.
    pub fn device_counts(&self, i: usize) -> Counts {
        let d = &self.devs[i];
        Counts {
            dirtied: d.dirtied,
            dirty: d.dirty,
            writeback: d.writeback,
            written: d.written,
        }
    }

    /// Number of devices.
    pub fn n_devices(&self) -> usize {
        self.devs.len()
    }

    /// Whether device `i` has `strict_limit` now.
    pub fn device_strict(&self, i: usize) -> bool {
        self.devs[i].strict
    }

    /// Conservation counters summed over devices, and the writers' total.
    pub fn counts(&self) -> (Counts, u64) {
        let mut c = Counts::default();
        for d in &self.devs {
            c.dirtied += d.dirtied;
            c.dirty += d.dirty;
            c.writeback += d.writeback;
            c.written += d.written;
        }
        let by_writers = self.wrs.iter().map(|w| w.dirtied).sum();
        (c, by_writers)
    }

    /// Runs to the end and returns the recording.
    pub fn run(mut self) -> Result<Recording, SimError> {
        while !self.done() {
            self.step()?;
        }
        Ok(self.finish())
    }

    /// The recording so far, with the run's totals.
    pub fn finish(mut self) -> Recording {
        self.rec.policy = Some(self.policy);
        self.rec.peak_dirty = self.peak_dirty;
        self.rec.peak_over_limit = self.peak_over_limit;
        self.rec.max_step_dirtied = self.max_step_dirtied;
        let denom = u128::from(self.lim.thresh) * u128::from(self.throttled_ms);
        self.rec.unused_share = (denom > 0).then(|| self.unused_acc as f64 / denom as f64);
        self.rec.throttled_ms = self.throttled_ms;
        self.rec.elapsed_ms = self.now;
        self.rec.peak_pinned = self.devs.iter().map(|d| d.peak_pinned).collect();
        self.rec.writer_dirtied = self.wrs.iter().map(|w| w.dirtied).collect();
        self.rec
    }

    /// Advances one step.
    pub fn step(&mut self) -> Result<(), SimError> {
        let t = self.now;
        let dt = self.sc.step_ms;

        // 1. Events due now.
        while let Some(e) = self.sc.events.get(self.next_event) {
            if e.at_ms > t {
                break;
            }
            let d = &mut self.devs[e.device];
            match e.action {
                Action::Bandwidth(bw) => d.set_bw(bw, dt),
                a => {
                    if let Action::StrictLimit(on) = a {
                        d.strict = on;
                    }
                    apply(&mut self.dom, BdiId(d.id), a, &self.lim).map_err(|err| SimError {
                        message: format!(
                            "{}:{}: event at {} s on {:?}: {a}: {err}",
                            self.sc.origin,
                            e.line,
                            e.at_ms as f64 / 1000.0,
                            self.sc.devices[e.device].name
                        ),
                    })?;
                }
            }
            self.next_event += 1;
        }

        // 2. The core's period clock.
        self.dom.tick(t);

        // 3. Per-bdi limits from the core.
        let gdirty = self.nr_dirty + self.nr_writeback;
        let mut sum_wb_thresh: u64 = 0;
        for d in self.devs.iter_mut() {
            let l = self.dom.wb_limits(BdiId(d.id), &self.lim, gdirty);
            d.wb_thresh = l.wb_thresh;
            d.wb_bg_thresh = l.wb_bg_thresh;
            sum_wb_thresh = sum_wb_thresh.saturating_add(l.wb_thresh);
            d.n_writers = 0;
            d.throttled = false;
        }

        // 4. Writers: balance_dirty_pages() on the snapshot of t.
        for w in self.wrs.iter() {
            if w.start <= t && t < w.stop {
                self.devs[w.dev].n_writers += 1;
            }
        }
        let limit = self.hard_limit();
        let mut any_throttled = false;
        let mut step_dirtied = 0u64;
        // Writers go one after the other and see the pages granted before
        // them in this step (`gd`, `pend`), so that free-running writers stop
        // at the freerun ceiling as the kernel's polling would stop them.
        let mut gd = gdirty;
        let freerun_ceiling = dirty_freerun_ceiling(self.lim.thresh, self.lim.bg_thresh);
        for w in self.wrs.iter_mut() {
            w.throttled = false;
            if !(w.start <= t && t < w.stop) {
                w.carry = 0;
                continue;
            }
            let d = &mut self.devs[w.dev];
            let wb_dirty = d.dirty + d.writeback + d.pend;
            let dtc = Dtc {
                thresh: self.lim.thresh,
                bg_thresh: self.lim.bg_thresh,
                dirty_limit: limit,
                dirty: gd,
                wb_thresh: d.wb_thresh,
                wb_bg_thresh: d.wb_bg_thresh,
                wb_dirty,
                write_bw: d.est.avg,
                strict_limit: d.strict,
            };
            let grant;
            if dtc.freerun() {
                // Free run up to the ceiling plus one polling interval
                // (dirty_poll_interval()); past it the task would be throttled.
                let (cur, ceil, th) = if d.strict {
                    (
                        wb_dirty,
                        dirty_freerun_ceiling(d.wb_thresh, d.wb_bg_thresh),
                        d.wb_thresh,
                    )
                } else {
                    (gd, freerun_ceiling, self.lim.thresh)
                };
                let room = ceil.saturating_sub(cur) + dirty_poll_interval(cur, th);
                let credit = w.carry + w.rate * dt;
                if credit / 1000 > room {
                    grant = room;
                    w.carry = 0;
                    w.throttled = true;
                } else {
                    grant = credit / 1000;
                    w.carry = credit % 1000;
                }
            } else {
                w.throttled = true;
                let pos_ratio = dtc.position_ratio();
                // dirty_ratelimit ~ write_bw / N for N tasks on the bdi.
                let dirty_ratelimit = d.est.avg / u64::from(d.n_writers.max(1));
                let task_ratelimit = ((u128::from(dirty_ratelimit) * u128::from(pos_ratio))
                    >> RATELIMIT_CALC_SHIFT) as u64;
                let credit = w.carry + w.rate.min(task_ratelimit) * dt;
                // With task_ratelimit 0, the pipe left open for a bdi with
                // almost nothing dirty (wb_stat_error()).
                // Otherwise the step stops where pos_ratio reaches 0 (the hard
                // limit; wb_thresh with strictlimit): the kernel re-evaluates
                // every few dozen pages and would not dirty past it.
                let cap = if task_ratelimit == 0 {
                    WB_STAT_ERROR.saturating_sub(wb_dirty)
                } else if d.strict {
                    limit
                        .saturating_sub(gd)
                        .min(d.wb_thresh.saturating_sub(wb_dirty))
                } else {
                    limit.saturating_sub(gd)
                };
                if credit / 1000 > cap {
                    grant = cap;
                    w.carry = 0;
                } else {
                    grant = credit / 1000;
                    w.carry = credit % 1000;
                }
            }
            w.dirtied += grant;
            d.pend += grant;
            d.throttled |= w.throttled;
            gd += grant;
            step_dirtied += grant;
            any_throttled |= w.throttled;
        }
        // Activity for the Lend policy: pages dirtied, a writer throttled,
        // or writeback in progress (dirty pages below every background
        // threshold are never written back here: no kupdate).
        for d in &self.devs {
            if d.pend > 0 || d.throttled || d.writeback > 0 {
                self.dom.note_active(BdiId(d.id));
            }
        }
        if any_throttled {
            let unused = self.lim.thresh.saturating_sub(sum_wb_thresh);
            self.unused_acc += u128::from(unused) * u128::from(dt);
            self.throttled_ms += dt;
        }

        // Recording of the state at t (limits of t, counts of t).
        if t % self.sc.sample_ms == 0 {
            self.record(t, sum_wb_thresh, any_throttled);
        }

        // 5. Writeback completions, then the flusher.
        let t_end = t + dt;
        let over_bg_global = self.nr_dirty > self.lim.bg_thresh;
        let mut nr_dirty = 0;
        let mut nr_writeback = 0;
        for d in self.devs.iter_mut() {
            // Capacity of the step: bw·dt/1000 pages, the fraction carried
            // in 1/1000 pages (precomputed: no division per step).
            let mut frac = d.carry + d.step_frac;
            let mut cap = d.step_pages;
            if frac >= 1000 {
                frac -= 1000;
                cap += 1;
            }
            let done = cap.min(d.writeback);
            d.carry = if done < d.writeback { frac } else { 0 };
            if done > 0 {
                d.writeback -= done;
                d.written += done;
                self.dom.writeout_inc(BdiId(d.id), done, t_end);
            }
            // wb_over_bg_thresh(), or a throttled writer woke the flusher.
            if over_bg_global || d.dirty > d.wb_bg_thresh || d.throttled {
                let submit = d.dirty.min(d.inflight.saturating_sub(d.writeback));
                d.dirty -= submit;
                d.writeback += submit;
            }
        }
        // 6. The writers' pages become dirty.
        for d in self.devs.iter_mut() {
            d.dirty += d.pend;
            d.dirtied += d.pend;
            d.pend = 0;
            nr_dirty += d.dirty;
            nr_writeback += d.writeback;
            d.peak_pinned = d.peak_pinned.max(d.dirty + d.writeback);
        }
        self.nr_dirty = nr_dirty;
        self.nr_writeback = nr_writeback;
        self.last_step_dirtied = step_dirtied;
        self.max_step_dirtied = self.max_step_dirtied.max(step_dirtied);

        if t_end % BANDWIDTH_INTERVAL_MS == 0 {
            let g = nr_dirty + nr_writeback;
            self.dirty_limit = update_dirty_limit(self.dirty_limit, self.lim.thresh, g);
            for d in self.devs.iter_mut() {
                let busy = d.dirty + d.writeback > 0;
                d.est.update(t_end, d.written, busy);
            }
        }
        let g = nr_dirty + nr_writeback;
        self.peak_dirty = self.peak_dirty.max(g);
        self.peak_over_limit = self
            .peak_over_limit
            .max(g as i64 - self.hard_limit() as i64);

        self.now = t_end;
        self.steps_done += 1;
        if self.done() && self.now % self.sc.sample_ms == 0 {
            // The final state, so that the recording covers [0, duration].
            self.record_final();
        }
        Ok(())
    }

    fn record(&mut self, t: u64, sum_wb_thresh: u64, throttled: bool) {
        self.rec.global.push(GlobalSample {
            t_ms: t,
            thresh: self.lim.thresh,
            bg_thresh: self.lim.bg_thresh,
            hard_limit: self.hard_limit(),
            dirty: self.nr_dirty,
            writeback: self.nr_writeback,
            sum_wb_thresh,
            throttled,
        });
        for d in &self.devs {
            self.rec.devs.push(DevSample {
                wb_thresh: d.wb_thresh,
                wb_bg_thresh: d.wb_bg_thresh,
                dirty: d.dirty,
                writeback: d.writeback,
                written: d.written,
                bw_est: d.est.avg,
                bw: d.bw,
            });
        }
        for w in &self.wrs {
            self.rec.writers.push(WriterSample {
                dirtied: w.dirtied,
                throttled: w.throttled,
            });
        }
    }

    fn record_final(&mut self) {
        let t = self.now;
        let gdirty = self.nr_dirty + self.nr_writeback;
        let mut sum = 0u64;
        let lim = self.lim;
        for d in self.devs.iter_mut() {
            let l = self.dom.wb_limits(BdiId(d.id), &lim, gdirty);
            d.wb_thresh = l.wb_thresh;
            d.wb_bg_thresh = l.wb_bg_thresh;
            sum = sum.saturating_add(l.wb_thresh);
        }
        let throttled = self.wrs.iter().any(|w| w.throttled);
        self.record(t, sum, throttled);
    }
}

/// Runs `sc` under `policy` from start to end.
pub fn run(sc: &Scenario, policy: Policy) -> Result<Recording, SimError> {
    let mut slots = Sim::slots(sc);
    let sim = Sim::new(sc, policy, &mut slots)?;
    sim.run()
}
