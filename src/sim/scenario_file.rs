//! The scenario file format: TOML read with serde into the structs below,
//! then checked and turned into a [`Scenario`] by `build`.
//!
//! The format is documented in the [simulator's docs](super) and by the
//! example file `tests/scenarios/example.toml`. Sizes are in MiB, rates in
//! MiB/s and times in seconds in the file.
//!
//! A bad file is rejected with the field and the line named: syntax and type
//! errors come from the TOML parser with the path of the field
//! (`device[1].bandwidth_mib_s`); unknown names (a writer's `device`) and
//! settings the core rejects (a `min_ratio` sum reaching 100%) are reported
//! with the line of the offending value.

use core::ops::Range;
use std::fmt;
use std::format;
use std::string::{String, ToString};
use std::vec::Vec;

use serde::de::{self, Deserializer};
use serde::Deserialize;
use toml::Spanned;

use crate::global_limits::{MemInfo, VmDirtyConfig};

use super::scenario::{
    Action, DeviceSpec, Event, Scenario, WriterSpec, DEFAULT_INFLIGHT_MS, DEFAULT_MAX_RATE_MIB_S,
    DEFAULT_PERIOD_MS, DEFAULT_SAMPLE_MS, DEFAULT_STEP_MS, MIN_INFLIGHT_PAGES, PAGES_PER_MIB,
};

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

impl Scenario {
    /// Parses and validates a scenario from TOML text. `origin` names the
    /// source in error messages.
    pub fn from_toml(text: &str, origin: &str) -> Result<Scenario, ScenarioError> {
        let cx = Ctx { text, origin };
        let file = parse_file(&cx)?;
        build(file, &cx)
    }

    /// Reads a scenario file.
    pub fn from_file(path: &std::path::Path) -> Result<Scenario, ScenarioError> {
        let origin = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|e| {
            Ctx {
                text: "",
                origin: &origin,
            }
            .err(None, None, format!("cannot read the file: {e}"))
        })?;
        Self::from_toml(&text, &origin)
    }
}

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
    #[serde(default)]
    period_boundaries_s: Vec<f64>,
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
    if v > crate::consts::RATIO_FINE_MAX {
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

/// The text being read and its name: what every error needs.
struct Ctx<'a> {
    text: &'a str,
    origin: &'a str,
}

impl Ctx<'_> {
    /// The one way this module makes an error: at the text `at` (its line
    /// and column are named), about `field`.
    fn err(
        &self,
        at: Option<Range<usize>>,
        field: Option<&str>,
        message: impl Into<String>,
    ) -> ScenarioError {
        ScenarioError {
            origin: self.origin.to_string(),
            line_col: at.map(|span| line_col(self.text, span.start)),
            field: field.map(str::to_string),
            message: message.into(),
        }
    }

    /// The line of `span`.
    fn line(&self, span: Range<usize>) -> usize {
        line_col(self.text, span.start).0
    }
}

fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let offset = offset.min(text.len());
    let before = text.get(..offset).unwrap_or("");
    let line = before.matches('\n').count() + 1;
    let col = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
    (line, col)
}

fn parse_file(cx: &Ctx<'_>) -> Result<File, ScenarioError> {
    let toml_err =
        |e: &toml::de::Error, field: Option<&str>| cx.err(e.span(), field, e.message().trim_end());
    let de = toml::Deserializer::parse(cx.text).map_err(|e| toml_err(&e, None))?;
    serde_path_to_error::deserialize(de).map_err(|e| {
        let path = e
            .path()
            .to_string()
            .split('.')
            .filter(|s| !s.starts_with("$__serde_spanned"))
            .collect::<Vec<_>>()
            .join(".");
        let field = (path != "." && !path.is_empty()).then_some(path.as_str());
        toml_err(e.inner(), field)
    })
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

/// Checks a parsed file and builds the scenario: the timing, then memory,
/// vm settings, devices, writers and events, then a dry run of every setting
/// through the core.
fn build(f: File, cx: &Ctx<'_>) -> Result<Scenario, ScenarioError> {
    let name = f.name.get_ref().clone();
    if !valid_name(&name) {
        return Err(cx.err(
            Some(f.name.span()),
            Some("name"),
            format!("{name:?} is not a valid name (letters, digits, '-', '_', '.'; at most 64)"),
        ));
    }
    let step_ms = f.step_ms.unwrap_or(DEFAULT_STEP_MS);
    let sample_ms = f.sample_ms.unwrap_or(DEFAULT_SAMPLE_MS.max(step_ms));
    if sample_ms % step_ms != 0 {
        return Err(cx.err(
            None,
            Some("sample_ms"),
            format!("{sample_ms} ms is not a multiple of step_ms ({step_ms} ms)"),
        ));
    }
    let duration_ms = secs_to_ms(f.duration_s);
    if duration_ms < step_ms {
        return Err(cx.err(
            None,
            Some("duration_s"),
            format!("the run ({duration_ms} ms) is shorter than one step ({step_ms} ms)"),
        ));
    }
    let steps = duration_ms / step_ms;
    if steps > 10_000_000 {
        return Err(cx.err(
            None,
            Some("duration_s"),
            format!("{steps} steps is too many (at most 1e7): raise step_ms"),
        ));
    }
    let b = &f.period_boundaries_s;
    if b.iter().any(|x| !(x.is_finite() && *x > 0.0)) || b.windows(2).any(|w| w[1] <= w[0]) {
        return Err(cx.err(
            None,
            Some("period_boundaries_s"),
            String::from("period boundaries must be positive seconds in increasing order"),
        ));
    }
    let mem = build_memory(&f.memory, cx)?;
    let vm = match &f.vm {
        Some(v) => build_vm(v, cx)?,
        None => VmDirtyConfig::default(),
    };
    let devices = build_devices(&f, cx)?;
    let writers = build_writers(&f.writer, &devices, cx)?;
    let events = build_events(&f.event, &devices, cx)?;
    let max_rate = mib_to_pages(f.max_rate_mib_s.unwrap_or(DEFAULT_MAX_RATE_MIB_S)).max(1);
    let title = f.title.clone().unwrap_or_else(|| name.clone());
    let sc = Scenario {
        name,
        title,
        description: f.description.clone().unwrap_or_default(),
        origin: cx.origin.to_string(),
        duration_ms: steps * step_ms,
        step_ms,
        sample_ms,
        period_ms: f.period_ms.unwrap_or(DEFAULT_PERIOD_MS),
        period_boundaries_s: f.period_boundaries_s.clone(),
        mem,
        vm,
        max_rate,
        devices,
        writers,
        events,
    };
    // A rejected setting is reported now, with its line, rather than in the
    // middle of a run.
    sc.check_settings().map_err(|r| ScenarioError {
        origin: cx.origin.to_string(),
        line_col: Some((r.line, 1)),
        field: Some(r.field),
        message: r.message,
    })?;
    Ok(sc)
}

/// `[memory]`: dirtyable memory directly, or free/reserve/file LRU.
fn build_memory(m: &MemoryFile, cx: &Ctx<'_>) -> Result<MemInfo, ScenarioError> {
    match (
        m.dirtyable_mib,
        m.free_mib.or(m.file_lru_mib).or(m.reserve_mib),
    ) {
        (Some(d), None) => Ok(MemInfo {
            free: mib_to_pages(d).saturating_sub(1),
            totalreserve: 0,
            file_lru: 0,
        }),
        (None, Some(_)) => Ok(MemInfo {
            free: mib_to_pages(m.free_mib.unwrap_or(0.0)),
            totalreserve: mib_to_pages(m.reserve_mib.unwrap_or(0.0)),
            file_lru: mib_to_pages(m.file_lru_mib.unwrap_or(0.0)),
        }),
        _ => {
            let at = cx.text.find("[memory]").unwrap_or(0);
            Err(cx.err(
                Some(at..at),
                Some("memory"),
                "give either dirtyable_mib, or free_mib/reserve_mib/file_lru_mib",
            ))
        }
    }
}

/// `[vm]`, through the core's validating setters.
fn build_vm(v: &VmFile, cx: &Ctx<'_>) -> Result<VmDirtyConfig, ScenarioError> {
    let mut vm = VmDirtyConfig::default();
    let vm_err = |field: &str, e: crate::error::Error| {
        cx.err(None, Some(&format!("vm.{field}")), e.to_string())
    };
    if v.dirty_ratio.is_some() && v.dirty_bytes.is_some() {
        return Err(cx.err(
            None,
            Some("vm.dirty_bytes"),
            "dirty_ratio and dirty_bytes exclude each other",
        ));
    }
    if v.dirty_background_ratio.is_some() && v.dirty_background_bytes.is_some() {
        return Err(cx.err(
            None,
            Some("vm.dirty_background_bytes"),
            "dirty_background_ratio and dirty_background_bytes exclude each other",
        ));
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
    Ok(vm)
}

/// `[[device]]`: a `count = n` entry becomes n devices of one group.
fn build_devices(f: &File, cx: &Ctx<'_>) -> Result<Vec<DeviceSpec>, ScenarioError> {
    let mut devices: Vec<DeviceSpec> = Vec::new();
    let mut groups: Vec<String> = Vec::new();
    for (i, d) in f.device.iter().enumerate() {
        let base = d.name.get_ref().clone();
        let field = format!("device[{i}].name");
        if !valid_name(&base) {
            return Err(cx.err(
                Some(d.name.span()),
                Some(&field),
                format!("{base:?} is not a valid name"),
            ));
        }
        if groups.contains(&base) {
            return Err(cx.err(
                Some(d.name.span()),
                Some(&field),
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
                line: cx.line(d.name.span()),
            });
        }
        groups.push(base);
    }
    if devices.is_empty() {
        return Err(cx.err(
            None,
            Some("device"),
            "a scenario needs at least one [[device]]",
        ));
    }
    if devices.len() > 4096 {
        return Err(cx.err(
            None,
            Some("device"),
            format!("{} devices is too many (at most 4096)", devices.len()),
        ));
    }
    Ok(devices)
}

/// Indices of the devices of group `name` (a device alone is its own group).
fn group_members(devices: &[DeviceSpec], name: &str) -> Vec<usize> {
    devices
        .iter()
        .enumerate()
        .filter(|(_, d)| d.group == name)
        .map(|(i, _)| i)
        .collect()
}

/// `[[writer]]`: a writer on a device group becomes one writer per member.
fn build_writers(
    entries: &[WriterFile],
    devices: &[DeviceSpec],
    cx: &Ctx<'_>,
) -> Result<Vec<WriterSpec>, ScenarioError> {
    let mut writers: Vec<WriterSpec> = Vec::new();
    for (i, w) in entries.iter().enumerate() {
        let base = w.name.get_ref().clone();
        let name_field = format!("writer[{i}].name");
        if !valid_name(&base) {
            return Err(cx.err(
                Some(w.name.span()),
                Some(&name_field),
                format!("{base:?} is not a valid name"),
            ));
        }
        let members = group_members(devices, w.device.get_ref());
        if members.is_empty() {
            return Err(cx.err(
                Some(w.device.span()),
                Some(&format!("writer[{i}].device")),
                format!("no device named {:?}", w.device.get_ref()),
            ));
        }
        let start_ms = w.start_s.map_or(0, secs_to_ms);
        let stop_ms = w.stop_s.as_ref().map(|s| secs_to_ms(*s.get_ref()));
        if let (Some(stop), Some(span)) = (stop_ms, w.stop_s.as_ref().map(|s| s.span())) {
            if stop <= start_ms {
                return Err(cx.err(
                    Some(span),
                    Some(&format!("writer[{i}].stop_s")),
                    "stop_s must be after start_s",
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
                    Some(w.name.span()),
                    Some(&name_field),
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
    Ok(writers)
}

/// `[[event]]`: one event per member device and per setting, sorted by time.
fn build_events(
    entries: &[EventFile],
    devices: &[DeviceSpec],
    cx: &Ctx<'_>,
) -> Result<Vec<Event>, ScenarioError> {
    let mut events: Vec<Event> = Vec::new();
    for (i, e) in entries.iter().enumerate() {
        let e_span = e.device.span();
        let members = group_members(devices, e.device.get_ref());
        if members.is_empty() {
            return Err(cx.err(
                Some(e_span),
                Some(&format!("event[{i}].device")),
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
                Some(e_span),
                Some(&format!("event[{i}]")),
                "an event must change something: bandwidth_mib_s, min_ratio, max_ratio, \
                 min_ratio_fine, max_ratio_fine, min_bytes, max_bytes or strict_limit",
            ));
        }
        let at_ms = secs_to_ms(e.at_s);
        let line = cx.line(e_span);
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
    Ok(events)
}
