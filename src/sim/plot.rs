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

use super::engine::policy_title;
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

const FONT: &str = "sans-serif";

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
                            plotters::style::register_font(FONT, style, bytes)
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

const POLICY_COLORS: [RGBColor; 3] = [
    RGBColor(214, 39, 40),
    RGBColor(31, 119, 180),
    RGBColor(44, 160, 44),
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

fn title_area<DB: DrawingBackend>(
    root: &DrawingArea<DB, Shift>,
    title: &str,
    sub: &str,
) -> Result<DrawingArea<DB, Shift>, String> {
    root.fill(&WHITE).map_err(err)?;
    let (top, body) = root.split_vertically(70);
    top.draw_text(
        title,
        &(FONT, 24).into_font().style(FontStyle::Bold).color(&BLACK),
        (20, 10),
    )
    .map_err(err)?;
    top.draw_text(
        sub,
        &(FONT, 16).into_font().color(&RGBColor(70, 70, 70)),
        (20, 42),
    )
    .map_err(err)?;
    Ok(body)
}

fn draw_thresh<DB: DrawingBackend>(
    root: &DrawingArea<DB, Shift>,
    sc: &Scenario,
    runs: &[Recording],
) -> DrawResult {
    let body = title_area(
        root,
        &sc.title,
        "wb_thresh per device (thick) and its dirty + writeback pages (thin); dashed: global threshold T; \
         grey lines: changes",
    )?;
    let dur = sc.duration_ms as f64 / 1000.0;
    let gs = groups(sc.devices.iter().map(|d| d.group.as_str()));
    let mut ymax = 1.0f64;
    for r in runs {
        for (k, g) in r.global.iter().enumerate() {
            ymax = ymax.max(mib(g.thresh));
            for (_, members) in &gs {
                let (mut a, mut b) = (0u64, 0u64);
                for &d in members {
                    let s = r.dev(k, d);
                    a += s.wb_thresh;
                    b += s.dirty + s.writeback;
                }
                ymax = ymax.max(mib(a)).max(mib(b));
            }
        }
    }
    let ymax = ymax * 1.08;
    let events = event_times(sc);
    let areas = body.split_evenly((runs.len().max(1), 1));
    for (pi, (area, r)) in areas.iter().zip(runs).enumerate() {
        let policy = r.policy.map_or("?", policy_title);
        let mut chart = ChartBuilder::on(area)
            .caption(policy, (FONT, 18))
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
            .y_desc("MiB")
            .label_style((FONT, 13))
            .axis_desc_style((FONT, 14))
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
        let tline = r
            .global
            .iter()
            .map(|g| (g.t_ms as f64 / 1000.0, mib(g.thresh)));
        chart
            .draw_series(DashedLineSeries::new(
                tline,
                6,
                4,
                BLACK.mix(0.6).stroke_width(1),
            ))
            .map_err(err)?
            .label("T (dirty thresh)")
            .legend(|(x, y)| PathElement::new([(x, y), (x + 20, y)], BLACK.mix(0.6)));
        for (gi, (name, members)) in gs.iter().enumerate() {
            let c = color(gi);
            let pts = |f: &dyn Fn(&super::record::DevSample) -> u64| -> Vec<(f64, f64)> {
                r.global
                    .iter()
                    .enumerate()
                    .map(|(k, g)| {
                        let v: u64 = members.iter().map(|&d| f(r.dev(k, d))).sum();
                        (g.t_ms as f64 / 1000.0, mib(v))
                    })
                    .collect()
            };
            chart
                .draw_series(LineSeries::new(
                    pts(&|s| s.dirty + s.writeback),
                    c.mix(0.55).stroke_width(1),
                ))
                .map_err(err)?
                .label(format!("{} dirty+wb", group_label(name, members.len())))
                .legend(move |(x, y)| {
                    PathElement::new([(x, y), (x + 20, y)], c.mix(0.55).stroke_width(1))
                });
            chart
                .draw_series(LineSeries::new(pts(&|s| s.wb_thresh), c.stroke_width(3)))
                .map_err(err)?
                .label(format!("{} wb_thresh", group_label(name, members.len())))
                .legend(move |(x, y)| PathElement::new([(x, y), (x + 20, y)], c.stroke_width(3)));
        }
        if pi == 0 {
            chart
                .configure_series_labels()
                .position(SeriesLabelPosition::UpperRight)
                .label_font((FONT, 13))
                .background_style(WHITE.mix(0.85))
                .border_style(BLACK.mix(0.4))
                .draw()
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
    let body = title_area(
        root,
        &format!("{}: unallocated share of the dirty limit", sc.name),
        "(T − Σ wb_thresh) / T over time per policy; legend: its average while some writer is throttled",
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
        .y_desc("unused share of T (%)")
        .label_style((FONT, 13))
        .axis_desc_style((FONT, 14))
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
        let avg = metrics
            .iter()
            .find(|m| Some(m.policy) == r.policy)
            .and_then(|m| m.unused_share)
            .map_or("n/a".to_string(), |u| format!("{:.1}%", u * 100.0));
        chart
            .draw_series(LineSeries::new(pts, c.stroke_width(2)))
            .map_err(err)?
            .label(format!(
                "{} — average {avg}",
                r.policy.map_or("?", policy_title)
            ))
            .legend(move |(x, y)| PathElement::new([(x, y), (x + 20, y)], c.stroke_width(2)));
    }
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::UpperRight)
        .label_font((FONT, 14))
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK.mix(0.4))
        .draw()
        .map_err(err)?;
    Ok(())
}

/// Window of the throughput average (ms).
const RATE_WINDOW_MS: u64 = 1000;

fn draw_throughput<DB: DrawingBackend>(
    root: &DrawingArea<DB, Shift>,
    sc: &Scenario,
    runs: &[Recording],
) -> DrawResult {
    let body = title_area(
        root,
        &format!("{}: writer throughput", sc.name),
        "pages dirtied per second by each writer (1 s average), one panel per policy",
    )?;
    let dur = sc.duration_ms as f64 / 1000.0;
    let gs = groups(sc.writers.iter().map(|w| w.group.as_str()));
    let win = (RATE_WINDOW_MS / sc.sample_ms).max(1) as usize;
    let series = |r: &Recording, members: &[usize]| -> Vec<(f64, f64)> {
        (win..r.len())
            .map(|k| {
                let now: u64 = members.iter().map(|&w| r.writer(k, w).dirtied).sum();
                let before: u64 = members.iter().map(|&w| r.writer(k - win, w).dirtied).sum();
                let secs = (r.global[k].t_ms - r.global[k - win].t_ms) as f64 / 1000.0;
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
    for (pi, (area, r)) in areas.iter().zip(runs).enumerate() {
        let mut chart = ChartBuilder::on(area)
            .caption(r.policy.map_or("?", policy_title), (FONT, 18))
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
            .label_style((FONT, 13))
            .axis_desc_style((FONT, 14))
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
        for (gi, (name, members)) in gs.iter().enumerate() {
            let c = color(gi);
            chart
                .draw_series(LineSeries::new(series(r, members), c.stroke_width(2)))
                .map_err(err)?
                .label(group_label(name, members.len()))
                .legend(move |(x, y)| PathElement::new([(x, y), (x + 20, y)], c.stroke_width(2)));
        }
        if pi == 0 && !gs.is_empty() {
            chart
                .configure_series_labels()
                .position(SeriesLabelPosition::UpperRight)
                .label_font((FONT, 13))
                .background_style(WHITE.mix(0.85))
                .border_style(BLACK.mix(0.4))
                .draw()
                .map_err(err)?;
        }
    }
    Ok(())
}
