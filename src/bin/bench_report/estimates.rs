//! criterion's saved estimates: `<id>/new/estimates.json` and its
//! `benchmark.json`, read with serde.

use std::path::Path;

use serde::Deserialize;

/// One benchmark: `group/function/value` as criterion names it.
#[derive(Clone, Debug)]
pub struct Bench {
    pub group: String,
    pub function: Option<String>,
    /// The parameter (`n`, or a scenario name).
    pub value: Option<String>,
    /// Median, and its 95% confidence interval, in ns per iteration.
    pub median: f64,
    pub lo: f64,
    pub hi: f64,
    /// Elements per iteration, when the bench declared a throughput.
    pub elements: Option<f64>,
}

impl Bench {
    /// The parameter as a number of bdis, when it is one.
    pub fn n(&self) -> Option<u64> {
        self.value.as_deref().and_then(|v| v.parse().ok())
    }
}

/// `12.3 ns`, `4.56 µs`, `1.23 ms`.
pub fn fmt_time(ns: f64) -> String {
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

/// The part of `estimates.json` used here.
#[derive(Deserialize)]
pub struct Estimates {
    pub median: Estimate,
}

/// One statistic with its confidence interval.
#[derive(Deserialize)]
pub struct Estimate {
    pub point_estimate: f64,
    pub confidence_interval: Interval,
}

/// A confidence interval.
#[derive(Deserialize)]
pub struct Interval {
    pub lower_bound: f64,
    pub upper_bound: f64,
}

/// The part of `benchmark.json` used here.
#[derive(Deserialize)]
struct Meta {
    group_id: String,
    function_id: Option<String>,
    value_str: Option<String>,
    /// `{"Elements": n}` or `{"Bytes": n}`.
    throughput: Option<serde_json::Value>,
}

/// Every `*/new/estimates.json` (with its `benchmark.json`) under `dir`.
pub fn load(dir: &Path) -> Result<Vec<Bench>, String> {
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

fn read_json<T: for<'de> Deserialize<'de>>(p: &Path) -> Result<T, String> {
    let s = std::fs::read_to_string(p).map_err(|e| format!("{}: {e}", p.display()))?;
    serde_json::from_str(&s).map_err(|e| format!("{}: {e}", p.display()))
}

fn read_bench(est: &Path, meta: &Path) -> Result<Bench, String> {
    let e: Estimates = read_json(est)?;
    let m: Meta = read_json(meta)?;
    Ok(Bench {
        group: m.group_id,
        function: m.function_id,
        value: m.value_str,
        median: e.median.point_estimate,
        lo: e.median.confidence_interval.lower_bound,
        hi: e.median.confidence_interval.upper_bound,
        elements: m
            .throughput
            .as_ref()
            .and_then(|t| t.get("Elements"))
            .and_then(serde_json::Value::as_f64),
    })
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
        let j: Estimates = serde_json::from_str(s).unwrap();
        assert_eq!(j.median.point_estimate, 26.7);
        assert_eq!(j.median.confidence_interval.lower_bound, 24.9);
        let v: serde_json::Value = serde_json::from_str(s).unwrap();
        assert!(v.pointer("/slope/x").is_none());
        assert!(serde_json::from_str::<serde_json::Value>("{\"a\":1} x").is_err());
    }
}
