//! Scenarios: what the simulated machine has and what happens on it. This is
//! the model the engine runs; [`scenario_file`](super::scenario_file) builds
//! it from TOML (the built-in scenarios are TOML too).
//!
//! Inside the simulator everything is in 4 KiB pages and milliseconds.
//!
//! # Invariants
//!
//! A [`Scenario`] is valid when it leaves its builder: names are unique,
//! every index into [`Scenario::devices`] is in range, `sample_ms` and
//! `duration_ms` are multiples of `step_ms`, events are sorted by time, and
//! every setting passes the core's setters in time order under every policy
//! ([`Scenario::check_settings`]).

use std::fmt;
use std::string::{String, ToString};
use std::vec::Vec;
use std::{format, vec};

use crate::bdi::{Bdi, BdiId};
use crate::domain::{Domain, DomainConfig};
use crate::error::Error;
use crate::global_limits::{domain_dirty_limits, global_dirtyable_memory, DirtyLimits};
use crate::global_limits::{MemInfo, VmDirtyConfig};
use crate::policy::Policy;

pub use crate::consts::PAGES_PER_MIB;
pub use crate::period::DEFAULT_PERIOD_MS;

/// Default simulation step (ms).
pub const DEFAULT_STEP_MS: u64 = 10;
/// Default recording interval (ms).
pub const DEFAULT_SAMPLE_MS: u64 = 100;
/// Default depth of a device's writeback queue, in milliseconds of its bandwidth.
pub const DEFAULT_INFLIGHT_MS: u64 = 100;
/// Smallest writeback queue, in pages (1 MiB).
pub const MIN_INFLIGHT_PAGES: u64 = 256;
/// Default ceiling of an "as fast as allowed" writer: the speed at which a
/// task can copy into the page cache (MiB/s).
pub const DEFAULT_MAX_RATE_MIB_S: f64 = 2048.0;

/// What an event changes on a device.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Action {
    /// New writeback bandwidth in pages/s (0: the device stops answering).
    Bandwidth(u64),
    /// `min_ratio` in percent.
    MinRatio(u32),
    /// `max_ratio` in percent.
    MaxRatio(u32),
    /// `min_ratio_fine` in ppm.
    MinRatioFine(u32),
    /// `max_ratio_fine` in ppm.
    MaxRatioFine(u32),
    /// `min_bytes`.
    MinBytes(u64),
    /// `max_bytes`.
    MaxBytes(u64),
    /// `strict_limit`.
    StrictLimit(bool),
}

impl fmt::Display for Action {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Action::Bandwidth(p) => write!(f, "bandwidth {} MiB/s", fmt_mib(p)),
            Action::MinRatio(p) => write!(f, "min_ratio {p}%"),
            Action::MaxRatio(p) => write!(f, "max_ratio {p}%"),
            Action::MinRatioFine(p) => write!(f, "min_ratio_fine {p} ppm"),
            Action::MaxRatioFine(p) => write!(f, "max_ratio_fine {p} ppm"),
            Action::MinBytes(b) => write!(f, "min_bytes {b}"),
            Action::MaxBytes(b) => write!(f, "max_bytes {b}"),
            Action::StrictLimit(on) => write!(f, "strict_limit {on}"),
        }
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

    /// Applies a setting to bdi `id` through the core's validating setter
    /// (a bandwidth change is the device's, not the core's: nothing to do).
    pub fn apply(self, dom: &mut Domain<'_>, id: BdiId, lim: &DirtyLimits) -> Result<(), Error> {
        match self {
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
}

fn fmt_mib(pages: u64) -> String {
    let mib = pages as f64 / PAGES_PER_MIB as f64;
    if mib.fract() == 0.0 {
        format!("{mib:.0}")
    } else {
        format!("{mib:.2}")
    }
}

/// One device (bdi).
#[derive(Debug, Clone, PartialEq)]
pub struct DeviceSpec {
    /// Unique name.
    pub name: String,
    /// Plot group: devices made from one `count > 1` entry share it and are
    /// drawn as one line (their sum).
    pub group: String,
    /// Writeback bandwidth at the start, pages/s.
    pub bandwidth: u64,
    /// Writeback queue depth in pages: how many pages the flusher keeps under
    /// writeback at most.
    pub inflight: u64,
    /// Settings applied when the device joins, at time 0, in file order.
    pub settings: Vec<Action>,
    /// Line of the device entry in its file (0 for none).
    pub line: usize,
}

/// One writing task.
#[derive(Debug, Clone, PartialEq)]
pub struct WriterSpec {
    /// Unique name.
    pub name: String,
    /// Plot group: the writer entry's name (one entry on a device group
    /// gives one writer per device).
    pub group: String,
    /// Index into [`Scenario::devices`].
    pub device: usize,
    /// Dirtying rate in pages/s; `None` = as fast as allowed.
    pub rate: Option<u64>,
    /// Start time (ms).
    pub start_ms: u64,
    /// Stop time (ms), exclusive; `None` = until the end.
    pub stop_ms: Option<u64>,
}

/// A change at a point in time.
#[derive(Debug, Clone, PartialEq)]
pub struct Event {
    /// When (ms).
    pub at_ms: u64,
    /// Index into [`Scenario::devices`].
    pub device: usize,
    /// What changes.
    pub action: Action,
    /// Short text for plots and tables.
    pub label: String,
    /// Line of the event in its file (0 for none).
    pub line: usize,
}

/// A complete, validated scenario.
#[derive(Debug, Clone, PartialEq)]
pub struct Scenario {
    /// Short name (`[a-z0-9-]`), used for file names.
    pub name: String,
    /// One-line title for plots.
    pub title: String,
    /// Longer description.
    pub description: String,
    /// Where it came from (file path or `built-in`).
    pub origin: String,
    /// Length of the run (ms).
    pub duration_ms: u64,
    /// Simulation step (ms).
    pub step_ms: u64,
    /// Recording interval (ms), a multiple of `step_ms`.
    pub sample_ms: u64,
    /// Proportion period (ms).
    pub period_ms: u64,
    /// Where the periods end (s, increasing), as a recorded kernel's `writeout_period()` ran;
    /// empty: the domain's own clock, one period after the first completion and every
    /// `period_ms` after that. See [`Warp`](crate::sim::Warp).
    pub period_boundaries_s: Vec<f64>,
    /// Memory the dirtyable amount is computed from.
    pub mem: MemInfo,
    /// vm.dirty_* settings.
    pub vm: VmDirtyConfig,
    /// Ceiling of "as fast as allowed" writers, pages/s.
    pub max_rate: u64,
    /// Devices, in file order (a `count = n` entry becomes n devices).
    pub devices: Vec<DeviceSpec>,
    /// Writers, in file order.
    pub writers: Vec<WriterSpec>,
    /// Events, sorted by time (stable: file order within one time).
    pub events: Vec<Event>,
}

impl Scenario {
    /// The scenario's global limits (dirtyable memory is constant in a run).
    pub fn limits(&self) -> DirtyLimits {
        domain_dirty_limits(global_dirtyable_memory(&self.mem), &self.vm, None)
    }

    /// The core configuration the simulator uses for a policy: the policy's
    /// defaults ([`DomainConfig::new`]) with this scenario's period.
    pub fn domain_config(&self, policy: Policy) -> DomainConfig {
        DomainConfig::new(policy).with_period_len(self.period_ms)
    }

    /// Applies every setting of the scenario to a scratch domain, in time
    /// order, under each policy, so that a setting the core rejects is
    /// reported with its line before a run starts.
    pub fn check_settings(&self) -> Result<(), RejectedSetting> {
        let lim = self.limits();
        for p in Policy::ALL {
            let mut slots = vec![Bdi::EMPTY; self.devices.len()];
            let mut dom = Domain::new(&mut slots, self.domain_config(p));
            dom.update_dirty_limit(lim.thresh);
            let mut ids = Vec::with_capacity(self.devices.len());
            for d in &self.devices {
                let id = dom.add_bdi().map_err(|e| RejectedSetting {
                    line: d.line,
                    field: "device".to_string(),
                    message: e.to_string(),
                })?;
                ids.push(id);
                for &a in &d.settings {
                    a.apply(&mut dom, id, &lim).map_err(|e| RejectedSetting {
                        line: d.line,
                        field: format!("device {:?} {}", d.name, a.field()),
                        message: format!("the core rejects {a}: {e}"),
                    })?;
                }
            }
            for e in &self.events {
                e.action
                    .apply(&mut dom, ids[e.device], &lim)
                    .map_err(|err| RejectedSetting {
                        line: e.line,
                        field: format!("event.{}", e.action.field()),
                        message: format!(
                            "the core rejects {} on {:?} at {} s: {err}",
                            e.action,
                            self.devices[e.device].name,
                            e.at_ms as f64 / 1000.0
                        ),
                    })?;
            }
        }
        Ok(())
    }

    /// Number of simulation steps.
    pub fn steps(&self) -> u64 {
        self.duration_ms / self.step_ms
    }

    /// Times (ms) at which something changes: 0, each event, each writer
    /// start and stop inside the run; sorted, without duplicates.
    pub fn change_points(&self) -> Vec<u64> {
        let mut v = vec![0];
        v.extend(self.events.iter().map(|e| e.at_ms));
        for w in &self.writers {
            v.push(w.start_ms);
            if let Some(s) = w.stop_ms {
                v.push(s);
            }
        }
        v.retain(|&t| t < self.duration_ms);
        v.sort_unstable();
        v.dedup();
        v
    }

    /// A label for the change at `t` (ms), for tables and plots.
    pub fn change_label(&self, t: u64) -> String {
        let mut parts: Vec<String> = Vec::new();
        if t == 0 {
            parts.push("start".to_string());
        }
        for e in self.events.iter().filter(|e| e.at_ms == t) {
            parts.push(e.label.clone());
        }
        for w in &self.writers {
            if w.start_ms == t && t != 0 {
                parts.push(format!("{} starts", w.name));
            }
            if w.stop_ms == Some(t) {
                parts.push(format!("{} stops", w.name));
            }
        }
        compress_labels(parts)
    }
}

/// Collapses "x-0 starts, x-1 starts, ..." into "x-* starts (n)".
fn compress_labels(parts: Vec<String>) -> String {
    let mut out: Vec<(String, usize)> = Vec::new();
    for p in parts {
        let key = match p.split_once(' ') {
            Some((head, tail)) => match head.rsplit_once('-') {
                Some((base, idx)) if idx.chars().all(|c| c.is_ascii_digit()) && !idx.is_empty() => {
                    format!("{base}-* {tail}")
                }
                _ => p.clone(),
            },
            None => p.clone(),
        };
        match out.iter_mut().find(|(k, _)| *k == key) {
            Some((_, n)) => *n += 1,
            None => out.push((key, 1)),
        }
    }
    out.into_iter()
        .map(|(k, n)| {
            if n > 1 {
                format!("{k} (×{n})")
            } else {
                k.replace("-* ", " ")
            }
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// A setting the core rejected ([`Scenario::check_settings`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RejectedSetting {
    /// Line of the device or event in its file.
    pub line: usize,
    /// The setting, as `device "name" field` or `event.field`.
    pub field: String,
    /// The core's reason.
    pub message: String,
}
