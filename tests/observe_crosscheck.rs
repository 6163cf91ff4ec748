//! Scoring of the cross-check (pure functions; the experiment itself needs root and runs in
//! `.ci/run`), and the environment check's behaviour for a non-root user.
#![cfg(feature = "std")]

use dirtylimit::observe::crosscheck::{markdown, median, quantile, score, unused_series, Obs};

fn obs(phase: usize, since: f64, bdi: &str, kernel: u64, linux: u64, active: bool) -> Obs {
    Obs {
        phase,
        since,
        bdi: bdi.into(),
        written: if active { 100 } else { 0 },
        thresh: 1000,
        kernel,
        linux,
        redistribute: linux,
        rel_err: (kernel > 0).then(|| (linux as f64 - kernel as f64) / kernel as f64),
        band_err: Some(0.0),
        active,
    }
}

#[test]
fn median_and_quantiles() {
    assert_eq!(median(&mut []), None);
    assert_eq!(median(&mut [3.0]), Some(3.0));
    assert_eq!(median(&mut [4.0, 1.0, 3.0, 2.0]), Some(2.5));
    assert_eq!(median(&mut [5.0, 1.0, 3.0]), Some(3.0));
    let mut v: Vec<f64> = (1..=10).map(f64::from).collect();
    assert_eq!(quantile(&mut v, 0.9), Some(9.0));
    assert_eq!(quantile(&mut v, 1.0), Some(10.0));
    assert_eq!(quantile(&mut v, 0.0), Some(1.0));
}

#[test]
fn score_skips_the_settling_time_and_reports_per_phase() {
    let mut o = Vec::new();
    for s in 0..20 {
        let since = f64::from(s);
        // Phase 1: the model is 20% off while settling (< 5 s), then 1% off.
        let linux = if s < 5 { 600 } else { 505 };
        o.push(obs(1, since, "7:0", 500, linux, true));
        o.push(obs(1, since, "7:1", 250, 250, true));
        // An idle bdi at its floor, exactly predicted.
        o.push(obs(1, since, "7:2", 125, 125, false));
    }
    let phases = vec!["idle".to_string(), "A alone".to_string()];
    let roles = vec![
        ("7:0".to_string(), "A".to_string()),
        ("7:1".to_string(), "B".to_string()),
    ];
    let (res, ph) = score(&o, &phases, &roles, 5.0, 1.0);
    assert_eq!(res.len(), 2);
    let a = &res[0];
    assert_eq!((a.phase, a.bdi.as_str(), a.samples), (1, "7:0", 15));
    assert!((a.median_err.unwrap() - 0.01).abs() < 1e-12);
    assert!((a.kernel_mib - 500.0 * 4096.0 / 1048576.0).abs() < 1e-9);
    // 100 pages per 1 s sample.
    assert!((a.written_mibs - 100.0 * 4096.0 / 1048576.0).abs() < 1e-9);
    assert_eq!(res[1].median_err, Some(0.0));
    // Unused share over the active bdis (7:0 and 7:1): all samples, settling included.
    assert_eq!(ph[1].samples, 20);
    assert_eq!(ph[1].counted, vec!["7:0".to_string(), "7:1".to_string()]);
    let k = ph[1].kernel_mean.unwrap();
    assert!((k - 0.25).abs() < 1e-12, "{k}");
    assert!((ph[1].kernel_max.unwrap() - 0.25).abs() < 1e-12);
    // The model was 100 pages high while settling (5 of 20 samples) and 5 after.
    let m = ph[1].linux_mean.unwrap();
    let want = 1.0 - (5.0 * 850.0 + 15.0 * 755.0) / 20.0 / 1000.0;
    assert!((m - want).abs() < 1e-12, "{m} {want}");
    assert_eq!(ph[0].samples, 0);
    assert!(unused_series(&o, 0).is_empty());

    let md = markdown(&res, &ph, 5.0, 0.05);
    assert!(md.contains("| A alone | A (7:0) |"), "{md}");
    assert!(md.contains("1.00%"), "{md}");
    assert!(!md.contains('✗'), "no bdi is over 5%: {md}");
    let md = markdown(&res, &ph, 5.0, 0.005);
    assert!(md.contains("1.00% ✗"), "{md}");
}

/// The CI path: without root, `crosscheck --skip-unavailable` says why and exits 0, and
/// `observe` fails with a clear message. Run as `nobody` through `setpriv` when this test runs
/// as root (as in CI); otherwise as the current non-root user.
#[test]
fn non_root_skips_crosscheck_and_refuses_observe() {
    use std::process::Command;
    let bin = env!("CARGO_BIN_EXE_dirtylimit");
    let as_root = std::fs::read_to_string("/proc/self/status")
        .map(|s| {
            s.lines()
                .any(|l| l.starts_with("Uid:") && l.split_whitespace().nth(2) == Some("0"))
        })
        .unwrap_or(false);
    let cmd = |args: &[&str]| {
        let mut c = if as_root {
            let mut c = Command::new("setpriv");
            c.args(["--reuid=65534", "--regid=65534", "--clear-groups", bin]);
            c
        } else {
            Command::new(bin)
        };
        c.args(args);
        c.output()
    };
    let out = match cmd(&["crosscheck", "--skip-unavailable"]) {
        Ok(o) if o.status.code() != Some(126) && o.status.code() != Some(127) => o,
        Ok(o) => {
            eprintln!(
                "skipped: cannot run the binary as nobody: {}",
                String::from_utf8_lossy(&o.stderr)
            );
            return;
        }
        Err(e) => {
            eprintln!("skipped: setpriv unavailable: {e}");
            return;
        }
    };
    let stdout = String::from_utf8_lossy(&out.stdout);
    if out.status.code() == Some(1)
        && String::from_utf8_lossy(&out.stderr).contains("Permission denied")
    {
        eprintln!("skipped: the build directory is not readable by nobody");
        return;
    }
    assert_eq!(out.status.code(), Some(0), "{stdout}");
    assert!(stdout.contains("crosscheck skipped: not root"), "{stdout}");
    let out = cmd(&["observe", "--count", "1"]).unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("must run as root"), "{stderr}");
}
