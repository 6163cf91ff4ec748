//! Scenarios: what the simulated machine has and what happens on it, built in
//! or read from a TOML file.
//!
//! The TOML format is documented in the [module docs](super) and by the
//! example file `tests/scenarios/example.toml`. Sizes are in MiB, rates in
//! MiB/s and times in seconds in the file; inside the simulator everything is
//! in 4 KiB pages and milliseconds.
//!
//! A bad file is rejected with the field and the line named: syntax and type
//! errors come from the TOML parser with the path of the field
//! (`device[1].bandwidth_mib_s`); unknown names (a writer's `device`) and
//! settings the core rejects (a `min_ratio` sum reaching 100%) are reported
//! with the line of the offending value.

use std::fmt;
use std::string::{String, ToString};
use std::vec::Vec;
use std::{format, vec};

use serde::de::{self, Deserializer};
use serde::Deserialize;
use toml::Spanned;

use crate::global_limits::{MemInfo, VmDirtyConfig};
use crate::PAGE_SIZE;

/// Pages per MiB.
pub const PAGES_PER_MIB: u64 = (1 << 20) / PAGE_SIZE;

/// Default simulation step (ms).
pub const DEFAULT_STEP_MS: u64 = 10;
/// Default recording interval (ms).
pub const DEFAULT_SAMPLE_MS: u64 = 100;
/// Default proportion period (ms), the kernel's `VM_COMPLETIONS_PERIOD_LEN`.
pub const DEFAULT_PERIOD_MS: u64 = 3000;
/// Default depth of a device's writeback queue, in milliseconds of its bandwidth.
pub const DEFAULT_INFLIGHT_MS: u64 = 100;
/// Smallest writeback queue, in pages (1 MiB).
pub const MIN_INFLIGHT_PAGES: u64 = 256;
/// Default ceiling of an "as fast as allowed" writer: the speed at which a
/// task can copy into the page cache (MiB/s).
pub const DEFAULT_MAX_RATE_MIB_S: f64 = 2048.0;

/// A scenario file could not be used. `Display` names the file, the line and
/// the field.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScenarioError {
    /// The file (or built-in scenario) name.
    pub origin: String,
    /// 1-based line and column of the offending text, when known.
    pub line_col: Option<(usize, usize)>,
    /// The field, as a path such as `writer[0].device`, when known.
    pub field: Option<String>,
    /// What is wrong.
    pub message: String,
}

impl fmt::Display for ScenarioError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.origin)?;
        if let Some((l, c)) = self.line_col {
            write!(f, ":{l}:{c}")?;
        }
        f.write_str(": ")?;
        if let Some(field) = &self.field {
            write!(f, "field `{field}`: ")?;
        }
        f.write_str(&self.message)
    }
}

impl std::error::Error for ScenarioError {}

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
    /// Parses and validates a scenario from TOML text. `origin` names the
    /// source in error messages.
    pub fn from_toml(text: &str, origin: &str) -> Result<Scenario, ScenarioError> {
        let file = parse_file(text, origin)?;
        build(file, text, origin)
    }

    /// Reads a scenario file.
    pub fn from_file(path: &std::path::Path) -> Result<Scenario, ScenarioError> {
        let origin = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|e| ScenarioError {
            origin: origin.clone(),
            line_col: None,
            field: None,
            message: format!("cannot read the file: {e}"),
        })?;
        Self::from_toml(&text, &origin)
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

// ---------------------------------------------------------------------------
// The file format (serde).

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    name: Spanned<String>,
    #[serde(default)]
    title: Option<String>,
    #[serde(default)]
    description: Option<String>,
    #[serde(deserialize_with = "positive_secs")]
    duration_s: f64,
    #[serde(default, deserialize_with = "opt_positive_u64")]
    step_ms: Option<u64>,
    #[serde(default, deserialize_with = "opt_positive_u64")]
    sample_ms: Option<u64>,
    #[serde(default, deserialize_with = "opt_positive_u64")]
    period_ms: Option<u64>,
    #[serde(default, deserialize_with = "opt_rate")]
    max_rate_mib_s: Option<f64>,
    memory: MemoryFile,
    #[serde(default)]
    vm: Option<VmFile>,
    #[serde(default)]
    device: Vec<DeviceFile>,
    #[serde(default)]
    writer: Vec<WriterFile>,
    #[serde(default)]
    event: Vec<EventFile>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct MemoryFile {
    #[serde(default, deserialize_with = "opt_mib")]
    dirtyable_mib: Option<f64>,
    #[serde(default, deserialize_with = "opt_mib")]
    free_mib: Option<f64>,
    #[serde(default, deserialize_with = "opt_mib")]
    reserve_mib: Option<f64>,
    #[serde(default, deserialize_with = "opt_mib")]
    file_lru_mib: Option<f64>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct VmFile {
    #[serde(default, deserialize_with = "opt_percent")]
    dirty_ratio: Option<u32>,
    #[serde(default)]
    dirty_bytes: Option<u64>,
    #[serde(default, deserialize_with = "opt_percent")]
    dirty_background_ratio: Option<u32>,
    #[serde(default)]
    dirty_background_bytes: Option<u64>,
}

/// Settings that a device entry and an event share.
#[derive(Default)]
struct Settings {
    min_ratio: Option<u32>,
    max_ratio: Option<u32>,
    min_ratio_fine: Option<u32>,
    max_ratio_fine: Option<u32>,
    min_bytes: Option<u64>,
    max_bytes: Option<u64>,
    strict_limit: Option<bool>,
}

impl Settings {
    fn actions(&self) -> Vec<Action> {
        let mut v = Vec::new();
        // Order: floors before caps is not always valid (min > max); apply
        // caps that raise first, the core rejects an inconsistent final state.
        if let Some(p) = self.max_ratio {
            v.push(Action::MaxRatio(p));
        }
        if let Some(p) = self.max_ratio_fine {
            v.push(Action::MaxRatioFine(p));
        }
        if let Some(b) = self.max_bytes {
            v.push(Action::MaxBytes(b));
        }
        if let Some(p) = self.min_ratio {
            v.push(Action::MinRatio(p));
        }
        if let Some(p) = self.min_ratio_fine {
            v.push(Action::MinRatioFine(p));
        }
        if let Some(b) = self.min_bytes {
            v.push(Action::MinBytes(b));
        }
        if let Some(s) = self.strict_limit {
            v.push(Action::StrictLimit(s));
        }
        v
    }
}

macro_rules! settings_of {
    ($x:expr) => {
        Settings {
            min_ratio: $x.min_ratio,
            max_ratio: $x.max_ratio,
            min_ratio_fine: $x.min_ratio_fine,
            max_ratio_fine: $x.max_ratio_fine,
            min_bytes: $x.min_bytes,
            max_bytes: $x.max_bytes,
            strict_limit: $x.strict_limit,
        }
    };
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct DeviceFile {
    name: Spanned<String>,
    #[serde(deserialize_with = "rate")]
    bandwidth_mib_s: f64,
    #[serde(default, deserialize_with = "opt_count")]
    count: Option<u32>,
    #[serde(default, deserialize_with = "opt_positive_u64")]
    inflight_ms: Option<u64>,
    #[serde(default, deserialize_with = "opt_percent")]
    min_ratio: Option<u32>,
    #[serde(default, deserialize_with = "opt_percent")]
    max_ratio: Option<u32>,
    #[serde(default, deserialize_with = "opt_ppm")]
    min_ratio_fine: Option<u32>,
    #[serde(default, deserialize_with = "opt_ppm")]
    max_ratio_fine: Option<u32>,
    #[serde(default)]
    min_bytes: Option<u64>,
    #[serde(default)]
    max_bytes: Option<u64>,
    #[serde(default)]
    strict_limit: Option<bool>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct WriterFile {
    name: Spanned<String>,
    device: Spanned<String>,
    #[serde(default, deserialize_with = "opt_rate")]
    rate_mib_s: Option<f64>,
    #[serde(default, deserialize_with = "opt_secs")]
    start_s: Option<f64>,
    #[serde(default, deserialize_with = "opt_spanned_secs")]
    stop_s: Option<Spanned<f64>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct EventFile {
    #[serde(deserialize_with = "secs")]
    at_s: f64,
    device: Spanned<String>,
    #[serde(default)]
    label: Option<String>,
    #[serde(default, deserialize_with = "opt_rate")]
    bandwidth_mib_s: Option<f64>,
    #[serde(default, deserialize_with = "opt_percent")]
    min_ratio: Option<u32>,
    #[serde(default, deserialize_with = "opt_percent")]
    max_ratio: Option<u32>,
    #[serde(default, deserialize_with = "opt_ppm")]
    min_ratio_fine: Option<u32>,
    #[serde(default, deserialize_with = "opt_ppm")]
    max_ratio_fine: Option<u32>,
    #[serde(default)]
    min_bytes: Option<u64>,
    #[serde(default)]
    max_bytes: Option<u64>,
    #[serde(default)]
    strict_limit: Option<bool>,
}

// Value checks, run by the deserializer so that the TOML error points at the value.

fn finite_nonneg<E: de::Error>(v: f64, what: &str) -> Result<f64, E> {
    if !v.is_finite() || v < 0.0 {
        return Err(E::custom(format!(
            "{what} must be a finite number >= 0, got {v}"
        )));
    }
    Ok(v)
}

fn secs<'de, D: Deserializer<'de>>(d: D) -> Result<f64, D::Error> {
    let v = f64::deserialize(d)?;
    let v = finite_nonneg(v, "a time in seconds")?;
    if v > 1.0e7 {
        return Err(de::Error::custom(format!(
            "{v} s is too long (at most 1e7 s)"
        )));
    }
    Ok(v)
}

fn positive_secs<'de, D: Deserializer<'de>>(d: D) -> Result<f64, D::Error> {
    let v = secs(d)?;
    if v == 0.0 {
        return Err(de::Error::custom("the duration must be positive"));
    }
    Ok(v)
}

fn opt_secs<'de, D: Deserializer<'de>>(d: D) -> Result<Option<f64>, D::Error> {
    secs(d).map(Some)
}

fn opt_spanned_secs<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Spanned<f64>>, D::Error> {
    let v = Spanned::<f64>::deserialize(d)?;
    finite_nonneg::<D::Error>(*v.get_ref(), "a time in seconds")?;
    Ok(Some(v))
}

fn rate<'de, D: Deserializer<'de>>(d: D) -> Result<f64, D::Error> {
    let v = f64::deserialize(d)?;
    let v = finite_nonneg(v, "a rate in MiB/s")?;
    if v > 1.0e7 {
        return Err(de::Error::custom(format!(
            "{v} MiB/s is too fast (at most 1e7)"
        )));
    }
    Ok(v)
}

fn opt_rate<'de, D: Deserializer<'de>>(d: D) -> Result<Option<f64>, D::Error> {
    rate(d).map(Some)
}

fn opt_mib<'de, D: Deserializer<'de>>(d: D) -> Result<Option<f64>, D::Error> {
    let v = f64::deserialize(d)?;
    let v = finite_nonneg(v, "a size in MiB")?;
    if v > 1.0e9 {
        return Err(de::Error::custom(format!(
            "{v} MiB is too large (at most 1e9)"
        )));
    }
    Ok(Some(v))
}

fn opt_percent<'de, D: Deserializer<'de>>(d: D) -> Result<Option<u32>, D::Error> {
    let v = u32::deserialize(d)?;
    if v > 100 {
        return Err(de::Error::custom(format!(
            "{v} is not a percentage (0..=100)"
        )));
    }
    Ok(Some(v))
}

fn opt_ppm<'de, D: Deserializer<'de>>(d: D) -> Result<Option<u32>, D::Error> {
    let v = u32::deserialize(d)?;
    if v > crate::RATIO_FINE_MAX {
        return Err(de::Error::custom(format!(
            "{v} is not in parts per million (0..=1000000)"
        )));
    }
    Ok(Some(v))
}

fn opt_positive_u64<'de, D: Deserializer<'de>>(d: D) -> Result<Option<u64>, D::Error> {
    let v = u64::deserialize(d)?;
    if v == 0 || v > 1_000_000_000 {
        return Err(de::Error::custom(format!("{v} is out of range (1..=1e9)")));
    }
    Ok(Some(v))
}

fn opt_count<'de, D: Deserializer<'de>>(d: D) -> Result<Option<u32>, D::Error> {
    let v = u32::deserialize(d)?;
    if v == 0 || v > 10_000 {
        return Err(de::Error::custom(format!(
            "count {v} is out of range (1..=10000)"
        )));
    }
    Ok(Some(v))
}

// ---------------------------------------------------------------------------
// Parsing and validation.

fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let offset = offset.min(text.len());
    let before = text.get(..offset).unwrap_or("");
    let line = before.matches('\n').count() + 1;
    let col = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
    (line, col)
}

fn parse_file(text: &str, origin: &str) -> Result<File, ScenarioError> {
    let de = toml::Deserializer::parse(text).map_err(|e| toml_error(&e, None, text, origin))?;
    serde_path_to_error::deserialize(de).map_err(|e| {
        let path = e
            .path()
            .to_string()
            .split('.')
            .filter(|s| !s.starts_with("$__serde_spanned"))
            .collect::<Vec<_>>()
            .join(".");
        let field = (path != "." && !path.is_empty()).then_some(path);
        toml_error(e.inner(), field, text, origin)
    })
}

fn toml_error(
    e: &toml::de::Error,
    field: Option<String>,
    text: &str,
    origin: &str,
) -> ScenarioError {
    ScenarioError {
        origin: origin.to_string(),
        line_col: e.span().map(|s| line_col(text, s.start)),
        field,
        message: e.message().trim_end().to_string(),
    }
}

struct Ctx<'a> {
    text: &'a str,
    origin: &'a str,
}

impl Ctx<'_> {
    fn err(&self, span: core::ops::Range<usize>, field: String, message: String) -> ScenarioError {
        ScenarioError {
            origin: self.origin.to_string(),
            line_col: Some(line_col(self.text, span.start)),
            field: Some(field),
            message,
        }
    }
}

fn mib_to_pages(mib: f64) -> u64 {
    // Inputs are checked finite, >= 0 and bounded, so the cast is exact enough.
    (mib * PAGES_PER_MIB as f64).round() as u64
}

fn secs_to_ms(s: f64) -> u64 {
    (s * 1000.0).round() as u64
}

fn valid_name(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 64
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_' || c == '.')
}

fn build(f: File, text: &str, origin: &str) -> Result<Scenario, ScenarioError> {
    let cx = Ctx { text, origin };
    let name = f.name.get_ref().clone();
    if !valid_name(&name) {
        return Err(cx.err(
            f.name.span(),
            "name".into(),
            format!("{name:?} is not a valid name (letters, digits, '-', '_', '.'; at most 64)"),
        ));
    }
    let step_ms = f.step_ms.unwrap_or(DEFAULT_STEP_MS);
    let sample_ms = f.sample_ms.unwrap_or(DEFAULT_SAMPLE_MS.max(step_ms));
    let whole = |field: &str, v: u64| -> Result<(), ScenarioError> {
        if v % step_ms != 0 {
            return Err(ScenarioError {
                origin: origin.to_string(),
                line_col: None,
                field: Some(field.to_string()),
                message: format!("{v} ms is not a multiple of step_ms ({step_ms} ms)"),
            });
        }
        Ok(())
    };
    whole("sample_ms", sample_ms)?;
    let duration_ms = secs_to_ms(f.duration_s);
    if duration_ms < step_ms {
        return Err(ScenarioError {
            origin: origin.to_string(),
            line_col: None,
            field: Some("duration_s".into()),
            message: format!("the run ({duration_ms} ms) is shorter than one step ({step_ms} ms)"),
        });
    }
    let steps = duration_ms / step_ms;
    if steps > 10_000_000 {
        return Err(ScenarioError {
            origin: origin.to_string(),
            line_col: None,
            field: Some("duration_s".into()),
            message: format!("{steps} steps is too many (at most 1e7): raise step_ms"),
        });
    }

    // Memory.
    let m = &f.memory;
    let mem = match (
        m.dirtyable_mib,
        m.free_mib.or(m.file_lru_mib).or(m.reserve_mib),
    ) {
        (Some(d), None) => MemInfo {
            free: mib_to_pages(d).saturating_sub(1),
            totalreserve: 0,
            file_lru: 0,
        },
        (None, Some(_)) => MemInfo {
            free: mib_to_pages(m.free_mib.unwrap_or(0.0)),
            totalreserve: mib_to_pages(m.reserve_mib.unwrap_or(0.0)),
            file_lru: mib_to_pages(m.file_lru_mib.unwrap_or(0.0)),
        },
        _ => {
            let at = text.find("[memory]").unwrap_or(0);
            return Err(cx.err(
                at..at,
                "memory".into(),
                "give either dirtyable_mib, or free_mib/reserve_mib/file_lru_mib".into(),
            ));
        }
    };

    // vm settings, through the core's validating setters.
    let mut vm = VmDirtyConfig::default();
    if let Some(v) = &f.vm {
        let vm_err = |field: &str, e: crate::error::Error| ScenarioError {
            origin: origin.to_string(),
            line_col: None,
            field: Some(format!("vm.{field}")),
            message: e.to_string(),
        };
        if v.dirty_ratio.is_some() && v.dirty_bytes.is_some() {
            return Err(ScenarioError {
                origin: origin.to_string(),
                line_col: None,
                field: Some("vm.dirty_bytes".into()),
                message: "dirty_ratio and dirty_bytes exclude each other".into(),
            });
        }
        if v.dirty_background_ratio.is_some() && v.dirty_background_bytes.is_some() {
            return Err(ScenarioError {
                origin: origin.to_string(),
                line_col: None,
                field: Some("vm.dirty_background_bytes".into()),
                message: "dirty_background_ratio and dirty_background_bytes exclude each other"
                    .into(),
            });
        }
        if let Some(r) = v.dirty_ratio {
            vm.set_dirty_ratio(r)
                .map_err(|e| vm_err("dirty_ratio", e))?;
        }
        if let Some(b) = v.dirty_bytes {
            vm.set_dirty_bytes(b)
                .map_err(|e| vm_err("dirty_bytes", e))?;
        }
        if let Some(r) = v.dirty_background_ratio {
            vm.set_dirty_background_ratio(r)
                .map_err(|e| vm_err("dirty_background_ratio", e))?;
        }
        if let Some(b) = v.dirty_background_bytes {
            vm.set_dirty_background_bytes(b)
                .map_err(|e| vm_err("dirty_background_bytes", e))?;
        }
    }

    // Devices.
    let mut devices: Vec<DeviceSpec> = Vec::new();
    let mut groups: Vec<String> = Vec::new();
    for (i, d) in f.device.iter().enumerate() {
        let d_span = d.name.span();
        let base = d.name.get_ref().clone();
        let field = format!("device[{i}].name");
        if !valid_name(&base) {
            return Err(cx.err(
                d.name.span(),
                field,
                format!("{base:?} is not a valid name"),
            ));
        }
        if groups.contains(&base) {
            return Err(cx.err(
                d.name.span(),
                field,
                format!("a device named {base:?} already exists"),
            ));
        }
        let count = d.count.unwrap_or(1);
        let bandwidth = mib_to_pages(d.bandwidth_mib_s);
        let inflight_ms = d.inflight_ms.unwrap_or(DEFAULT_INFLIGHT_MS);
        // The queue depth follows the fastest bandwidth the device ever has.
        let mut peak_bw = bandwidth;
        for e in &f.event {
            if *e.device.get_ref() == base {
                if let Some(b) = e.bandwidth_mib_s {
                    peak_bw = peak_bw.max(mib_to_pages(b));
                }
            }
        }
        let inflight = (peak_bw.saturating_mul(inflight_ms) / 1000).max(MIN_INFLIGHT_PAGES);
        for k in 0..count {
            let name = if count == 1 {
                base.clone()
            } else {
                format!("{base}-{k}")
            };
            devices.push(DeviceSpec {
                name,
                group: base.clone(),
                bandwidth,
                inflight,
                settings: settings_of!(d).actions(),
                line: line_col(text, d_span.start).0,
            });
        }
        groups.push(base);
    }
    if devices.is_empty() {
        return Err(ScenarioError {
            origin: origin.to_string(),
            line_col: None,
            field: Some("device".into()),
            message: "a scenario needs at least one [[device]]".into(),
        });
    }
    if devices.len() > 4096 {
        return Err(ScenarioError {
            origin: origin.to_string(),
            line_col: None,
            field: Some("device".into()),
            message: format!("{} devices is too many (at most 4096)", devices.len()),
        });
    }
    let group_members = |name: &str| -> Vec<usize> {
        devices
            .iter()
            .enumerate()
            .filter(|(_, d)| d.group == name)
            .map(|(i, _)| i)
            .collect()
    };

    // Writers.
    let mut writers: Vec<WriterSpec> = Vec::new();
    for (i, w) in f.writer.iter().enumerate() {
        let base = w.name.get_ref().clone();
        if !valid_name(&base) {
            return Err(cx.err(
                w.name.span(),
                format!("writer[{i}].name"),
                format!("{base:?} is not a valid name"),
            ));
        }
        let members = group_members(w.device.get_ref());
        if members.is_empty() {
            return Err(cx.err(
                w.device.span(),
                format!("writer[{i}].device"),
                format!("no device named {:?}", w.device.get_ref()),
            ));
        }
        let start_ms = w.start_s.map_or(0, secs_to_ms);
        let stop_ms = w.stop_s.as_ref().map(|s| secs_to_ms(*s.get_ref()));
        if let (Some(stop), Some(span)) = (stop_ms, w.stop_s.as_ref().map(|s| s.span())) {
            if stop <= start_ms {
                return Err(cx.err(
                    span,
                    format!("writer[{i}].stop_s"),
                    "stop_s must be after start_s".into(),
                ));
            }
        }
        let rate = w.rate_mib_s.map(mib_to_pages);
        let n = members.len();
        for (k, dev) in members.into_iter().enumerate() {
            let name = if n == 1 {
                base.clone()
            } else {
                format!("{base}-{k}")
            };
            if writers.iter().any(|x| x.name == name) {
                return Err(cx.err(
                    w.name.span(),
                    format!("writer[{i}].name"),
                    format!("a writer named {name:?} already exists"),
                ));
            }
            writers.push(WriterSpec {
                name,
                group: base.clone(),
                device: dev,
                rate,
                start_ms,
                stop_ms,
            });
        }
    }

    // Events.
    let mut events: Vec<Event> = Vec::new();
    for (i, e) in f.event.iter().enumerate() {
        let e_span = e.device.span();
        let members = group_members(e.device.get_ref());
        if members.is_empty() {
            return Err(cx.err(
                e.device.span(),
                format!("event[{i}].device"),
                format!("no device named {:?}", e.device.get_ref()),
            ));
        }
        let mut actions = Vec::new();
        if let Some(b) = e.bandwidth_mib_s {
            actions.push(Action::Bandwidth(mib_to_pages(b)));
        }
        actions.extend(settings_of!(e).actions());
        if actions.is_empty() {
            return Err(cx.err(
                e_span,
                format!("event[{i}]"),
                "an event must change something: bandwidth_mib_s, min_ratio, max_ratio, \
                 min_ratio_fine, max_ratio_fine, min_bytes, max_bytes or strict_limit"
                    .into(),
            ));
        }
        let at_ms = secs_to_ms(e.at_s);
        let line = line_col(text, e_span.start).0;
        let what = actions
            .iter()
            .map(|a| a.to_string())
            .collect::<Vec<_>>()
            .join(", ");
        let label = e
            .label
            .clone()
            .unwrap_or_else(|| format!("{}: {what}", e.device.get_ref()));
        for &dev in &members {
            for &action in &actions {
                events.push(Event {
                    at_ms,
                    device: dev,
                    action,
                    label: label.clone(),
                    line,
                });
            }
        }
    }
    events.sort_by_key(|e| e.at_ms);

    let max_rate = mib_to_pages(f.max_rate_mib_s.unwrap_or(DEFAULT_MAX_RATE_MIB_S)).max(1);
    let title = f.title.clone().unwrap_or_else(|| name.clone());
    let sc = Scenario {
        name,
        title,
        description: f.description.clone().unwrap_or_default(),
        origin: origin.to_string(),
        duration_ms: steps * step_ms,
        step_ms,
        sample_ms,
        period_ms: f.period_ms.unwrap_or(DEFAULT_PERIOD_MS),
        mem,
        vm,
        max_rate,
        devices,
        writers,
        events,
    };
    // Dry run of every setting through the core, so that a rejected one is
    // reported now, with its line, rather than in the middle of a run.
    crate::sim::engine::check_settings(&sc).map_err(|(line, field, msg)| ScenarioError {
        origin: origin.to_string(),
        line_col: line.map(|l| (l, 1)),
        field: Some(field),
        message: msg,
    })?;
    Ok(sc)
}
