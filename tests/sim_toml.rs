//! Scenario files: the example parses, and bad files are rejected with the
//! field and the line named. Also the command line's errors.

use std::process::Command;

use dirtylimit::sim::Scenario;
use dirtylimit::Policy;

const GOOD: &str = r#"
name = "t"
duration_s = 5

[memory]
dirtyable_mib = 1024

[[device]]
name = "a"
bandwidth_mib_s = 100

[[writer]]
name = "w"
device = "a"
"#;

fn err(text: &str) -> dirtylimit::sim::ScenarioError {
    match Scenario::from_toml(text, "test.toml") {
        Ok(_) => panic!("accepted:\n{text}"),
        Err(e) => e,
    }
}

#[test]
fn example_file_parses_and_expands_groups() {
    let path = std::path::Path::new(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/scenarios/example.toml"
    ));
    let sc = Scenario::from_file(path).expect("example parses");
    assert_eq!(sc.name, "example");
    let names: Vec<_> = sc.devices.iter().map(|d| d.name.as_str()).collect();
    assert_eq!(names, ["ssd", "nas", "usb-0", "usb-1"]);
    let writers: Vec<_> = sc.writers.iter().map(|w| w.name.as_str()).collect();
    assert_eq!(writers, ["build", "backup", "copy-0", "copy-1"]);
    assert_eq!(sc.writers[0].rate, Some(200 * 256));
    assert_eq!(sc.writers[1].rate, None);
    assert_eq!(sc.events.len(), 2);
    assert!(sc.events[0].at_ms < sc.events[1].at_ms);
    assert_eq!(sc.duration_ms, 30_000);
    Scenario::from_toml(GOOD, "good.toml").expect("minimal file parses");
}

#[test]
fn unknown_field_is_named_with_its_line() {
    let e = err(&GOOD.replace(
        "bandwidth_mib_s = 100",
        "bandwidth_mib_s = 100\nbandwith = 3",
    ));
    assert_eq!(e.field.as_deref(), Some("device[0].bandwith"), "{e}");
    assert_eq!(e.line_col.map(|l| l.0), Some(11), "{e}");
    let s = e.to_string();
    assert!(s.starts_with("test.toml:11:"), "{s}");
    assert!(s.contains("bandwith"), "{s}");
}

#[test]
fn wrong_type_and_out_of_range_values_are_named() {
    let e = err(&GOOD.replace("bandwidth_mib_s = 100", "bandwidth_mib_s = \"fast\""));
    assert_eq!(e.field.as_deref(), Some("device[0].bandwidth_mib_s"), "{e}");
    assert_eq!(e.line_col.map(|l| l.0), Some(10), "{e}");

    let e = err(&GOOD.replace(
        "bandwidth_mib_s = 100",
        "bandwidth_mib_s = 100\nmax_ratio = 150",
    ));
    assert_eq!(e.field.as_deref(), Some("device[0].max_ratio"), "{e}");
    assert_eq!(e.line_col.map(|l| l.0), Some(11), "{e}");
    assert!(e.message.contains("150"), "{e}");

    let e = err(&GOOD.replace("bandwidth_mib_s = 100", "bandwidth_mib_s = -1"));
    assert_eq!(e.field.as_deref(), Some("device[0].bandwidth_mib_s"), "{e}");

    let e = err(&GOOD.replace("duration_s = 5", "duration_s = 0"));
    assert_eq!(e.field.as_deref(), Some("duration_s"), "{e}");
    assert_eq!(e.line_col.map(|l| l.0), Some(3), "{e}");
}

#[test]
fn missing_field_and_syntax_errors_have_a_line() {
    let e = err(&GOOD.replace("bandwidth_mib_s = 100\n", ""));
    assert_eq!(e.field.as_deref(), Some("device[0]"), "{e}");
    assert!(e.message.contains("bandwidth_mib_s"), "{e}");
    assert_eq!(e.line_col.map(|l| l.0), Some(8), "{e}");

    let e = err(&GOOD.replace("[[device]]", "[[device]"));
    assert_eq!(e.line_col.map(|l| l.0), Some(8), "{e}");
}

#[test]
fn unknown_device_reference_is_named() {
    let e = err(&GOOD.replace("device = \"a\"", "device = \"b\""));
    assert_eq!(e.field.as_deref(), Some("writer[0].device"), "{e}");
    assert_eq!(e.line_col.map(|l| l.0), Some(14), "{e}");
    assert!(e.message.contains("\"b\""), "{e}");

    let text = format!("{GOOD}\n[[event]]\nat_s = 1\ndevice = \"zz\"\nmax_ratio = 5\n");
    let e = err(&text);
    assert_eq!(e.field.as_deref(), Some("event[0].device"), "{e}");
    assert_eq!(e.line_col.map(|l| l.0), Some(18), "{e}");
}

#[test]
fn settings_the_core_rejects_are_reported_with_their_line() {
    // min_ratio sums to 100%: the core refuses the second one.
    let text = format!(
        "{GOOD}\n[[device]]\nname = \"b\"\nbandwidth_mib_s = 1\nmin_ratio = 60\n\n[[device]]\nname = \"c\"\nbandwidth_mib_s = 1\nmin_ratio = 40\n"
    );
    let e = err(&text);
    // The line of the rejected device (its name).
    assert_eq!(e.line_col.map(|l| l.0), Some(22), "{e}");
    assert!(
        e.field.as_deref().unwrap_or("").contains("min_ratio"),
        "{e}"
    );

    // An event whose setting the core rejects: min above max.
    let text =
        format!("{GOOD}\n[[event]]\nat_s = 1\ndevice = \"a\"\nmin_ratio = 50\nmax_ratio = 10\n");
    let e = err(&text);
    // The line of the event (its device).
    assert_eq!(e.line_col.map(|l| l.0), Some(18), "{e}");
    assert!(
        e.field.as_deref().unwrap_or("").starts_with("event."),
        "{e}"
    );
}

#[test]
fn event_without_a_change_and_bad_times_are_rejected() {
    let e = err(&format!("{GOOD}\n[[event]]\nat_s = 1\ndevice = \"a\"\n"));
    assert_eq!(e.field.as_deref(), Some("event[0]"), "{e}");
    let e = err(&GOOD.replace("device = \"a\"", "device = \"a\"\nstart_s = 3\nstop_s = 2"));
    assert_eq!(e.field.as_deref(), Some("writer[0].stop_s"), "{e}");
    assert_eq!(e.line_col.map(|l| l.0), Some(16), "{e}");
}

#[test]
fn period_boundaries_must_be_positive_and_increasing() {
    let with = |list: &str| {
        GOOD.replace(
            "duration_s = 5",
            &format!("duration_s = 5\nperiod_boundaries_s = [{list}]"),
        )
    };
    let sc = Scenario::from_toml(&with("0.5, 3.5"), "t.toml").expect("increasing boundaries parse");
    assert_eq!(sc.period_boundaries_s, [0.5, 3.5]);
    for bad in ["3.5, 0.5", "1.0, 1.0", "0, 1", "-1, 2"] {
        let e = err(&with(bad));
        assert_eq!(
            e.field.as_deref(),
            Some("period_boundaries_s"),
            "[{bad}]: {e}"
        );
    }
}

fn bin() -> Command {
    Command::new(env!("CARGO_BIN_EXE_dirtylimit"))
}

#[test]
fn cli_rejects_bad_arguments_with_a_non_zero_exit() {
    let out = bin()
        .args(["simulate", "no-such-scenario"])
        .output()
        .expect("runs");
    assert!(!out.status.success());
    let msg = String::from_utf8_lossy(&out.stderr);
    assert!(
        msg.contains("no-such-scenario") && msg.contains("max-ratio-lowered"),
        "{msg}"
    );

    let out = bin()
        .args(["simulate", "usb-beside-ssd", "--policy", "fastest"])
        .output()
        .expect("runs");
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("fastest"));

    let out = bin().args(["plot", "--bogus"]).output().expect("runs");
    assert!(!out.status.success());

    let dir = std::env::temp_dir().join(format!("dirtylimit-sim-toml-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("tmp");
    let bad = dir.join("bad.toml");
    std::fs::write(
        &bad,
        GOOD.replace("bandwidth_mib_s = 100", "bandwidth_mib_s = true"),
    )
    .expect("write");
    let out = bin().args(["simulate"]).arg(&bad).output().expect("runs");
    assert!(!out.status.success());
    let msg = String::from_utf8_lossy(&out.stderr);
    assert!(
        msg.contains("bad.toml:10:") && msg.contains("device[0].bandwidth_mib_s"),
        "{msg}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn cli_simulate_writes_csv_and_scenarios_lists() {
    let out = bin().args(["scenarios"]).output().expect("runs");
    assert!(out.status.success());
    let list = String::from_utf8_lossy(&out.stdout);
    assert_eq!(list.lines().count(), 9, "{list}");

    let out = bin()
        .args(["simulate", "fine-max-ratio-fuse", "--policy", "linux"])
        .output()
        .expect("runs");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let csv = String::from_utf8_lossy(&out.stdout);
    let mut lines = csv.lines();
    assert_eq!(
        lines.next(),
        Some(dirtylimit::sim::report::TIMESERIES_HEADER)
    );
    assert!(lines.all(|l| l.starts_with("linux,")));
    assert!(String::from_utf8_lossy(&out.stderr).contains("fine-max-ratio-fuse"));
}

/// `plot` writes every figure of a scenario as SVG and PNG, plus the metrics.
/// Needs a font (Debian's fonts-dejavu-core); without one the test is
/// skipped locally but fails under CI, where .ci/run must install it.
#[test]
fn cli_plot_writes_svg_and_png_figures() {
    if let Err(e) = dirtylimit::sim::plot::init_font() {
        assert!(
            std::env::var_os("CI").is_none(),
            "CI must provide a font: {e}"
        );
        eprintln!("skipped: {e}");
        return;
    }
    let dir = std::env::temp_dir().join(format!("dirtylimit-sim-plot-{}", std::process::id()));
    let out = bin()
        .args(["plot", "--scenario", "max-ratio-lowered", "--out"])
        .arg(&dir)
        .output()
        .expect("runs");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let table = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        table
            .lines()
            .filter(|l| l.starts_with("| max-ratio-lowered"))
            .count(),
        Policy::ALL.len(),
        "{table}"
    );
    for kind in ["thresh", "unused", "throughput"] {
        let png = std::fs::read(dir.join(format!("max-ratio-lowered-{kind}.png"))).expect("png");
        assert!(
            png.starts_with(b"\x89PNG\r\n\x1a\n") && png.len() > 10_000,
            "{kind}.png"
        );
        let svg = std::fs::read_to_string(dir.join(format!("max-ratio-lowered-{kind}.svg")))
            .expect("svg");
        assert!(
            svg.contains("<svg") && svg.contains("time (s)"),
            "{kind}.svg"
        );
    }
    let svg = std::fs::read_to_string(dir.join("max-ratio-lowered-thresh.svg")).expect("svg");
    for label in [
        "ClipOnly",
        "Linux",
        "Redistribute",
        "disk-a wb_thresh",
        "MiB",
    ] {
        assert!(svg.contains(label), "thresh.svg lacks {label:?}");
    }
    let csv = std::fs::read_to_string(dir.join("metrics.csv")).expect("metrics.csv");
    assert!(csv.starts_with(dirtylimit::sim::report::METRICS_HEADER));
    assert!(csv.contains("max-ratio-lowered,redistribute,unused_share"));
    let _ = std::fs::remove_dir_all(&dir);
}
