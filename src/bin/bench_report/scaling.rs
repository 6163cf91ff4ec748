//! How the recompute and the period rollover scale with the number of bdis:
//! a power law fitted on log-log axes, and its figure.

use std::collections::BTreeMap;
use std::path::Path;

use dirtylimit::sim::plot::FONT_FAMILY;
use plotters::prelude::*;

use crate::estimates::{fmt_time, Bench};

/// One series and its fit.
pub struct Fit {
    pub name: String,
    pub points: Vec<(f64, f64)>,
    /// ln t = slope · ln n + icept, fitted over n in lo_n..=hi_n.
    pub slope: f64,
    pub icept: f64,
    pub lo_n: u64,
    pub hi_n: u64,
    /// The exponent n log n has over the same range.
    pub nlogn_slope: f64,
}

/// The smallest n a fit uses: below it, constant costs hide the growth.
const FIT_FROM: u64 = 64;

/// A power law `t = c·n^slope` per series, fitted from n = [`FIT_FROM`] up.
pub fn fits(r: &[Bench]) -> Vec<Fit> {
    let mut series: BTreeMap<String, Vec<(f64, f64)>> = BTreeMap::new();
    for b in r {
        let name = match (b.group.as_str(), b.function.as_deref()) {
            ("recompute" | "recompute_all_capped" | "recompute_lend", None) => b.group.clone(),
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

const COLORS: [RGBColor; 7] = [
    RGBColor(31, 119, 180),
    RGBColor(214, 39, 40),
    RGBColor(44, 160, 44),
    RGBColor(255, 127, 14),
    RGBColor(148, 103, 189),
    RGBColor(140, 86, 75),
    RGBColor(23, 190, 207),
];

/// The scaling figure, SVG or PNG by the extension of `path`.
pub fn plot(path: &Path, fits: &[Fit]) -> Result<(), Box<dyn std::error::Error>> {
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
            (FONT_FAMILY, 22),
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
        .label_style((FONT_FAMILY, 14))
        .axis_desc_style((FONT_FAMILY, 16))
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
        .label_font((FONT_FAMILY, 14))
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK.mix(0.3))
        .draw()?;
    root.present()?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

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
        let f = fits(&r);
        assert_eq!(f.len(), 1);
        assert!((f[0].slope - 1.5).abs() < 1e-9, "{}", f[0].slope);
        assert_eq!((f[0].lo_n, f[0].hi_n), (64, 4096));
        assert!(f[0].nlogn_slope > 1.0 && f[0].nlogn_slope < 1.3);
    }
}
