//! `dirtylimit replay`: a `crosscheck` recording (its `--csv`) re-run in the simulator, and
//! the simulator's trajectories held against the kernel's, phase by phase.
//!
//! The scenario is built from what the recording measured: the dirty threshold
//! (`vm.dirty_bytes`; the background threshold is not recorded, the crosscheck's 1/8 of it
//! is assumed), every bdi that wrote back, each with the fastest completion rate of a
//! single sample as its bandwidth (a fast device completes a writeback chunk within one
//! sample and then waits for the next; a longer window would count the wait as slowness),
//! its `strict_limit` and `max_ratio_fine` (and their changes, as events),
//! and per phase one writer per bdi at the rate the bdi completed in that phase — or, where
//! the recording's `writer_mib_s` says the experiment's writer went as fast as allowed (0),
//! one that does so here too, on a device that completes, second by second, what the
//! kernel's completed (that writer never ran short of pages, so what its device completed
//! is what it could complete; writer, flusher and a memory-backed loop device share the
//! CPUs, so it moves from second to second). A bdi no writer of the experiment wrote to
//! (empty `writer_mib_s` throughout) is written by other processes, whose rate is no
//! phase's constant: it is replayed second by second at the rate it completed in that
//! second. The simulator starts empty where the kernel has history (the host disk), so the
//! first seconds differ; like `crosscheck`, the first `settle` seconds of a phase are not scored.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::format;
use std::path::Path;
use std::string::{String, ToString};
use std::vec::Vec;

use super::crosscheck::median;
use super::error::{ObserveError, Result};
use crate::consts::PAGES_PER_MIB;
use crate::policy::Policy;
use crate::sim::scenario::DEFAULT_STEP_MS;
use crate::sim::{run, Recording, Scenario};

/// The simulator's recording interval (ms): the crosscheck's 0.25 s samples.
const SAMPLE_MS: u64 = 250;

/// One line of a crosscheck CSV.
#[derive(Debug, Clone)]
struct Row {
    t: f64,
    bdi: String,
    label: String,
    written_kb: u64,
    max_ratio_fine: u64,
    strict: bool,
    dirty_thresh_kb: u64,
    dirty_kb: u64,
    kernel_kb: u64,
    phase: String,
    /// The rate the experiment's writer on this bdi was started at (MiB/s, 0 = as fast
    /// as allowed); `None` without one, or in recordings made before the column existed.
    writer: Option<u64>,
    /// The kernel's latest period boundary by then (s); `None` before the first, where the
    /// boundaries were not followed, or in recordings made before the column existed.
    period: Option<f64>,
    /// The bdi's dirty + writeback pages at its stats read (kB); `None` in recordings made
    /// before the column existed.
    held_kb: Option<u64>,
    /// The kernel's `avg_write_bandwidth` of the bdi (`BdiWriteBandwidth`, kB/s; 0 while the
    /// bdi has no dirty inodes); `None` in recordings made before the column existed.
    write_bw_kbps: Option<u64>,
}

fn parse(text: &str) -> Result<Vec<Row>> {
    let mut lines = text.lines();
    let head: Vec<&str> = lines.next().unwrap_or("").split(',').collect();
    let col = |name: &str| {
        head.iter()
            .position(|h| *h == name)
            .ok_or_else(|| ObserveError::Other(format!("not a crosscheck CSV: no column {name}")))
    };
    let (t, bdi, label, written, max_fine, strict, thresh, dirty, kernel, phase) = (
        col("t_s")?,
        col("bdi")?,
        col("device")?,
        col("written_kb")?,
        col("max_ratio_fine")?,
        col("strict_limit")?,
        col("dirty_thresh_kb")?,
        col("dirty_kb")?,
        col("kernel_kb")?,
        col("phase")?,
    );
    let writer = head.iter().position(|h| *h == "writer_mib_s");
    let period = head.iter().position(|h| *h == "kernel_period_s");
    let held = head.iter().position(|h| *h == "held_kb");
    let write_bw = head.iter().position(|h| *h == "write_bandwidth_kbps");
    let mut rows = Vec::new();
    for (n, line) in lines.enumerate() {
        let f: Vec<&str> = line.split(',').collect();
        let bad = || ObserveError::Other(format!("line {}: cannot read {line:?}", n + 2));
        let num = |i: usize| f.get(i).and_then(|s| s.parse::<u64>().ok()).ok_or_else(bad);
        rows.push(Row {
            t: f.get(t).and_then(|s| s.parse().ok()).ok_or_else(bad)?,
            bdi: f.get(bdi).ok_or_else(bad)?.to_string(),
            label: f.get(label).ok_or_else(bad)?.to_string(),
            written_kb: num(written)?,
            max_ratio_fine: num(max_fine)?,
            strict: num(strict)? != 0,
            dirty_thresh_kb: num(thresh)?,
            dirty_kb: num(dirty)?,
            kernel_kb: num(kernel)?,
            phase: f.get(phase).ok_or_else(bad)?.to_string(),
            writer: writer.and_then(|i| f.get(i)).and_then(|s| s.parse().ok()),
            period: period.and_then(|i| f.get(i)).and_then(|s| s.parse().ok()),
            held_kb: held.and_then(|i| f.get(i)).and_then(|s| s.parse().ok()),
            write_bw_kbps: write_bw.and_then(|i| f.get(i)).and_then(|s| s.parse().ok()),
        });
    }
    if rows.is_empty() {
        return Err(ObserveError::Other("the CSV has no samples".into()));
    }
    Ok(rows)
}

/// A phase of the recording: name and time span (s).
struct Span {
    name: String,
    from: f64,
    to: f64,
}

fn spans(rows: &[Row]) -> Vec<Span> {
    let mut v: Vec<Span> = Vec::new();
    for r in rows {
        match v.last_mut() {
            Some(s) if s.name == r.phase => s.to = r.t,
            _ => v.push(Span {
                name: r.phase.clone(),
                from: r.t,
                to: r.t,
            }),
        }
    }
    v
}

/// A bdi of the recording as a simulated device.
struct Dev {
    bdi: String,
    /// Scenario name: the label with anything but letters and digits as `-`.
    name: String,
    label: String,
    /// Fastest completion rate of a single sample (MiB/s): the device's own speed, as
    /// near as the recording resolves it. A fast device completes a writeback chunk within
    /// a sample and then waits for the next; over a longer window that wait counts as if
    /// the device had been slow.
    bandwidth: f64,
    /// Fastest completion rate over a second (MiB/s): what it kept up.
    sustained: f64,
    strict: bool,
    /// `max_ratio_fine` from the start, and its changes `(t, ppm)`.
    max_ratio_fine: u64,
    changes: Vec<(f64, u64)>,
    /// No writer of the experiment wrote to it (the recording says so: it has the
    /// `writer_mib_s` column), so other processes did.
    background: bool,
}

fn devices(rows: &[Row], has_writer_column: bool) -> Vec<Dev> {
    let mut by_bdi: BTreeMap<&str, Vec<&Row>> = BTreeMap::new();
    for r in rows {
        by_bdi.entry(&r.bdi).or_default().push(r);
    }
    let mut v = Vec::new();
    for (bdi, rs) in by_bdi {
        let total: u64 = rs.iter().map(|r| r.written_kb).sum();
        if total == 0 {
            continue;
        }
        let mut changes = Vec::new();
        for w in rs.windows(2) {
            if w[1].max_ratio_fine != w[0].max_ratio_fine {
                // Set right after the sample before (crosscheck changes it as a phase begins).
                changes.push((w[0].t, w[1].max_ratio_fine));
            }
        }
        let name: String = rs[0]
            .label
            .chars()
            .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
            .collect();
        v.push(Dev {
            bdi: bdi.to_string(),
            name: format!("{name}-{}", v.len()),
            label: rs[0].label.clone(),
            bandwidth: fastest(&rs, 0.0).max(1.0),
            sustained: fastest(&rs, 1.0).max(1.0),
            strict: rs[0].strict,
            max_ratio_fine: rs[0].max_ratio_fine,
            changes,
            background: has_writer_column && rs.iter().all(|r| r.writer.is_none()),
        });
    }
    v
}

/// The fastest completion rate (MiB/s) in `rs` (one bdi's samples, in time order) over
/// the samples that end within `window` seconds of the first's end (0: single samples);
/// each sample's `written_kb` completed since the sample before, which starts the window.
fn fastest(rs: &[&Row], window: f64) -> f64 {
    let mut best = 0f64;
    for (j, begin) in rs.iter().enumerate() {
        let (mut kb, mut end) = (0u64, begin.t);
        for (k, r) in rs.iter().enumerate().skip(j + 1) {
            if k > j + 1 && r.t - begin.t > window + 1e-6 {
                break;
            }
            kb += r.written_kb;
            end = r.t;
        }
        if end > begin.t {
            best = best.max(kb as f64 / 1024.0 / (end - begin.t));
        }
    }
    best
}

/// Mean completion rate (MiB/s) of `bdi` over `[from, to]`.
fn rate(rows: &[Row], bdi: &str, from: f64, to: f64) -> f64 {
    let kb: u64 = rows
        .iter()
        .filter(|r| r.bdi == bdi && r.t > from && r.t <= to)
        .map(|r| r.written_kb)
        .sum();
    if to > from {
        kb as f64 / 1024.0 / (to - from)
    } else {
        0.0
    }
}

/// The device of a writer that went as fast as allowed, second by second from `t0`:
/// `(t, MiB/s)` for each whole second in which that writer ran throughout. The writer never
/// ran short of pages, so the device had writeback queued all the second: what it completed
/// is what it could complete then (writer, flusher and a memory-backed loop device share
/// the CPUs, so this moves from second to second), not what it was given to do.
fn busy_seconds(rows: &[Row], bdi: &str, t0: f64, end: f64) -> Vec<(f64, f64)> {
    let mut v = Vec::new();
    let mut at = t0;
    while at + 1.0 <= t0 + end {
        let mut second = rows
            .iter()
            .filter(|r| r.bdi == bdi && r.t > at && r.t <= at + 1.0)
            .peekable();
        let running = second.peek().is_some() && second.all(|r| r.writer == Some(0));
        let r = rate(rows, bdi, at, at + 1.0);
        if running && r > 0.0 {
            v.push((at, r));
        }
        at += 1.0;
    }
    v
}

/// Where the simulator's clock starts on the recording's: the first sample.
fn origin(rows: &[Row]) -> f64 {
    rows[0].t
}

/// The simulator's sample nearest to the recording's time `t` (origin `t0`).
fn sim_sample(t: f64, t0: f64, sc: &Scenario, rec: &Recording) -> usize {
    let i = ((t - t0) * 1000.0 / sc.sample_ms as f64).round().max(0.0) as usize;
    i.min(rec.len().saturating_sub(1))
}

/// The scenario of a recording, as TOML (so that it goes through the same checks as a file).
fn scenario_toml(rows: &[Row], devs: &[Dev], spans: &[Span], has_writer_column: bool) -> String {
    let t0 = origin(rows);
    let end = rows.last().map_or(t0, |r| r.t) - t0;
    let dirty_bytes = rows[0].dirty_thresh_kb * 1024;
    let mut s = String::new();
    let _ = writeln!(
        s,
        "name = \"replay\"\nduration_s = {:.2}\nsample_ms = {SAMPLE_MS}\nmax_rate_mib_s = {:.0}\n\
         {}\n[memory]\ndirtyable_mib = 16384\n[vm]\ndirty_bytes = {dirty_bytes}\n\
         dirty_background_bytes = {}",
        (end * 4.0).ceil() / 4.0,
        // "As fast as allowed": twice the fastest device's fastest second, so that
        // dirtying, not the writer, is what throttling has to hold back (at least the
        // simulator's default).
        devs.iter()
            .map(|d| 2.0 * d.sustained)
            .fold(2048.0, f64::max),
        period_boundaries(rows, t0),
        dirty_bytes / 8,
    );
    for d in devs {
        let _ = writeln!(
            s,
            "[[device]]\nname = \"{}\"\nbandwidth_mib_s = {:.3}\nstrict_limit = {}\n\
             max_ratio_fine = {}",
            d.name, d.bandwidth, d.strict, d.max_ratio_fine
        );
    }
    for d in devs {
        if d.background {
            // Written by other processes: their completions, second by second.
            let mut from = t0;
            while from < t0 + end {
                let r = rate(rows, &d.bdi, from, from + 1.0);
                if r >= 0.2 {
                    let _ = writeln!(
                        s,
                        "[[writer]]\nname = \"{}-{}\"\ndevice = \"{}\"\nrate_mib_s = {r:.3}\n\
                         start_s = {:.2}\nstop_s = {:.2}",
                        d.name,
                        s.matches("[[writer]]").count(),
                        d.name,
                        from - t0,
                        from - t0 + 1.0,
                    );
                }
                from += 1.0;
            }
        }
        // Crosscheck starts a phase's writers (and applies its settings) right after the
        // sample that ends the previous phase, and stops them right after the phase's last.
        let begins = spans.iter().scan(t0, |prev_end, sp| {
            let begin = *prev_end;
            *prev_end = sp.to;
            Some((begin, sp))
        });
        for (begin, sp) in begins.filter(|_| !d.background) {
            let r = rate(rows, &d.bdi, begin, sp.to);
            // The experiment's writer on this bdi as the phase's samples record it.
            let writer_in_phase = || {
                rows.iter()
                    .filter(|x| x.bdi == d.bdi && x.t >= sp.from && x.t <= sp.to)
                    .map(|x| x.writer)
            };
            // A writer started "as fast as allowed" is replayed as one: its rate is what
            // the throttling gave it, not an input.
            let unthrottled = writer_in_phase().any(|w| w == Some(0));
            // Where the recording names the experiment's writers, a bdi whose writer did
            // not run in the phase only finishes what it held (a stopped writer's pages).
            let wrote = !has_writer_column || writer_in_phase().any(|w| w.is_some());
            if !wrote || (r < 0.2 && !unthrottled) {
                continue;
            }
            let rate_line = if unthrottled {
                String::new()
            } else {
                format!("rate_mib_s = {r:.3}\n")
            };
            let _ = writeln!(
                s,
                "[[writer]]\nname = \"{}-{}\"\ndevice = \"{}\"\n{rate_line}\
                 start_s = {:.2}\nstop_s = {:.2}",
                d.name,
                s.matches("[[writer]]").count(),
                d.name,
                ((begin - t0) * 4.0).round() / 4.0,
                ((sp.to - t0) * 4.0).round() / 4.0,
            );
        }
        // The device of a writer as fast as allowed completes, second by second, what the
        // kernel's did; after such a run of seconds it is back at its own speed.
        let busy = busy_seconds(rows, &d.bdi, t0, end);
        for (i, &(at, r)) in busy.iter().enumerate() {
            let _ = writeln!(
                s,
                "[[event]]\nat_s = {:.3}\ndevice = \"{}\"\nbandwidth_mib_s = {r:.3}",
                at - t0,
                d.name
            );
            if busy.get(i + 1).is_none_or(|n| n.0 > at + 1.0 + 1e-6) {
                let _ = writeln!(
                    s,
                    "[[event]]\nat_s = {:.3}\ndevice = \"{}\"\nbandwidth_mib_s = {:.3}",
                    at + 1.0 - t0,
                    d.name,
                    d.bandwidth
                );
            }
        }
        for &(t, ppm) in &d.changes {
            // After that sample: one step later, so that the simulator's sample there still
            // shows the setting before.
            let _ = writeln!(
                s,
                "[[event]]\nat_s = {:.3}\ndevice = \"{}\"\nmax_ratio_fine = {ppm}",
                ((t - t0) * 4.0).round() / 4.0 + DEFAULT_STEP_MS as f64 / 1000.0,
                d.name
            );
        }
    }
    s
}

/// The kernel's period boundaries the recording saw, on the simulator's clock (s since the
/// first sample), as the scenario line that makes the simulator age completions at the same
/// instants (how fast a newcomer's share grows depends on when the others' counts halve).
/// Empty for a recording without them: the simulator's own clock, whose phase is not the
/// kernel's.
fn period_boundaries(rows: &[Row], t0: f64) -> String {
    let mut b: Vec<f64> = rows
        .iter()
        .filter_map(|r| r.period)
        .map(|p| p - t0)
        .collect();
    b.retain(|&x| x > 0.0);
    b.sort_by(f64::total_cmp);
    b.dedup_by(|x, y| (*x - *y).abs() < 1e-6);
    if b.is_empty() {
        return String::new();
    }
    let list: Vec<String> = b.iter().map(|x| format!("{x:.3}")).collect();
    format!("period_boundaries_s = [{}]", list.join(", "))
}

/// A recording read: its rows, phases and bdis, and the scenario they make.
struct Recorded {
    rows: Vec<Row>,
    spans: Vec<Span>,
    devs: Vec<Dev>,
    toml: String,
}

/// Reads the recording at `csv`.
fn read(csv: &Path) -> Result<Recorded> {
    let text =
        std::fs::read_to_string(csv).map_err(|e| ObserveError::io_path("reading", csv, e))?;
    let rows = parse(&text)?;
    let spans = spans(&rows);
    let has_writer_column = text
        .lines()
        .next()
        .is_some_and(|h| h.split(',').any(|c| c == "writer_mib_s"));
    let devs = devices(&rows, has_writer_column);
    let toml = scenario_toml(&rows, &devs, &spans, has_writer_column);
    Ok(Recorded {
        rows,
        spans,
        devs,
        toml,
    })
}

/// The scenario (TOML) `replay` runs for the recording at `csv`: to run it again with
/// `dirtylimit simulate`, change it, or read what the replay assumed.
pub fn replay_scenario(csv: &Path) -> Result<String> {
    read(csv).map(|r| r.toml)
}

/// Runs `csv` (a `crosscheck --csv` recording) in the simulator under `policy` and returns
/// the side-by-side table; with `figures`, also draws one figure per phase there
/// (`replay-<n>.{svg,png}`: each bdi's threshold, kernel solid, simulator dashed).
pub fn replay(csv: &Path, policy: Policy, settle_s: f64, figures: Option<&Path>) -> Result<String> {
    let Recorded {
        rows,
        spans,
        devs,
        toml,
    } = read(csv)?;
    let sc =
        Scenario::from_toml(&toml, "replay").map_err(|e| ObserveError::Other(e.to_string()))?;
    let rec = run(&sc, policy).map_err(|e| ObserveError::Other(e.to_string()))?;
    if let Some(dir) = figures {
        #[cfg(feature = "cli")]
        draw(dir, &rows, &devs, &spans, &sc, &rec).map_err(ObserveError::Other)?;
        #[cfg(not(feature = "cli"))]
        return Err(ObserveError::Other(format!(
            "{}: figures need the cli feature",
            dir.display()
        )));
    }
    Ok(compare(&rows, &devs, &spans, &sc, &rec, settle_s))
}

/// One figure per phase after `idle`: each bdi's threshold over the phase.
#[cfg(feature = "cli")]
fn draw(
    dir: &Path,
    rows: &[Row],
    devs: &[Dev],
    spans: &[Span],
    sc: &Scenario,
    rec: &Recording,
) -> std::result::Result<(), String> {
    use crate::sim::plot::{init_font, FONT_FAMILY};
    use plotters::prelude::*;

    init_font()?;
    std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    let t0 = origin(rows);
    let colors = [
        RGBColor(31, 119, 180),
        RGBColor(214, 39, 40),
        RGBColor(44, 160, 44),
        RGBColor(255, 127, 14),
        RGBColor(148, 103, 189),
        RGBColor(140, 86, 75),
    ];
    for (n, sp) in spans.iter().enumerate().filter(|(n, _)| *n > 0) {
        let mut series: Vec<Lines> = Vec::new();
        let mut ymax = 1f64;
        for (k, d) in devs.iter().enumerate() {
            let kern: Vec<(f64, f64)> = rows
                .iter()
                .filter(|r| r.bdi == d.bdi && r.t >= sp.from && r.t <= sp.to)
                .map(|r| (r.t - sp.from, r.kernel_kb as f64 / 1024.0))
                .collect();
            let sim: Vec<(f64, f64)> = kern
                .iter()
                .map(|&(dt, _)| {
                    let i = sim_sample(sp.from + dt, t0, sc, rec);
                    (dt, rec.dev(i, k).wb_thresh as f64 / PAGES_PER_MIB as f64)
                })
                .collect();
            ymax = kern.iter().chain(&sim).fold(ymax, |m, p| m.max(p.1));
            series.push((d.label.clone(), kern, sim));
        }
        for ext in ["svg", "png"] {
            let path = dir.join(format!("replay-{n}.{ext}"));
            let title = format!(
                "{}: wb_thresh, kernel (solid) and simulator (dashed)",
                sp.name
            );
            let res = if ext == "svg" {
                chart(
                    SVGBackend::new(&path, (960, 540)).into_drawing_area(),
                    &title,
                    &series,
                    ymax,
                    sp.to - sp.from,
                    &colors,
                    FONT_FAMILY,
                )
            } else {
                chart(
                    BitMapBackend::new(&path, (960, 540)).into_drawing_area(),
                    &title,
                    &series,
                    ymax,
                    sp.to - sp.from,
                    &colors,
                    FONT_FAMILY,
                )
            };
            res.map_err(|e| format!("{}: {e}", path.display()))?;
        }
    }
    Ok(())
}

/// One bdi's label, kernel line and simulator line `(s, MiB)`.
#[cfg(feature = "cli")]
type Lines = (String, Vec<(f64, f64)>, Vec<(f64, f64)>);

/// Kernel and simulator lines of one phase.
#[cfg(feature = "cli")]
fn chart<DB: plotters::prelude::DrawingBackend>(
    root: plotters::prelude::DrawingArea<DB, plotters::coord::Shift>,
    title: &str,
    series: &[Lines],
    ymax: f64,
    xmax: f64,
    colors: &[plotters::prelude::RGBColor],
    font: &str,
) -> std::result::Result<(), String>
where
    DB::ErrorType: 'static,
{
    use plotters::prelude::*;
    let e = |e: &dyn std::fmt::Debug| format!("{e:?}");
    root.fill(&WHITE).map_err(|x| e(&x))?;
    let mut c = ChartBuilder::on(&root)
        .caption(title, (font, 20))
        .margin(12)
        .x_label_area_size(40)
        .y_label_area_size(60)
        .build_cartesian_2d(0f64..xmax.max(1.0), 0f64..ymax * 1.1)
        .map_err(|x| e(&x))?;
    c.configure_mesh()
        .x_desc("s since the phase began")
        .y_desc("MiB")
        .label_style((font, 13))
        .axis_desc_style((font, 14))
        .draw()
        .map_err(|x| e(&x))?;
    for (i, (label, kern, sim)) in series.iter().enumerate() {
        let col = colors[i % colors.len()];
        c.draw_series(LineSeries::new(kern.iter().copied(), col.stroke_width(2)))
            .map_err(|x| e(&x))?
            .label(label.as_str())
            .legend(move |(x, y)| PathElement::new([(x, y), (x + 20, y)], col.stroke_width(2)));
        c.draw_series(DashedLineSeries::new(
            sim.iter().copied(),
            6,
            4,
            col.stroke_width(2),
        ))
        .map_err(|x| e(&x))?;
    }
    c.configure_series_labels()
        .position(SeriesLabelPosition::UpperRight)
        .label_font((font, 13))
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK.mix(0.3))
        .draw()
        .map_err(|x| e(&x))?;
    root.present().map_err(|x| e(&x))?;
    Ok(())
}

fn compare(
    rows: &[Row],
    devs: &[Dev],
    spans: &[Span],
    sc: &Scenario,
    rec: &Recording,
    settle_s: f64,
) -> String {
    let t0 = origin(rows);
    let mib = |pages: u64| pages as f64 / PAGES_PER_MIB as f64;
    let sample = |t: f64| sim_sample(t, t0, sc, rec);
    let mut md = String::new();
    // Where the recording has the kernel's bandwidth estimates, each bdi's beside the
    // simulator's: what sizes the writeback chunks and the pauses.
    let estimates = rows.iter().any(|r| r.write_bw_kbps.is_some());
    let _ = writeln!(
        md,
        "| phase | bdi | kernel thresh MiB | sim thresh MiB | median \\|err\\| | kernel MiB/s | sim MiB/s | to 0.5/0.8 of the move, kernel s | sim s |{}",
        if estimates {
            " avg_write_bandwidth MiB/s, kernel | sim |\n|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
        } else {
            "\n|---|---|---:|---:|---:|---:|---:|---:|---:|"
        }
    );
    // Where the recording has each bdi's own count, the part of the global one held by the
    // bdis other processes wrote to (the host disk), which the replay knows only by their
    // completions.
    let others: Vec<usize> = (0..devs.len()).filter(|&k| devs[k].background).collect();
    let split = !others.is_empty() && rows.iter().any(|r| r.held_kb.is_some());
    let mut global = String::from(if split {
        "\n| phase | kernel (dirty + writeback) / T | sim | of it, bdis other processes wrote to: kernel | sim |\n\
         |---|---:|---:|---:|---:|\n"
    } else {
        "\n| phase | kernel (dirty + writeback) / T | sim |\n|---|---:|---:|\n"
    });
    // The first phase is the idle baseline: what the kernel shows there is what it counted
    // before the recording, which the simulator cannot know (it starts empty).
    for sp in spans.iter().skip(1).filter(|sp| sp.to - sp.from > settle_s) {
        let from = sp.from + settle_s;
        let scored: Vec<&Row> = rows
            .iter()
            .filter(|r| r.t >= from && r.t <= sp.to)
            .collect();
        for (k, d) in devs.iter().enumerate() {
            let mine: Vec<&&Row> = scored.iter().filter(|r| r.bdi == d.bdi).collect();
            if mine.is_empty() {
                continue;
            }
            let mut errs: Vec<f64> = mine
                .iter()
                .filter(|r| r.kernel_kb > 0)
                .map(|r| {
                    let sim = mib(rec.dev(sample(r.t), k).wb_thresh) * 1024.0;
                    (sim - r.kernel_kb as f64).abs() / r.kernel_kb as f64
                })
                .collect();
            let mut kern: Vec<f64> = mine.iter().map(|r| r.kernel_kb as f64 / 1024.0).collect();
            let mut sim: Vec<f64> = mine
                .iter()
                .map(|r| mib(rec.dev(sample(r.t), k).wb_thresh))
                .collect();
            let (a, b) = (sample(from), sample(sp.to));
            let sim_rate = if b > a {
                mib(rec.dev(b, k).written - rec.dev(a, k).written)
                    / ((b - a) as f64 * sc.sample_ms as f64 / 1000.0)
            } else {
                0.0
            };
            // The whole phase, from its first sample, for the convergence times.
            let whole: Vec<(f64, f64)> = rows
                .iter()
                .filter(|r| r.bdi == d.bdi && r.t >= sp.from && r.t <= sp.to)
                .map(|r| (r.t - sp.from, r.kernel_kb as f64 / 1024.0))
                .collect();
            let sim_whole: Vec<(f64, f64)> = whole
                .iter()
                .map(|&(dt, _)| (dt, mib(rec.dev(sample(sp.from + dt), k).wb_thresh)))
                .collect();
            let _ = write!(
                md,
                "| {} | {} | {:.1} | {:.1} | {:.2}% | {:.1} | {:.1} | {} | {} |",
                sp.name,
                d.label,
                median(&mut kern).unwrap_or(0.0),
                median(&mut sim).unwrap_or(0.0),
                median(&mut errs).unwrap_or(0.0) * 100.0,
                rate(rows, &d.bdi, from, sp.to),
                sim_rate,
                convergence(&whole),
                convergence(&sim_whole)
            );
            if estimates {
                // The kernel reports 0 while the bdi has no dirty inodes: those samples say
                // nothing of its estimate.
                let (mut kern, mut sim): (Vec<f64>, Vec<f64>) = mine
                    .iter()
                    .filter(|r| r.write_bw_kbps.is_some_and(|b| b > 0))
                    .map(|r| {
                        (
                            r.write_bw_kbps.unwrap_or(0) as f64 / 1024.0,
                            mib(rec.dev(sample(r.t), k).bw_est),
                        )
                    })
                    .unzip();
                let cell = |v: &mut Vec<f64>| median(v).map_or("—".into(), |m| format!("{m:.1}"));
                let _ = write!(md, " {} | {} |", cell(&mut kern), cell(&mut sim));
            }
            md.push('\n');
        }
        // The kernel's samples (a sample's rows share its time, in ms): the global dirty +
        // writeback count and T as its first row read them, and what the bdis other
        // processes wrote to held.
        let mut samples: BTreeMap<u64, (u64, u64, u64)> = BTreeMap::new();
        for r in scored.iter().filter(|r| r.dirty_thresh_kb > 0) {
            let e = samples.entry((r.t * 1000.0).round() as u64).or_insert((
                r.dirty_kb,
                r.dirty_thresh_kb,
                0,
            ));
            if devs.iter().any(|d| d.background && d.bdi == r.bdi) {
                e.2 += r.held_kb.unwrap_or(0);
            }
        }
        // Global dirty + writeback over T.
        let mut kern: Vec<f64> = samples
            .values()
            .map(|&(dirty, t, _)| dirty as f64 / t as f64)
            .collect();
        let mut sim: Vec<f64> = (sample(from)..=sample(sp.to))
            .map(|i| {
                let g = &rec.global[i];
                (g.dirty + g.writeback) as f64 / g.thresh.max(1) as f64
            })
            .collect();
        let _ = write!(
            global,
            "| {} | {:.3} | {:.3} |",
            sp.name,
            median(&mut kern).unwrap_or(0.0),
            median(&mut sim).unwrap_or(0.0)
        );
        if split {
            let mut kern: Vec<f64> = samples
                .values()
                .map(|&(_, t, held)| held as f64 / t as f64)
                .collect();
            let mut sim: Vec<f64> = (sample(from)..=sample(sp.to))
                .map(|i| {
                    let held: u64 = others
                        .iter()
                        .map(|&k| rec.dev(i, k).dirty + rec.dev(i, k).writeback)
                        .sum();
                    held as f64 / rec.global[i].thresh.max(1) as f64
                })
                .collect();
            let _ = write!(
                global,
                " {:.3} | {:.3} |",
                median(&mut kern).unwrap_or(0.0),
                median(&mut sim).unwrap_or(0.0)
            );
        }
        global.push('\n');
    }
    md.push_str(&global);
    md
}

/// Seconds until a trajectory `(s since the phase began, MiB)` first covers half and 80%
/// of its move from the first value to its final one (the median of the last fifth), as
/// `0.5 s / 2.0 s`; `—` when it moves by less than 5% of the final value.
fn convergence(v: &[(f64, f64)]) -> String {
    let Some(&(_, first)) = v.first() else {
        return "—".into();
    };
    let mut tail: Vec<f64> = v[v.len() * 4 / 5..].iter().map(|p| p.1).collect();
    let Some(last) = median(&mut tail) else {
        return "—".into();
    };
    let span = last - first;
    if span.abs() < 0.05 * last.abs().max(1e-9) {
        return "—".into();
    }
    let reach = |q: f64| {
        v.iter()
            .find(|p| (p.1 - first) / span >= q)
            .map_or("—".to_string(), |p| format!("{:.1}", p.0))
    };
    format!("{} / {}", reach(0.5), reach(0.8))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(t: f64, written_kb: u64) -> Row {
        Row {
            t,
            bdi: "7:0".into(),
            label: "A".into(),
            written_kb,
            max_ratio_fine: 1_000_000,
            strict: false,
            dirty_thresh_kb: 262_144,
            dirty_kb: 0,
            kernel_kb: 0,
            phase: "A alone".into(),
            writer: Some(48),
            period: None,
            held_kb: None,
            write_bw_kbps: None,
        }
    }

    /// A device that completes a 28 MiB chunk within one 0.25 s sample, every third
    /// sample: its own speed is at least 112 MiB/s, though no second shows more than 56.
    #[test]
    fn a_device_is_as_fast_as_its_fastest_sample() {
        let rows: Vec<Row> = (0..12)
            .map(|i| sample(f64::from(i) * 0.25, if i % 3 == 1 { 28 * 1024 } else { 0 }))
            .collect();
        let rs: Vec<&Row> = rows.iter().collect();
        assert!((fastest(&rs, 0.0) - 112.0).abs() < 1e-9);
        assert!((fastest(&rs, 1.0) - 56.0).abs() < 1e-9);
    }
}
