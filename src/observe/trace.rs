//! Observing the kernel's period boundaries: when `writeout_period()` runs.
//!
//! The kernel ages the completion proportions from a deferrable timer (`dom->period_timer`,
//! every `VM_COMPLETIONS_PERIOD_LEN` = 3 s). Nothing in /proc or /sys tells when it fires, but
//! the `timer:timer_expire_entry` tracepoint does: it records every timer expiry with its
//! callback. We enable it in a private tracefs instance, filtered on the address of
//! `writeout_period` from `/proc/kallsyms`, with the `mono` trace clock (CLOCK_MONOTONIC, the
//! clock of [`std::time::Instant`] on Linux), and read the instance's `trace` buffer at every
//! sample. A `trace_marker` write at start-up ties the trace clock to the sampler's start.
//!
//! On this machine (6.18, HZ=250) the timer fires at multiples of 64 jiffies (256 ms, the
//! timer wheel's granularity at a 3 s timeout), so consecutive boundaries are 2.816 or
//! 3.072 s apart while `period_time` itself advances by exactly 3 s: a model with a
//! free-running 3 s clock would drift by up to 256 ms against the kernel even with the right
//! phase. Following the observed boundaries removes both the unknown phase and that jitter.
//!
//! With cgroup v2 writeback, memcg `wb_domain`s have period timers with the same callback; the
//! events carry a (hashed) timer pointer, and we follow the timer that fired most often, which
//! is the global domain's on a machine whose disks keep writing.

use std::collections::BTreeMap;
use std::format;
use std::fs;
use std::path::{Path, PathBuf};
use std::string::{String, ToString};
use std::time::Instant;
use std::vec::Vec;

use super::error::{ObserveError, Result};

/// One `timer_expire_entry` of `writeout_period`.
#[derive(Debug, Clone, PartialEq)]
pub struct Expiry {
    /// Trace clock timestamp, seconds.
    pub ts: f64,
    /// The (hashed) timer pointer as printed.
    pub timer: String,
    /// `jiffies` at expiry.
    pub now: u64,
}

/// Parses the `trace` text of the instance: `writeout_period` expiries and the timestamp of
/// the marker line containing `marker` (if present).
pub fn parse_trace(text: &str, marker: &str) -> (Vec<Expiry>, Option<f64>) {
    let mut out = Vec::new();
    let mut mark = None;
    for line in text.lines() {
        if line.starts_with('#') {
            continue;
        }
        let ts_of = |tag: &str| -> Option<f64> {
            let head = line.split(tag).next()?;
            let tok = head.split_whitespace().last()?;
            tok.trim_end_matches(':').parse::<f64>().ok()
        };
        if line.contains(": timer_expire_entry:") {
            if !line.contains("function=writeout_period") {
                continue;
            }
            let field = |name: &str| -> Option<&str> {
                line.split_whitespace().find_map(|w| w.strip_prefix(name))
            };
            if let (Some(ts), Some(timer), Some(now)) = (
                ts_of(": timer_expire_entry:"),
                field("timer="),
                field("now=").and_then(|n| n.parse::<u64>().ok()),
            ) {
                out.push(Expiry {
                    ts,
                    timer: timer.to_string(),
                    now,
                });
            }
        } else if !marker.is_empty() && line.contains(marker) {
            mark = ts_of(": tracing_mark_write:");
        }
    }
    (out, mark)
}

/// The kernel's period boundaries, in seconds since `start`.
pub struct PeriodTrace {
    instance: PathBuf,
    /// Trace clock time of `start`.
    offset: f64,
    /// Timestamps already handed out, per timer.
    seen: BTreeMap<String, Vec<f64>>,
    last_returned: f64,
}

fn tracefs_root() -> Option<PathBuf> {
    ["/sys/kernel/tracing", "/sys/kernel/debug/tracing"]
        .iter()
        .map(PathBuf::from)
        .find(|p| p.join("instances").is_dir())
}

fn kallsyms_addr(sym: &str) -> Option<u64> {
    let text = fs::read_to_string("/proc/kallsyms").ok()?;
    text.lines().find_map(|l| {
        let mut it = l.split_whitespace();
        let addr = it.next()?;
        let _kind = it.next()?;
        let name = it.next()?;
        if name == sym && it.next().is_none() {
            u64::from_str_radix(addr, 16).ok().filter(|a| *a != 0)
        } else {
            None
        }
    })
}

fn write(p: &Path, s: &str) -> Result<()> {
    fs::write(p, s).map_err(|e| ObserveError::io_path(&format!("writing `{}` to", s.trim()), p, e))
}

impl PeriodTrace {
    /// Sets up the tracefs instance. `start` is the sampler's time origin.
    pub fn start(start: Instant) -> Result<PeriodTrace> {
        let root = tracefs_root()
            .ok_or_else(|| ObserveError::Unavailable(String::from("no tracefs with instances")))?;
        let addr = kallsyms_addr("writeout_period").ok_or_else(|| {
            ObserveError::Unavailable(String::from(
                "writeout_period not in /proc/kallsyms (or addresses hidden)",
            ))
        })?;
        let instance = root
            .join("instances")
            .join(format!("dirtylimit-{}", std::process::id()));
        fs::create_dir(&instance)
            .map_err(|e| ObserveError::io_path("creating the tracefs instance", &instance, e))?;
        let mut t = PeriodTrace {
            instance,
            offset: 0.0,
            seen: BTreeMap::new(),
            last_returned: f64::NEG_INFINITY,
        };
        let ev = t.instance.join("events/timer/timer_expire_entry");
        write(&t.instance.join("trace_clock"), "mono")?;
        write(&t.instance.join("buffer_size_kb"), "256")?;
        write(&ev.join("filter"), &format!("function == 0x{addr:x}"))?;
        write(&ev.join("enable"), "1")?;
        // Tie the trace clock to `start`: a marker now, at start.elapsed() on our clock.
        let marker = format!("dirtylimit-clock-{}", std::process::id());
        let el = start.elapsed().as_secs_f64();
        write(&t.instance.join("trace_marker"), &marker)?;
        let el2 = start.elapsed().as_secs_f64();
        let text = t.read()?;
        let (_, mark) = parse_trace(&text, &marker);
        let mark = mark.ok_or_else(|| {
            ObserveError::Unavailable(String::from("trace marker not found in the trace buffer"))
        })?;
        t.offset = mark - (el + el2) / 2.0;
        Ok(t)
    }

    fn read(&self) -> Result<String> {
        let p = self.instance.join("trace");
        fs::read_to_string(&p).map_err(|e| ObserveError::io_path("reading", &p, e))
    }

    /// New kernel period boundaries since the last call, in seconds since `start`, sorted.
    pub fn poll(&mut self) -> Result<Vec<f64>> {
        let text = self.read()?;
        let (ex, _) = parse_trace(&text, "");
        for e in ex {
            let v = self.seen.entry(e.timer).or_default();
            let t = e.ts - self.offset;
            if !v.iter().any(|x| (x - t).abs() < 1e-6) {
                v.push(t);
            }
        }
        // Follow the timer that fired most often (the global domain's).
        let best = self
            .seen
            .values()
            .max_by_key(|v| v.len())
            .cloned()
            .unwrap_or_default();
        let mut new: Vec<f64> = best
            .into_iter()
            .filter(|t| *t > self.last_returned + 1e-6)
            .collect();
        new.sort_by(|a, b| a.total_cmp(b));
        if let Some(l) = new.last() {
            self.last_returned = *l;
        }
        // Keep memory bounded: only recent timestamps are needed for de-duplication.
        let horizon = self.last_returned - 600.0;
        for v in self.seen.values_mut() {
            v.retain(|t| *t >= horizon);
        }
        Ok(new)
    }

    /// Disables the event and removes the instance.
    pub fn stop(&mut self) -> Result<()> {
        if !self.instance.exists() {
            return Ok(());
        }
        let _ = write(
            &self.instance.join("events/timer/timer_expire_entry/enable"),
            "0",
        );
        fs::remove_dir(&self.instance)
            .map_err(|e| ObserveError::io_path("removing the tracefs instance", &self.instance, e))
    }
}

impl Drop for PeriodTrace {
    fn drop(&mut self) {
        let _ = self.stop();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_timer_lines_and_marker() {
        let text = "# tracer: nop\n\
 rejected_calls_-10109   [000] .Ns..  2195.732114: timer_expire_entry: timer=000000004eb40302 function=writeout_period now=4295441152 baseclk=4295441152\n\
           rustc-9997    [000] ..s..  2191.828073: timer_expire_entry: timer=00000000ab77cc3a function=process_timeout now=4295440176 baseclk=4295440176\n\
            bash-1       [001] .....  2196.000001: tracing_mark_write: dirtylimit-clock-7\n\
      lto cgu.07-10268   [000] .Ns..  2201.620059: timer_expire_entry: timer=000000004eb40302 function=writeout_period now=4295442624 baseclk=4295442624\n";
        let (ex, mark) = parse_trace(text, "dirtylimit-clock-7");
        assert_eq!(ex.len(), 2);
        assert_eq!(ex[0].now, 4295441152);
        assert!((ex[0].ts - 2195.732114).abs() < 1e-9);
        assert_eq!(ex[1].timer, "000000004eb40302");
        assert!((mark.unwrap() - 2196.000001).abs() < 1e-9);
    }
}
