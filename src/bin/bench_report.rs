//! `bench_report`: turns criterion's saved estimates into `plots/bench-table.md`
//! and the log-log scaling plot `plots/bench-scaling.{svg,png}` (issue 4).
//!
//! ```text
//! CARGO_TARGET_DIR=target cargo bench            # or: --bench hot_paths, ...
//! cargo run --release --bin bench_report -- [--criterion DIR] [--out DIR]
//! ```
//!
//! `--criterion` defaults to `$CARGO_TARGET_DIR/criterion`, else
//! `target/criterion`; `--out` to `plots`. Every figure is criterion's median
//! of the last run of that benchmark (`<id>/new/estimates.json`); a ratio to
//! `Linux` compares medians of the same invocation only when both were run
//! by it (run the whole bench file, as above). Sizes are `size_of` of this
//! build of the core.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use dirtylimit::water_level::WaterLevel;
use dirtylimit::{Bdi, Domain};
use plotters::prelude::*;

#[path = "bench_report/instructions.rs"]
mod instructions;

fn main() -> ExitCode {
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("bench_report: {e}");
            ExitCode::FAILURE
        }
    }
}

struct Args {
    criterion: PathBuf,
    out: PathBuf,
}

fn parse_args() -> Result<Args, String> {
    let mut criterion = std::env::var_os("CARGO_TARGET_DIR")
        .map(|d| PathBuf::from(d).join("criterion"))
        .unwrap_or_else(|| PathBuf::from("target/criterion"));
    let mut out = PathBuf::from("plots");
    let mut it = std::env::args().skip(1);
    while let Some(a) = it.next() {
        match a.as_str() {
            "--criterion" => criterion = it.next().ok_or("--criterion needs a directory")?.into(),
            "--out" => out = it.next().ok_or("--out needs a directory")?.into(),
            "-h" | "--help" => {
                println!(
                    "usage: bench_report [--criterion DIR] [--out DIR]\n\
                     Reads DIR/**/new/estimates.json (default $CARGO_TARGET_DIR/criterion or \
                     target/criterion), writes OUT/bench-table.md and OUT/bench-scaling.{{svg,png}} \
                     (default OUT = plots)."
                );
                std::process::exit(0);
            }
            _ => return Err(format!("unknown argument {a:?} (try --help)")),
        }
    }
    Ok(Args { criterion, out })
}

fn run() -> Result<(), String> {
    let args = parse_args()?;
    let results = load(&args.criterion)?;
    if results.is_empty() {
        return Err(format!(
            "no criterion estimates under {} (run `cargo bench` first)",
            args.criterion.display()
        ));
    }
    std::fs::create_dir_all(&args.out).map_err(|e| format!("{}: {e}", args.out.display()))?;
    let fits = scaling_fits(&results);
    let md = instructions::amend(table(&results, &fits), &args.out);
    let md_path = args.out.join("bench-table.md");
    std::fs::write(&md_path, md).map_err(|e| format!("{}: {e}", md_path.display()))?;
    println!("wrote {}", md_path.display());
    if fits.is_empty() {
        println!("no recompute/rollover results: no scaling plot");
    } else {
        font()?;
        for ext in ["svg", "png"] {
            let p = args.out.join(format!("bench-scaling.{ext}"));
            plot(&p, &fits).map_err(|e| format!("{}: {e}", p.display()))?;
            println!("wrote {}", p.display());
        }
    }
    Ok(())
}

// ---------------------------------------------------------------------------
// criterion's files

/// One benchmark: `group/function/value` as criterion names it.
#[derive(Clone, Debug)]
struct Bench {
    group: String,
    function: Option<String>,
    /// The parameter (`n`, or a scenario name).
    value: Option<String>,
    /// Median, and its 95% confidence interval, in ns per iteration.
    median: f64,
    lo: f64,
    hi: f64,
    /// Elements per iteration, when the bench declared a throughput.
    elements: Option<f64>,
}

impl Bench {
    fn n(&self) -> Option<u64> {
        self.value.as_deref().and_then(|v| v.parse().ok())
    }
}

/// Every `*/new/estimates.json` (with its `benchmark.json`) under `dir`.
fn load(dir: &Path) -> Result<Vec<Bench>, String> {
    let mut out = Vec::new();
    walk(dir, &mut out)?;
    out.sort_by(|a, b| {
        (&a.group, &a.function, a.n(), &a.value).cmp(&(&b.group, &b.function, b.n(), &b.value))
    });
    Ok(out)
}

fn walk(dir: &Path, out: &mut Vec<Bench>) -> Result<(), String> {
    let rd = std::fs::read_dir(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    for e in rd {
        let p = e.map_err(|e| format!("{}: {e}", dir.display()))?.path();
        if !p.is_dir() {
            continue;
        }
        if p.file_name().is_some_and(|f| f == "new") {
            let est = p.join("estimates.json");
            let meta = p.join("benchmark.json");
            if est.exists() && meta.exists() {
                out.push(read_bench(&est, &meta)?);
            }
        } else if p
            .file_name()
            .is_some_and(|f| f != "report" && f != "base" && f != "change")
        {
            walk(&p, out)?;
        }
    }
    Ok(())
}

fn read_json(p: &Path) -> Result<Json, String> {
    let s = std::fs::read_to_string(p).map_err(|e| format!("{}: {e}", p.display()))?;
    Json::parse(&s).map_err(|e| format!("{}: {e}", p.display()))
}

fn read_bench(est: &Path, meta: &Path) -> Result<Bench, String> {
    let (e, m) = (read_json(est)?, read_json(meta)?);
    let num = |j: &Json, path: &[&str]| {
        j.get(path)
            .and_then(Json::as_f64)
            .ok_or_else(|| format!("{}: no {}", est.display(), path.join(".")))
    };
    let text = |path: &[&str]| m.get(path).and_then(Json::as_str).map(str::to_owned);
    Ok(Bench {
        group: text(&["group_id"]).ok_or_else(|| format!("{}: no group_id", meta.display()))?,
        function: text(&["function_id"]),
        value: text(&["value_str"]),
        median: num(&e, &["median", "point_estimate"])?,
        lo: num(&e, &["median", "confidence_interval", "lower_bound"])?,
        hi: num(&e, &["median", "confidence_interval", "upper_bound"])?,
        elements: m.get(&["throughput", "Elements"]).and_then(Json::as_f64),
    })
}

// ---------------------------------------------------------------------------
// the table

const POLICIES: [(&str, &str); 3] = [
    ("clip_only", "ClipOnly"),
    ("linux", "Linux"),
    ("redistribute", "Redistribute"),
];

fn find<'a>(r: &'a [Bench], group: &str, function: Option<&str>, n: u64) -> Option<&'a Bench> {
    r.iter()
        .find(|b| b.group == group && b.function.as_deref() == function && b.n() == Some(n))
}

/// `12.3 ns`, `4.56 µs`, `1.23 ms`.
fn fmt_time(ns: f64) -> String {
    if ns < 1e3 {
        format!("{ns:.1} ns")
    } else if ns < 1e6 {
        format!("{:.2} µs", ns / 1e3)
    } else if ns < 1e9 {
        format!("{:.2} ms", ns / 1e6)
    } else {
        format!("{:.2} s", ns / 1e9)
    }
}

/// Median ± half its confidence interval, as a percentage.
fn fmt_ci(b: &Bench) -> String {
    let half = (b.hi - b.lo) / 2.0 / b.median * 100.0;
    format!("{} ±{half:.0}%", fmt_time(b.median))
}

fn mark(ok: bool) -> &'static str {
    if ok {
        "met"
    } else {
        "**missed**"
    }
}

fn ns_of(r: &[Bench], group: &str) -> Vec<u64> {
    let mut v: Vec<u64> = r
        .iter()
        .filter(|b| b.group == group)
        .filter_map(Bench::n)
        .collect();
    v.sort_unstable();
    v.dedup();
    v
}

/// A per-policy table of one group (query, completion): medians and the
/// ratio to Linux; returns whether Redistribute ≤ 1.0× Linux at every n.
fn policy_table(md: &mut String, r: &[Bench], group: &str) -> Option<bool> {
    let ns = ns_of(r, group);
    if ns.is_empty() {
        return None;
    }
    let mut all_ok = true;
    let _ = writeln!(
        md,
        "| n | ClipOnly | Linux | Redistribute | ClipOnly / Linux | Redistribute / Linux |"
    );
    let _ = writeln!(md, "|---:|---:|---:|---:|---:|---:|");
    for n in ns {
        let cell = |p: &str| find(r, group, Some(p), n);
        let linux = cell("linux");
        let ratio = |p: &str| match (cell(p), linux) {
            (Some(a), Some(l)) => Some(a.median / l.median),
            _ => None,
        };
        let show = |p: &str| cell(p).map_or("–".to_owned(), fmt_ci);
        let red = ratio("redistribute");
        if let Some(x) = red {
            all_ok &= x <= 1.0;
        }
        let _ = writeln!(
            md,
            "| {n} | {} | {} | {} | {} | {} |",
            show("clip_only"),
            show("linux"),
            show("redistribute"),
            ratio("clip_only").map_or("–".to_owned(), |x| format!("{x:.2}×")),
            red.map_or("–".to_owned(), |x| if x <= 1.0 {
                format!("{x:.2}×")
            } else {
                format!("**{x:.2}×**")
            }),
        );
    }
    Some(all_ok)
}

fn machine() -> String {
    let cpu = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let model = cpu
        .lines()
        .find_map(|l| l.strip_prefix("model name"))
        .and_then(|l| l.split_once(':'))
        .map_or("unknown CPU".to_owned(), |(_, m)| m.trim().to_owned());
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    let rustc = std::process::Command::new("rustc")
        .arg("--version")
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .map_or("rustc ?".to_owned(), |s| s.trim().to_owned());
    format!("{model}, {cores} cores; {rustc}")
}

fn table(r: &[Bench], fits: &[Fit]) -> String {
    let mut md = String::new();
    let _ = writeln!(md, "# Benchmarks\n");
    let _ = writeln!(
        md,
        "Generated by `bench_report` from criterion's saved estimates. Machine: {}. \
         Figures are criterion medians per call, ± half the 95% confidence interval of the \
         median; ratios compare medians of the same run. Targets are issue 4's.\n",
        machine()
    );

    let mut verdicts: Vec<(String, String)> = Vec::new();
    for (group, title, what) in [
        (
            "query",
            "Threshold query (`wb_thresh`), at the recompute's `T`",
            "Redistribute query ≤ 1.0× Linux, every n",
        ),
        (
            "query_t_moved",
            "Threshold query (`wb_thresh`), `T` 1% away from the recompute's",
            "Redistribute query (T moved) ≤ 1.0× Linux, every n",
        ),
        (
            "completion",
            "Completion (`writeout_inc`, one page)",
            "Redistribute completion ≤ 1.0× Linux, every n",
        ),
    ] {
        let mut part = String::new();
        if let Some(ok) = policy_table(&mut part, r, group) {
            let _ = writeln!(md, "## {title}\n\n{part}");
            verdicts.push((what.to_owned(), mark(ok).to_owned()));
        }
    }

    // recompute and rollover
    let scale_groups = ["recompute", "recompute_all_capped"];
    let ns = ns_of(r, "recompute");
    if !ns.is_empty() {
        let _ = writeln!(
            md,
            "## Water-level recompute (`rebalance`) and period rollover\n"
        );
        let _ = writeln!(
            md,
            "`recompute`: the fixture's mix; `recompute_all_capped`: every bdi ends at its cap \
             (n heap pops). `rollover`: one completion, then `tick` across a period boundary.\n"
        );
        let _ = writeln!(
            md,
            "| n | recompute | per bdi | recompute, all capped | rollover ClipOnly | rollover Linux | rollover Redistribute |"
        );
        let _ = writeln!(md, "|---:|---:|---:|---:|---:|---:|---:|");
        for &n in &ns {
            let g = |grp: &str, f: Option<&str>| find(r, grp, f, n).map_or("–".to_owned(), fmt_ci);
            let per = find(r, "recompute", None, n)
                .map_or("–".to_owned(), |b| fmt_time(b.median / n as f64));
            let _ = writeln!(
                md,
                "| {n} | {} | {per} | {} | {} | {} | {} |",
                g("recompute", None),
                g("recompute_all_capped", None),
                g("rollover", Some("clip_only")),
                g("rollover", Some("linux")),
                g("rollover", Some("redistribute")),
            );
        }
        let _ = writeln!(md);
        for f in fits {
            let _ = writeln!(
                md,
                "- `{}`: fitted exponent {:.2} over n = {}…{} (log-log least squares); \
                 n log n over the same range corresponds to {:.2}.",
                f.name, f.slope, f.lo_n, f.hi_n, f.nlogn_slope
            );
        }
        let _ = writeln!(md);
        for grp in scale_groups {
            if let Some(b) = find(r, grp, None, 16384) {
                verdicts.push((
                    format!("`{grp}` at n = 16384 < 1 ms ({})", fmt_time(b.median)),
                    mark(b.median < 1e6).to_owned(),
                ));
            }
        }
        for f in fits
            .iter()
            .filter(|f| scale_groups.contains(&f.name.as_str()))
        {
            verdicts.push((
                format!(
                    "`{}` scaling ≤ n log n (exponent {:.2} vs {:.2})",
                    f.name, f.slope, f.nlogn_slope
                ),
                mark(f.slope <= f.nlogn_slope).to_owned(),
            ));
        }
    }

    // simulator
    let sims: Vec<&Bench> = r.iter().filter(|b| b.group == "simulator").collect();
    if !sims.is_empty() {
        let _ = writeln!(md, "## Simulator throughput\n");
        let _ = writeln!(
            md,
            "One whole run of a built-in scenario (`sim::run`), device-steps per second = \
             devices × steps / median time.\n"
        );
        let _ = writeln!(md, "| scenario | ClipOnly | Linux | Redistribute |");
        let _ = writeln!(md, "|---|---:|---:|---:|");
        let mut scenarios: Vec<&str> = Vec::new();
        for sc in sims.iter().filter_map(|b| b.value.as_deref()) {
            if !scenarios.contains(&sc) {
                scenarios.push(sc);
            }
        }
        let mut worst = f64::INFINITY;
        for sc in scenarios {
            let mut row = format!("| {sc} |");
            for (p, _) in POLICIES {
                let b = sims
                    .iter()
                    .find(|b| b.value.as_deref() == Some(sc) && b.function.as_deref() == Some(p));
                match b.and_then(|b| b.elements.map(|e| e / b.median * 1e9)) {
                    Some(rate) => {
                        worst = worst.min(rate);
                        let _ = write!(row, " {rate:.3e} |");
                    }
                    None => row.push_str(" – |"),
                }
            }
            let _ = writeln!(md, "{row}");
        }
        let _ = writeln!(md);
        verdicts.push((
            format!("Simulator ≥ 1e7 device-steps/s (slowest: {worst:.2e})"),
            mark(worst >= 1e7).to_owned(),
        ));
    }

    // sizes
    let bdi = std::mem::size_of::<Bdi>();
    let dom = std::mem::size_of::<Domain<'static>>();
    let _ = writeln!(md, "## Memory\n");
    let _ = writeln!(
        md,
        "`size_of::<Bdi>()` (one device's slot, all its state) = **{bdi} bytes**; \
         `size_of::<Domain>()` = {dom} bytes (of which the water level {} bytes), \
         independent of n.\n",
        std::mem::size_of::<WaterLevel>()
    );
    let _ = writeln!(md, "| n | domain + slots | per device |");
    let _ = writeln!(md, "|---:|---:|---:|");
    for n in [1usize, 4, 64, 1024, 16384] {
        let total = dom + n * bdi;
        let _ = writeln!(md, "| {n} | {total} B | {:.1} B |", total as f64 / n as f64);
    }
    let _ = writeln!(md);
    verdicts.push((
        format!("Per-device state ≤ 64 bytes ({bdi} B)"),
        mark(bdi <= 64).to_owned(),
    ));

    let mut head = String::from("## Targets\n\n| target | |\n|---|---|\n");
    for (what, v) in &verdicts {
        let _ = writeln!(head, "| {what} | {v} |");
    }
    if sims.is_empty() {
        head.push_str(
            "| Simulator ≥ 1e7 device-steps/s | not measured (no `simulator` results) |\n",
        );
    }
    head.push('\n');
    let at = md.find("## ").unwrap_or(md.len());
    md.insert_str(at, &head);
    md
}

// ---------------------------------------------------------------------------
// scaling fits and the plot

struct Fit {
    name: String,
    points: Vec<(f64, f64)>,
    /// ln t = slope · ln n + icept, fitted over n in lo_n..=hi_n.
    slope: f64,
    icept: f64,
    lo_n: u64,
    hi_n: u64,
    /// The exponent n log n has over the same range.
    nlogn_slope: f64,
}

/// The smallest n a fit uses: below it, constant costs hide the growth.
const FIT_FROM: u64 = 64;

fn scaling_fits(r: &[Bench]) -> Vec<Fit> {
    let mut series: BTreeMap<String, Vec<(f64, f64)>> = BTreeMap::new();
    for b in r {
        let name = match (b.group.as_str(), b.function.as_deref()) {
            ("recompute" | "recompute_all_capped", None) => b.group.clone(),
            ("rollover", Some(p)) => format!("rollover/{p}"),
            _ => continue,
        };
        if let Some(n) = b.n() {
            series.entry(name).or_default().push((n as f64, b.median));
        }
    }
    let mut fits = Vec::new();
    for (name, mut pts) in series {
        pts.sort_by(|a, b| a.0.total_cmp(&b.0));
        let used: Vec<(f64, f64)> = pts
            .iter()
            .filter(|p| p.0 >= FIT_FROM as f64)
            .map(|&(n, t)| (n.ln(), t.ln()))
            .collect();
        if used.len() < 2 {
            continue;
        }
        let k = used.len() as f64;
        let (sx, sy) = used.iter().fold((0.0, 0.0), |a, p| (a.0 + p.0, a.1 + p.1));
        let (mx, my) = (sx / k, sy / k);
        let sxx: f64 = used.iter().map(|p| (p.0 - mx).powi(2)).sum();
        let sxy: f64 = used.iter().map(|p| (p.0 - mx) * (p.1 - my)).sum();
        let slope = sxy / sxx;
        let (lo, hi) = (used[0].0.exp(), used[used.len() - 1].0.exp());
        let nlogn = |n: f64| (n * n.ln()).ln();
        fits.push(Fit {
            name,
            slope,
            icept: my - slope * mx,
            lo_n: lo.round() as u64,
            hi_n: hi.round() as u64,
            nlogn_slope: (nlogn(hi) - nlogn(lo)) / (hi.ln() - lo.ln()),
            points: pts,
        });
    }
    fits
}

const FONT: &str = "sans-serif";

/// Font files tried after `$DIRTYLIMIT_FONT` (the simulator's plots use the same).
const FONT_CANDIDATES: [&str; 5] = [
    "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf",
    "/usr/share/fonts/TTF/DejaVuSans.ttf",
    "/usr/share/fonts/dejavu/DejaVuSans.ttf",
    "/usr/share/fonts/truetype/liberation/LiberationSans-Regular.ttf",
    "/usr/share/fonts/truetype/freefont/FreeSans.ttf",
];

/// Registers a TrueType font with plotters' `ab_glyph` backend.
fn font() -> Result<(), String> {
    let env = std::env::var_os("DIRTYLIMIT_FONT").map(PathBuf::from);
    for path in env
        .into_iter()
        .chain(FONT_CANDIDATES.iter().map(PathBuf::from))
    {
        if let Ok(bytes) = std::fs::read(&path) {
            let bytes: &'static [u8] = Vec::leak(bytes);
            return plotters::style::register_font(FONT, FontStyle::Normal, bytes)
                .map_err(|_| format!("{}: not a usable TrueType font", path.display()));
        }
    }
    Err("no font for plot text; apt-get install fonts-dejavu-core, or set DIRTYLIMIT_FONT".into())
}

const COLORS: [RGBColor; 5] = [
    RGBColor(31, 119, 180),
    RGBColor(214, 39, 40),
    RGBColor(44, 160, 44),
    RGBColor(255, 127, 14),
    RGBColor(148, 103, 189),
];

fn plot(path: &Path, fits: &[Fit]) -> Result<(), Box<dyn std::error::Error>> {
    let size = (960, 640);
    if path.extension().is_some_and(|e| e == "svg") {
        draw(SVGBackend::new(path, size).into_drawing_area(), fits)
    } else {
        draw(BitMapBackend::new(path, size).into_drawing_area(), fits)
    }
}

fn draw<DB: DrawingBackend>(
    root: DrawingArea<DB, plotters::coord::Shift>,
    fits: &[Fit],
) -> Result<(), Box<dyn std::error::Error>>
where
    DB::ErrorType: 'static,
{
    root.fill(&WHITE)?;
    let pts = fits.iter().flat_map(|f| f.points.iter());
    let (mut x0, mut x1, mut y0, mut y1) = (f64::MAX, 0f64, f64::MAX, 0f64);
    for &(n, t) in pts {
        x0 = x0.min(n);
        x1 = x1.max(n);
        y0 = y0.min(t);
        y1 = y1.max(t);
    }
    let mut chart = ChartBuilder::on(&root)
        .caption(
            "Water-level recompute and period rollover vs number of bdis",
            (FONT, 22),
        )
        .margin(16)
        .x_label_area_size(48)
        .y_label_area_size(80)
        .build_cartesian_2d(
            (x0 / 1.5..x1 * 1.5).log_scale(),
            (y0 / 2.0..y1 * 4.0).log_scale(),
        )?;
    chart
        .configure_mesh()
        .x_desc("n (bdis in the domain)")
        .y_desc("time per call (median)")
        .x_label_formatter(&|x| format!("{x:.0}"))
        .y_label_formatter(&|y| fmt_time(*y))
        .label_style((FONT, 14))
        .axis_desc_style((FONT, 16))
        .draw()?;
    // 1 ms: the recompute target at n = 16384
    chart
        .draw_series(DashedLineSeries::new(
            [(x0 / 1.5, 1e6), (x1 * 1.5, 1e6)],
            10,
            6,
            BLACK.mix(0.7).stroke_width(2),
        ))?
        .label("1 ms (recompute target at n = 16384)")
        .legend(|(x, y)| PathElement::new([(x, y), (x + 20, y)], BLACK.mix(0.7).stroke_width(2)));
    for (i, f) in fits.iter().enumerate() {
        let c = COLORS[i % COLORS.len()];
        chart
            .draw_series(LineSeries::new(f.points.iter().copied(), c.stroke_width(2)))?
            .label(format!(
                "{}: exponent {:.2} (n ≥ {})",
                f.name, f.slope, f.lo_n
            ))
            .legend(move |(x, y)| PathElement::new([(x, y), (x + 20, y)], c.stroke_width(2)));
        chart.draw_series(f.points.iter().map(|&p| Circle::new(p, 4, c.filled())))?;
        // the fitted line over the fitted range, dashed
        let (a, b) = (f.lo_n as f64, f.hi_n as f64);
        let line = |n: f64| (n, (f.icept + f.slope * n.ln()).exp());
        chart.draw_series(DashedLineSeries::new(
            [line(a), line(b)],
            6,
            4,
            c.mix(0.6).stroke_width(1),
        ))?;
    }
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::UpperLeft)
        .label_font((FONT, 14))
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK.mix(0.3))
        .draw()?;
    root.present()?;
    Ok(())
}

// ---------------------------------------------------------------------------
// a minimal JSON reader (criterion's files; no serde_json in the dependency tree)

#[derive(Debug, Clone)]
#[allow(dead_code)] // booleans and arrays are parsed, not read
enum Json {
    Null,
    Bool(bool),
    Num(f64),
    Str(String),
    Arr(Vec<Json>),
    Obj(Vec<(String, Json)>),
}

impl Json {
    fn parse(s: &str) -> Result<Json, String> {
        let mut p = Parser {
            s: s.as_bytes(),
            i: 0,
        };
        let v = p.value()?;
        p.ws();
        if p.i != p.s.len() {
            return Err(format!("trailing data at byte {}", p.i));
        }
        Ok(v)
    }

    fn get(&self, path: &[&str]) -> Option<&Json> {
        let mut v = self;
        for k in path {
            match v {
                Json::Obj(m) => v = &m.iter().find(|(key, _)| key == k)?.1,
                _ => return None,
            }
        }
        Some(v)
    }

    fn as_f64(&self) -> Option<f64> {
        match self {
            Json::Num(x) => Some(*x),
            _ => None,
        }
    }

    fn as_str(&self) -> Option<&str> {
        match self {
            Json::Str(s) => Some(s),
            _ => None,
        }
    }
}

struct Parser<'a> {
    s: &'a [u8],
    i: usize,
}

impl Parser<'_> {
    fn ws(&mut self) {
        while self.s.get(self.i).is_some_and(|c| c.is_ascii_whitespace()) {
            self.i += 1;
        }
    }

    fn eat(&mut self, c: u8) -> Result<(), String> {
        self.ws();
        if self.s.get(self.i) == Some(&c) {
            self.i += 1;
            Ok(())
        } else {
            Err(format!("expected {:?} at byte {}", c as char, self.i))
        }
    }

    fn lit(&mut self, word: &str, v: Json) -> Result<Json, String> {
        if self.s[self.i..].starts_with(word.as_bytes()) {
            self.i += word.len();
            Ok(v)
        } else {
            Err(format!("bad literal at byte {}", self.i))
        }
    }

    fn value(&mut self) -> Result<Json, String> {
        self.ws();
        match self.s.get(self.i) {
            None => Err("unexpected end".into()),
            Some(b'n') => self.lit("null", Json::Null),
            Some(b't') => self.lit("true", Json::Bool(true)),
            Some(b'f') => self.lit("false", Json::Bool(false)),
            Some(b'"') => self.string().map(Json::Str),
            Some(b'[') => {
                self.i += 1;
                let mut v = Vec::new();
                self.ws();
                if self.s.get(self.i) == Some(&b']') {
                    self.i += 1;
                    return Ok(Json::Arr(v));
                }
                loop {
                    v.push(self.value()?);
                    self.ws();
                    match self.s.get(self.i) {
                        Some(b',') => self.i += 1,
                        Some(b']') => {
                            self.i += 1;
                            return Ok(Json::Arr(v));
                        }
                        _ => return Err(format!("expected , or ] at byte {}", self.i)),
                    }
                }
            }
            Some(b'{') => {
                self.i += 1;
                let mut m = Vec::new();
                self.ws();
                if self.s.get(self.i) == Some(&b'}') {
                    self.i += 1;
                    return Ok(Json::Obj(m));
                }
                loop {
                    self.ws();
                    let k = self.string()?;
                    self.eat(b':')?;
                    m.push((k, self.value()?));
                    self.ws();
                    match self.s.get(self.i) {
                        Some(b',') => self.i += 1,
                        Some(b'}') => {
                            self.i += 1;
                            return Ok(Json::Obj(m));
                        }
                        _ => return Err(format!("expected , or }} at byte {}", self.i)),
                    }
                }
            }
            Some(_) => {
                let start = self.i;
                while self
                    .s
                    .get(self.i)
                    .is_some_and(|c| c.is_ascii_digit() || b"+-.eE".contains(c))
                {
                    self.i += 1;
                }
                std::str::from_utf8(&self.s[start..self.i])
                    .ok()
                    .and_then(|t| t.parse().ok())
                    .map(Json::Num)
                    .ok_or_else(|| format!("bad number at byte {start}"))
            }
        }
    }

    fn string(&mut self) -> Result<String, String> {
        self.eat(b'"')?;
        let mut out = String::new();
        loop {
            let start = self.i;
            while self.s.get(self.i).is_some_and(|&c| c != b'"' && c != b'\\') {
                self.i += 1;
            }
            out.push_str(std::str::from_utf8(&self.s[start..self.i]).map_err(|e| e.to_string())?);
            match self.s.get(self.i) {
                Some(b'"') => {
                    self.i += 1;
                    return Ok(out);
                }
                Some(b'\\') => {
                    let c = *self.s.get(self.i + 1).ok_or("unterminated escape")?;
                    self.i += 2;
                    match c {
                        b'n' => out.push('\n'),
                        b't' => out.push('\t'),
                        b'r' => out.push('\r'),
                        b'b' => out.push('\u{8}'),
                        b'f' => out.push('\u{c}'),
                        b'u' => {
                            let hex = self.s.get(self.i..self.i + 4).ok_or("short \\u escape")?;
                            let code = u32::from_str_radix(
                                std::str::from_utf8(hex).map_err(|e| e.to_string())?,
                                16,
                            )
                            .map_err(|e| e.to_string())?;
                            out.push(char::from_u32(code).unwrap_or('\u{fffd}'));
                            self.i += 4;
                        }
                        c => out.push(c as char),
                    }
                }
                _ => return Err("unterminated string".into()),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_criterion_estimates() {
        let s = r#"{"mean":{"confidence_interval":{"confidence_level":0.95,"lower_bound":1.5,
            "upper_bound":2.5},"point_estimate":2.0,"standard_error":0.1},
            "median":{"confidence_interval":{"confidence_level":0.95,"lower_bound":24.9e0,
            "upper_bound":28.5},"point_estimate":26.7,"standard_error":0.9},"slope":null,
            "x":[1,-2,{"a":"b\"c\u00e9"}],"t":true}"#;
        let j = Json::parse(s).unwrap();
        assert_eq!(
            j.get(&["median", "point_estimate"]).and_then(Json::as_f64),
            Some(26.7)
        );
        assert_eq!(
            j.get(&["median", "confidence_interval", "lower_bound"])
                .and_then(Json::as_f64),
            Some(24.9)
        );
        assert!(j.get(&["slope", "x"]).is_none());
        assert!(Json::parse("{\"a\":1} x").is_err());
    }

    #[test]
    fn fits_a_power_law() {
        let mk = |n: u64, t: f64| Bench {
            group: "recompute".into(),
            function: None,
            value: Some(n.to_string()),
            median: t,
            lo: t,
            hi: t,
            elements: None,
        };
        let r: Vec<Bench> = [1u64, 64, 256, 1024, 4096]
            .iter()
            .map(|&n| mk(n, 3.0 * (n as f64).powf(1.5)))
            .collect();
        let f = scaling_fits(&r);
        assert_eq!(f.len(), 1);
        assert!((f[0].slope - 1.5).abs() < 1e-9, "{}", f[0].slope);
        assert_eq!((f[0].lo_n, f[0].hi_n), (64, 4096));
        assert!(f[0].nlogn_slope > 1.0 && f[0].nlogn_slope < 1.3);
    }
}
