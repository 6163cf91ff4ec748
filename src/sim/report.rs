//! CSV output and the metrics table. All numbers are printed with a fixed
//! number of decimals, so the same run gives byte-identical output.

use std::format;
use std::io::{self, Write};
use std::string::String;
use std::vec::Vec;

use super::record::{Metrics, Recording};
use super::scenario::{Scenario, PAGES_PER_MIB};
use crate::policy::Policy;

/// Header of [`write_timeseries`].
pub const TIMESERIES_HEADER: &str = "policy,t_s,kind,name,wb_thresh_pages,wb_bg_thresh_pages,\
dirty_pages,writeback_pages,written_pages,bw_pages_s,bw_est_pages_s,dirtied_pages,throttled,\
thresh_pages,bg_thresh_pages,hard_limit_pages,global_dirty_pages,global_writeback_pages,unused_share";

/// Writes the runs of one scenario as a long CSV: per sample, one `device`
/// row per device and one `writer` row per writer (fields that do not apply
/// are empty). Pages are 4 KiB.
pub fn write_timeseries(out: &mut dyn Write, sc: &Scenario, runs: &[Recording]) -> io::Result<()> {
    writeln!(out, "{TIMESERIES_HEADER}")?;
    for rec in runs {
        let p = rec.policy.map_or("?", Policy::name);
        for (k, g) in rec.global.iter().enumerate() {
            let t = format!("{}.{:03}", g.t_ms / 1000, g.t_ms % 1000);
            let unused = if g.thresh > 0 {
                format!(
                    "{:.6}",
                    g.thresh.saturating_sub(g.sum_wb_thresh) as f64 / g.thresh as f64
                )
            } else {
                String::new()
            };
            let global = format!(
                "{},{},{},{},{},{}",
                g.thresh, g.bg_thresh, g.hard_limit, g.dirty, g.writeback, unused
            );
            for (d, spec) in sc.devices.iter().enumerate() {
                let s = rec.dev(k, d);
                writeln!(
                    out,
                    "{p},{t},device,{},{},{},{},{},{},{},{},,,{global}",
                    spec.name,
                    s.wb_thresh,
                    s.wb_bg_thresh,
                    s.dirty,
                    s.writeback,
                    s.written,
                    s.bw,
                    s.bw_est
                )?;
            }
            for (w, spec) in sc.writers.iter().enumerate() {
                let s = rec.writer(k, w);
                writeln!(
                    out,
                    "{p},{t},writer,{},,,,,,,,{},{},{global}",
                    spec.name,
                    s.dirtied,
                    u8::from(s.throttled)
                )?;
            }
        }
    }
    Ok(())
}

/// Header of [`write_metrics_csv`].
pub const METRICS_HEADER: &str = "scenario,policy,metric,subject,value,unit";

fn opt(v: Option<f64>, prec: usize) -> String {
    v.map_or(String::new(), |x| format!("{x:.prec$}"))
}

/// Writes metrics as a long CSV: one row per (scenario, policy, metric,
/// subject). A convergence that did not settle has an empty value.
pub fn write_metrics_csv(out: &mut dyn Write, all: &[Metrics]) -> io::Result<()> {
    writeln!(out, "{METRICS_HEADER}")?;
    for m in all {
        let s = &m.scenario;
        let p = m.policy.name();
        for c in &m.convergence {
            writeln!(
                out,
                "{s},{p},convergence,t={:.1}s {},{},s",
                c.at_ms as f64 / 1000.0,
                csv_field(&c.label),
                opt(c.secs, 1)
            )?;
        }
        writeln!(
            out,
            "{s},{p},unused_share,while_throttled,{},fraction",
            opt(m.unused_share, 4)
        )?;
        writeln!(out, "{s},{p},throttled_time,all,{:.2},s", m.throttled_s)?;
        for (w, r) in &m.writer_mib_s {
            writeln!(out, "{s},{p},throughput,{w},{r:.2},MiB/s")?;
        }
        writeln!(out, "{s},{p},throughput,total,{:.2},MiB/s", m.total_mib_s)?;
        for (d, v) in &m.peak_pinned_mib {
            writeln!(out, "{s},{p},peak_pinned,{d},{v:.2},MiB")?;
        }
        writeln!(
            out,
            "{s},{p},peak_global_dirty,all,{:.2},MiB",
            m.peak_dirty_mib
        )?;
        writeln!(out, "{s},{p},dirty_thresh,all,{:.2},MiB", m.thresh_mib)?;
        writeln!(
            out,
            "{s},{p},peak_over_hard_limit,all,{:.3},MiB",
            m.peak_over_limit_mib
        )?;
    }
    Ok(())
}

fn csv_field(s: &str) -> String {
    if s.contains([',', '"', '\n']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        String::from(s)
    }
}

/// The metrics as a Markdown table, one row per run. Convergence lists the
/// seconds after each change (`t=20s: 4.2`), `—` when it did not settle.
pub fn table(all: &[Metrics]) -> String {
    let mut rows: Vec<[String; 7]> = Vec::new();
    rows.push([
        "scenario".into(),
        "policy".into(),
        "unused share (throttled)".into(),
        "throughput MiB/s".into(),
        "peak pinned MiB (device)".into(),
        "peak dirty / T MiB".into(),
        "convergence s after change at t=".into(),
    ]);
    for m in all {
        let conv = m
            .convergence
            .iter()
            .map(|c| {
                let v = c.secs.map_or("—".into(), |x| format!("{x:.1}"));
                format!("{}s: {v}", fmt_secs(c.at_ms))
            })
            .collect::<Vec<_>>()
            .join(", ");
        let (pdev, pmax) =
            m.peak_pinned_mib
                .iter()
                .fold((String::new(), -1.0f64), |(n, v), (dn, dv)| {
                    if *dv > v {
                        (dn.clone(), *dv)
                    } else {
                        (n, v)
                    }
                });
        let unused = m.unused_share.map_or("n/a".into(), |u| {
            format!("{:.1}% ({:.0} s)", u * 100.0, m.throttled_s)
        });
        rows.push([
            m.scenario.clone(),
            m.policy.name().into(),
            unused,
            format!("{:.1}", m.total_mib_s),
            format!("{pmax:.1} ({pdev})"),
            format!("{:.0} / {:.0}", m.peak_dirty_mib, m.thresh_mib),
            conv,
        ]);
    }
    let mut widths = [0usize; 7];
    for r in &rows {
        for (w, c) in widths.iter_mut().zip(r) {
            *w = (*w).max(c.chars().count());
        }
    }
    let mut s = String::new();
    for (i, r) in rows.iter().enumerate() {
        s.push('|');
        for (w, c) in widths.iter().zip(r) {
            s.push(' ');
            s.push_str(c);
            for _ in c.chars().count()..*w {
                s.push(' ');
            }
            s.push_str(" |");
        }
        s.push('\n');
        if i == 0 {
            s.push('|');
            for w in widths {
                s.push_str(&"-".repeat(w + 2));
                s.push('|');
            }
            s.push('\n');
        }
    }
    s
}

fn fmt_secs(ms: u64) -> String {
    if ms % 1000 == 0 {
        format!("{}", ms / 1000)
    } else {
        format!("{:.1}", ms as f64 / 1000.0)
    }
}

/// Pages to MiB.
pub fn mib(pages: u64) -> f64 {
    pages as f64 / PAGES_PER_MIB as f64
}
