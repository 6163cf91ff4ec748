//! Figures of a scenario's runs, with `plotters`, as SVG and PNG.
//!
//! Per scenario:
//! - `<name>-thresh`: `wb_thresh` (thick) and dirty + writeback (thin) per
//!   device over time, one panel per policy on shared axes;
//! - `<name>-unused`: the unused share `(T − Σ wb_thresh)/T` over time, one
//!   line per policy;
//! - `<name>-throughput`: each writer's dirtying rate over time (1 s
//!   average), one panel per policy on shared axes.
//!
//! Devices (and writers) made from one `count = n` entry are drawn as one
//! line, their sum. Text needs a TrueType font, loaded at run time (see
//! [`init_font`]).

use std::format;
use std::path::{Path, PathBuf};
use std::string::{String, ToString};
use std::sync::OnceLock;
use std::vec::Vec;

use plotters::coord::Shift;
use plotters::prelude::*;

use crate::policy::Policy;

use super::record::{Metrics, Recording};
use super::scenario::{Scenario, PAGES_PER_MIB};

/// Font files tried in order after `$DIRTYLIMIT_FONT`: Debian's
/// fonts-dejavu-core, then other common locations.
pub const FONT_CANDIDATES: [&str; 5] = [
    "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf",
    "/usr/share/fonts/TTF/DejaVuSans.ttf",
    "/usr/share/fonts/dejavu/DejaVuSans.ttf",
    "/usr/share/fonts/truetype/liberation/LiberationSans-Regular.ttf",
    "/usr/share/fonts/truetype/freefont/FreeSans.ttf",
];

/// The font family plot text is drawn in; [`init_font`] registers it.
pub const FONT_FAMILY: &str = "sans-serif";

static FONT_LOADED: OnceLock<Result<PathBuf, String>> = OnceLock::new();

/// Loads a TrueType font for plot text, once: `$DIRTYLIMIT_FONT` if set, else
/// the first of [`FONT_CANDIDATES`] that exists. The error says how to get one.
pub fn init_font() -> Result<PathBuf, String> {
    FONT_LOADED
        .get_or_init(|| {
            let mut tried = Vec::new();
            let env = std::env::var_os("DIRTYLIMIT_FONT").map(PathBuf::from);
            let candidates = env.into_iter().chain(FONT_CANDIDATES.iter().map(PathBuf::from));
            for path in candidates {
                match std::fs::read(&path) {
                    Ok(bytes) => {
                        // plotters keeps registered fonts for the whole process.
                        let bytes: &'static [u8] = Vec::leak(bytes);
                        for style in [FontStyle::Normal, FontStyle::Bold] {
                            plotters::style::register_font(FONT_FAMILY, style, bytes)
                                .map_err(|_| format!("{}: not a usable TrueType font", path.display()))?;
                        }
                        return Ok(path);
                    }
                    Err(e) => tried.push(format!("{}: {e}", path.display())),
                }
            }
            Err(format!(
                "no font for plot text; install Debian's fonts-dejavu-core \
                 (apt-get install fonts-dejavu-core) or set DIRTYLIMIT_FONT to a .ttf file. Tried: {}",
                tried.join("; ")
            ))
        })
        .clone()
}

/// Colours of lines (tab10).
const PALETTE: [RGBColor; 10] = [
    RGBColor(31, 119, 180),
    RGBColor(255, 127, 14),
    RGBColor(44, 160, 44),
    RGBColor(214, 39, 40),
    RGBColor(148, 103, 189),
    RGBColor(140, 86, 75),
    RGBColor(227, 119, 194),
    RGBColor(127, 127, 127),
    RGBColor(188, 189, 34),
    RGBColor(23, 190, 207),
];

const POLICY_COLORS: [RGBColor; 4] = [
    RGBColor(214, 39, 40),
    RGBColor(31, 119, 180),
    RGBColor(44, 160, 44),
    RGBColor(148, 103, 189),
];

fn color(i: usize) -> RGBColor {
    PALETTE[i % PALETTE.len()]
}

fn mib(pages: u64) -> f64 {
    pages as f64 / PAGES_PER_MIB as f64
}

/// Groups in first-appearance order, each with its members' indices.
fn groups<'a>(names: impl Iterator<Item = &'a str>) -> Vec<(String, Vec<usize>)> {
    let mut out: Vec<(String, Vec<usize>)> = Vec::new();
    for (i, g) in names.enumerate() {
        match out.iter_mut().find(|(n, _)| n == g) {
            Some((_, v)) => v.push(i),
            None => out.push((g.to_string(), std::vec![i])),
        }
    }
    out
}

fn group_label(name: &str, n: usize) -> String {
    if n > 1 {
        format!("{name} ×{n} (sum)")
    } else {
        name.to_string()
    }
}

type DrawResult = Result<(), String>;

fn err<E: std::fmt::Debug>(e: E) -> String {
    format!("plotting failed: {e:?}")
}

/// Writes every figure of one scenario into `out` (SVG and PNG) and returns
/// the paths written.
pub fn plot_scenario(
    sc: &Scenario,
    runs: &[Recording],
    metrics: &[Metrics],
    out: &Path,
) -> Result<Vec<PathBuf>, String> {
    init_font()?;
    std::fs::create_dir_all(out).map_err(|e| format!("{}: {e}", out.display()))?;
    let mut written = Vec::new();
    let n = runs.len().max(1) as u32;
    let panels = (1200, 110 + 290 * n);
    macro_rules! both {
        ($stem:expr, $size:expr, $f:ident $(, $arg:expr)*) => {{
            let svg = out.join(format!("{}-{}.svg", sc.name, $stem));
            let png = out.join(format!("{}-{}.png", sc.name, $stem));
            {
                let root = SVGBackend::new(&svg, $size).into_drawing_area();
                $f(&root $(, $arg)*)?;
                root.present().map_err(err)?;
            }
            {
                let root = BitMapBackend::new(&png, $size).into_drawing_area();
                $f(&root $(, $arg)*)?;
                root.present().map_err(err)?;
            }
            written.push(svg);
            written.push(png);
        }};
    }
    both!("thresh", panels, draw_thresh, sc, runs);
    both!("unused", (1200, 520), draw_unused, sc, runs, metrics);
    both!("throughput", panels, draw_throughput, sc, runs);
    Ok(written)
}

fn event_times(sc: &Scenario) -> Vec<f64> {
    sc.change_points()
        .into_iter()
        .filter(|&t| t > 0)
        .map(|t| t as f64 / 1000.0)
        .collect()
}

/// One legend entry: label, colour, line width, dashed.
struct Key {
    label: String,
    color: RGBAColor,
    width: u32,
    dashed: bool,
}

impl Key {
    fn new(label: impl Into<String>, color: RGBAColor, width: u32) -> Self {
        Key {
            label: label.into(),
            color,
            width,
            dashed: false,
        }
    }
}

/// Title, subtitle and a legend shared by all panels; returns the area left.
fn header<DB: DrawingBackend>(
    root: &DrawingArea<DB, Shift>,
    title: &str,
    sub: &str,
    keys: &[Key],
) -> Result<DrawingArea<DB, Shift>, String> {
    root.fill(&WHITE).map_err(err)?;
    let (w, _) = root.dim_in_pixel();
    let font = TextStyle::from((FONT_FAMILY, 14).into_font()).color(&BLACK);
    // Lay the legend out in rows.
    let mut rows: Vec<Vec<(i32, &Key)>> = std::vec![Vec::new()];
    let mut x = 20i32;
    for k in keys {
        let (tw, _) = root.estimate_text_size(&k.label, &font).map_err(err)?;
        let need = 34 + tw as i32 + 22;
        if x + need > w as i32 - 10 && x > 20 {
            rows.push(Vec::new());
            x = 20;
        }
        if let Some(r) = rows.last_mut() {
            r.push((x, k));
        }
        x += need;
    }
    let legend_h = if keys.is_empty() {
        0
    } else {
        22 * rows.len() as u32 + 6
    };
    let (top, body) = root.split_vertically(68 + legend_h);
    top.draw_text(
        title,
        &(FONT_FAMILY, 24)
            .into_font()
            .style(FontStyle::Bold)
            .color(&BLACK),
        (20, 8),
    )
    .map_err(err)?;
    top.draw_text(
        sub,
        &(FONT_FAMILY, 15).into_font().color(&RGBColor(70, 70, 70)),
        (20, 40),
    )
    .map_err(err)?;
    for (ri, row) in rows.iter().enumerate() {
        let y = 68 + 22 * ri as i32 + 10;
        for &(x, k) in row {
            let style = ShapeStyle::from(k.color).stroke_width(k.width);
            if k.dashed {
                for seg in 0..3 {
                    let x0 = x + seg * 11;
                    top.draw(&PathElement::new([(x0, y), (x0 + 7, y)], style))
                        .map_err(err)?;
                }
            } else {
                top.draw(&PathElement::new([(x, y), (x + 28, y)], style))
                    .map_err(err)?;
            }
            top.draw_text(&k.label, &font, (x + 34, y - 8))
                .map_err(err)?;
        }
    }
    Ok(body)
}

/// Log scale below this share of the largest value: small devices (a FUSE
/// mount at 1%) would be invisible on a linear axis.
const LOG_SCALE_BELOW: f64 = 1.0 / 20.0;
/// The bottom of a log axis (MiB).
const LOG_FLOOR_MIB: f64 = 0.1;

/// A y axis in MiB, linear or log10 (values are then drawn as their log).
#[derive(Clone, Copy)]
struct YAxis {
    log: bool,
    max: f64,
}

impl YAxis {
    fn range(&self) -> core::ops::Range<f64> {
        if self.log {
            LOG_FLOOR_MIB.log10()..self.max.log10()
        } else {
            0.0..self.max
        }
    }
    fn y(&self, v: f64) -> f64 {
        if self.log {
            v.max(LOG_FLOOR_MIB).log10()
        } else {
            v
        }
    }
    fn label(&self, v: f64) -> String {
        if !self.log {
            return format!("{v:.0}");
        }
        if (v - v.round()).abs() > 1e-6 {
            return String::new();
        }
        let x = 10f64.powf(v.round());
        if x < 1.0 {
            format!("{x:.1}")
        } else {
            format!("{x:.0}")
        }
    }
    fn desc(&self) -> &'static str {
        if self.log {
            "MiB (log scale)"
        } else {
            "MiB"
        }
    }
    fn ticks(&self) -> usize {
        if self.log {
            let r = self.range();
            (r.end.floor() - r.start.ceil()) as usize + 1
        } else {
            10
        }
    }
}

fn draw_thresh<DB: DrawingBackend>(
    root: &DrawingArea<DB, Shift>,
    sc: &Scenario,
    runs: &[Recording],
) -> DrawResult {
    let dur = sc.duration_ms as f64 / 1000.0;
    let gs = groups(sc.devices.iter().map(|d| d.group.as_str()));
    let mut ymax = 1.0f64;
    let mut group_max = std::vec![0.0f64; gs.len()];
    for r in runs {
        for (k, g) in r.global.iter().enumerate() {
            ymax = ymax.max(mib(g.thresh));
            for (gi, (_, members)) in gs.iter().enumerate() {
                let (mut a, mut b) = (0u64, 0u64);
                for &d in members {
                    let s = r.dev(k, d);
                    a += s.wb_thresh;
                    b += s.dirty + s.writeback;
                }
                ymax = ymax.max(mib(a)).max(mib(b));
                group_max[gi] = group_max[gi].max(mib(a));
            }
        }
    }
    let log = group_max
        .iter()
        .any(|&m| m > 0.0 && m < ymax * LOG_SCALE_BELOW);
    let yax = YAxis {
        log,
        max: if log { ymax * 2.0 } else { ymax * 1.08 },
    };
    let ymax = yax.range().end;
    let ymin = yax.range().start;
    let mut keys = std::vec![Key {
        label: "T (dirty thresh)".into(),
        color: BLACK.mix(0.6),
        width: 1,
        dashed: true,
    }];
    for (gi, (name, members)) in gs.iter().enumerate() {
        let c = color(gi);
        let l = group_label(name, members.len());
        keys.push(Key::new(format!("{l} wb_thresh"), c.to_rgba(), 3));
        keys.push(Key::new(format!("{l} dirty+writeback"), c.mix(0.55), 1));
    }
    let body = header(
        root,
        &sc.title,
        "wb_thresh per device (thick) and its dirty + writeback pages (thin); dashed: global threshold T; \
         grey: changes",
        &keys,
    )?;
    let events = event_times(sc);
    let areas = body.split_evenly((runs.len().max(1), 1));
    for (area, r) in areas.iter().zip(runs) {
        let policy = r.policy.map_or("?", Policy::title);
        let mut chart = ChartBuilder::on(area)
            .caption(policy, (FONT_FAMILY, 18))
            .margin_left(10)
            .margin_right(25)
            .margin_bottom(5)
            .x_label_area_size(38)
            .y_label_area_size(70)
            .build_cartesian_2d(0f64..dur, yax.range())
            .map_err(err)?;
        chart
            .configure_mesh()
            .x_desc("time (s)")
            .y_desc(yax.desc())
            .y_labels(yax.ticks())
            .x_label_formatter(&|v| format!("{v:.0}"))
            .y_label_formatter(&|v| yax.label(*v))
            .label_style((FONT_FAMILY, 13))
            .axis_desc_style((FONT_FAMILY, 14))
            .light_line_style(WHITE.mix(0.0))
            .draw()
            .map_err(err)?;
        for &t in &events {
            chart
                .draw_series(LineSeries::new(
                    [(t, ymin), (t, ymax)],
                    RGBColor(170, 170, 170).stroke_width(1),
                ))
                .map_err(err)?;
        }
        let tline = r
            .global
            .iter()
            .map(|g| (g.t_ms as f64 / 1000.0, yax.y(mib(g.thresh))));
        chart
            .draw_series(DashedLineSeries::new(
                tline,
                6,
                4,
                BLACK.mix(0.6).stroke_width(1),
            ))
            .map_err(err)?;
        for (gi, (_, members)) in gs.iter().enumerate() {
            let c = color(gi);
            let pts = |f: &dyn Fn(&super::record::DevSample) -> u64| -> Vec<(f64, f64)> {
                r.global
                    .iter()
                    .enumerate()
                    .map(|(k, g)| {
                        let v: u64 = members.iter().map(|&d| f(r.dev(k, d))).sum();
                        (g.t_ms as f64 / 1000.0, yax.y(mib(v)))
                    })
                    .collect()
            };
            chart
                .draw_series(LineSeries::new(
                    pts(&|s| s.dirty + s.writeback),
                    c.mix(0.55).stroke_width(1),
                ))
                .map_err(err)?;
            chart
                .draw_series(LineSeries::new(pts(&|s| s.wb_thresh), c.stroke_width(3)))
                .map_err(err)?;
        }
    }
    Ok(())
}

fn draw_unused<DB: DrawingBackend>(
    root: &DrawingArea<DB, Shift>,
    sc: &Scenario,
    runs: &[Recording],
    metrics: &[Metrics],
) -> DrawResult {
    let keys: Vec<Key> = runs
        .iter()
        .enumerate()
        .map(|(i, r)| {
            let avg = metrics
                .iter()
                .find(|m| Some(m.policy) == r.policy)
                .and_then(|m| m.unused_share)
                .map_or("n/a".to_string(), |u| format!("{:.1}%", u * 100.0));
            Key::new(
                format!("{}: average {avg}", r.policy.map_or("?", Policy::title)),
                POLICY_COLORS[i % POLICY_COLORS.len()].to_rgba(),
                2,
            )
        })
        .collect();
    let body = header(
        root,
        &format!("{}: share of the dirty limit allocated to nobody", sc.name),
        "(T − Σ wb_thresh) / T over time, per policy; averages over the time some writer is throttled",
        &keys,
    )?;
    let dur = sc.duration_ms as f64 / 1000.0;
    let mut chart = ChartBuilder::on(&body)
        .margin_left(10)
        .margin_right(25)
        .margin_bottom(5)
        .margin_top(10)
        .x_label_area_size(40)
        .y_label_area_size(70)
        .build_cartesian_2d(0f64..dur, 0f64..105f64)
        .map_err(err)?;
    chart
        .configure_mesh()
        .x_desc("time (s)")
        .y_desc("unallocated share of T (%)")
        .x_label_formatter(&|v| format!("{v:.0}"))
        .y_label_formatter(&|v| format!("{v:.0}"))
        .label_style((FONT_FAMILY, 13))
        .axis_desc_style((FONT_FAMILY, 14))
        .light_line_style(WHITE.mix(0.0))
        .draw()
        .map_err(err)?;
    for t in event_times(sc) {
        chart
            .draw_series(LineSeries::new(
                [(t, 0.0), (t, 105.0)],
                RGBColor(170, 170, 170).stroke_width(1),
            ))
            .map_err(err)?;
    }
    for (i, r) in runs.iter().enumerate() {
        let c = POLICY_COLORS[i % POLICY_COLORS.len()];
        let pts = r.global.iter().map(|g| {
            let u = if g.thresh > 0 {
                g.thresh.saturating_sub(g.sum_wb_thresh) as f64 / g.thresh as f64
            } else {
                0.0
            };
            (g.t_ms as f64 / 1000.0, u * 100.0)
        });
        chart
            .draw_series(LineSeries::new(pts, c.stroke_width(2)))
            .map_err(err)?;
    }
    Ok(())
}

/// Window of the throughput average (ms).
const RATE_WINDOW_MS: u64 = 1000;

fn draw_throughput<DB: DrawingBackend>(
    root: &DrawingArea<DB, Shift>,
    sc: &Scenario,
    runs: &[Recording],
) -> DrawResult {
    let dur = sc.duration_ms as f64 / 1000.0;
    let gs = groups(sc.writers.iter().map(|w| w.group.as_str()));
    let keys: Vec<Key> = gs
        .iter()
        .enumerate()
        .map(|(gi, (name, m))| Key::new(group_label(name, m.len()), color(gi).to_rgba(), 2))
        .collect();
    let body = header(
        root,
        &format!("{}: writer throughput", sc.name),
        "pages each writer dirtied per second (1 s average), one panel per policy",
        &keys,
    )?;
    let win = (RATE_WINDOW_MS / sc.sample_ms).max(1) as usize;
    // A trailing average; shorter at the start, where fewer samples exist.
    let series = |r: &Recording, members: &[usize]| -> Vec<(f64, f64)> {
        (1..r.len())
            .map(|k| {
                let k0 = k.saturating_sub(win);
                let now: u64 = members.iter().map(|&w| r.writer(k, w).dirtied).sum();
                let before: u64 = members.iter().map(|&w| r.writer(k0, w).dirtied).sum();
                let secs = (r.global[k].t_ms - r.global[k0].t_ms) as f64 / 1000.0;
                (r.global[k].t_ms as f64 / 1000.0, mib(now - before) / secs)
            })
            .collect()
    };
    let mut ymax = 1.0f64;
    for r in runs {
        for (_, m) in &gs {
            for (_, v) in series(r, m) {
                ymax = ymax.max(v);
            }
        }
    }
    let ymax = ymax * 1.08;
    let events = event_times(sc);
    let areas = body.split_evenly((runs.len().max(1), 1));
    for (area, r) in areas.iter().zip(runs) {
        let mut chart = ChartBuilder::on(area)
            .caption(r.policy.map_or("?", Policy::title), (FONT_FAMILY, 18))
            .margin_left(10)
            .margin_right(25)
            .margin_bottom(5)
            .x_label_area_size(38)
            .y_label_area_size(70)
            .build_cartesian_2d(0f64..dur, 0f64..ymax)
            .map_err(err)?;
        chart
            .configure_mesh()
            .x_desc("time (s)")
            .y_desc("MiB/s")
            .x_label_formatter(&|v| format!("{v:.0}"))
            .y_label_formatter(&|v| format!("{v:.0}"))
            .label_style((FONT_FAMILY, 13))
            .axis_desc_style((FONT_FAMILY, 14))
            .light_line_style(WHITE.mix(0.0))
            .draw()
            .map_err(err)?;
        for &t in &events {
            chart
                .draw_series(LineSeries::new(
                    [(t, 0.0), (t, ymax)],
                    RGBColor(170, 170, 170).stroke_width(1),
                ))
                .map_err(err)?;
        }
        for (gi, (_, members)) in gs.iter().enumerate() {
            chart
                .draw_series(LineSeries::new(
                    series(r, members),
                    color(gi).stroke_width(2),
                ))
                .map_err(err)?;
        }
    }
    Ok(())
}
