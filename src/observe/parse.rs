//! Parsers for the kernel's text interfaces that `observe` reads.
//!
//! * `/proc/vmstat`: `name value` lines (`nr_dirty`, `nr_writeback`, `nr_dirty_threshold`, …),
//!   all in pages.
//! * `/sys/kernel/debug/bdi/<bdi>/stats`: `Key:   value [kB|kBps]` lines printed by
//!   `bdi_debug_stats_show()` in mm/backing-dev.c. Sizes are printed with `K(x)`, i.e. pages
//!   shifted left by `PAGE_SHIFT - 10`, and `state` is printed in hex (`%lx`).
//! * `/sys/kernel/debug/bdi/<bdi>/wb_stats`: one block per `bdi_writeback` (cgroup writeback),
//!   blocks separated by an empty line (`cgwb_debug_stats_show()`).
//! * `/sys/class/bdi/<bdi>/{min,max}_ratio[_fine]`, `{min,max}_bytes`, `strict_limit`: one
//!   integer each.
//!
//! Unknown keys are ignored (newer kernels add lines); a key we need that is missing, a value
//! that is not a number, or a line without a `:` is an error naming the line.

use std::collections::BTreeMap;
use std::fmt;
use std::format;
use std::string::{String, ToString};
use std::vec::Vec;

/// A parse failure: which line (1-based; 0 = the whole text) and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParseError {
    /// 1-based line.
    pub line: usize,
    /// What is wrong.
    pub msg: String,
}

impl fmt::Display for ParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.line == 0 {
            write!(f, "{}", self.msg)
        } else {
            write!(f, "line {}: {}", self.line, self.msg)
        }
    }
}

impl std::error::Error for ParseError {}

fn err(line: usize, msg: impl Into<String>) -> ParseError {
    ParseError {
        line,
        msg: msg.into(),
    }
}

/// Kernel pages of 4 KiB: `K(x)` in mm/backing-dev.c prints `x << (PAGE_SHIFT - 10)`.
pub const KB_PER_PAGE: u64 = 4;

/// Converts a `kB` value printed by `K()` back to pages. The kernel prints multiples of
/// [`KB_PER_PAGE`], so this is exact for its output.
pub fn kb_to_pages(kb: u64) -> u64 {
    kb / KB_PER_PAGE
}

// ---------------------------------------------------------------------------------------------
// /proc/vmstat

/// The counters of `/proc/vmstat`, by name, in pages (or events).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct VmStat {
    /// Every `name value` pair.
    pub fields: BTreeMap<String, u64>,
}

impl VmStat {
    /// The value of `name`, if present.
    pub fn get(&self, name: &str) -> Option<u64> {
        self.fields.get(name).copied()
    }

    fn need(&self, name: &str) -> Result<u64, ParseError> {
        self.get(name)
            .ok_or_else(|| err(0, format!("/proc/vmstat has no `{name}`")))
    }

    /// `NR_FILE_DIRTY`, pages.
    pub fn nr_dirty(&self) -> Result<u64, ParseError> {
        self.need("nr_dirty")
    }

    /// `NR_WRITEBACK`, pages.
    pub fn nr_writeback(&self) -> Result<u64, ParseError> {
        self.need("nr_writeback")
    }

    /// The global dirty count the kernel's `wb_calc_thresh()` uses since 6.13:
    /// `domain_dirty_avail(gdtc, include_writeback = true)` sets
    /// `dirty = NR_FILE_DIRTY + NR_WRITEBACK`. (Kernels before 6.15 also had
    /// `NR_WRITEBACK_TEMP` for FUSE, not part of this sum either.)
    pub fn global_dirty(&self) -> Result<u64, ParseError> {
        Ok(self.nr_dirty()?.saturating_add(self.nr_writeback()?))
    }

    /// `global_dirty_limits()` as computed when the file was read: `(thresh, bg_thresh)` pages.
    pub fn dirty_limits(&self) -> Result<(u64, u64), ParseError> {
        Ok((
            self.need("nr_dirty_threshold")?,
            self.need("nr_dirty_background_threshold")?,
        ))
    }
}

/// Parses `/proc/vmstat`. Every non-empty line must be `name value` with a decimal value.
pub fn parse_vmstat(text: &str) -> Result<VmStat, ParseError> {
    let mut fields = BTreeMap::new();
    for (i, raw) in text.lines().enumerate() {
        let line = raw.trim();
        if line.is_empty() {
            continue;
        }
        let mut it = line.split_whitespace();
        let (Some(name), Some(value), None) = (it.next(), it.next(), it.next()) else {
            return Err(err(i + 1, format!("expected `name value`, got `{line}`")));
        };
        let v = value
            .parse::<u64>()
            .map_err(|_| err(i + 1, format!("`{name}`: `{value}` is not a number")))?;
        fields.insert(name.to_string(), v);
    }
    if fields.is_empty() {
        return Err(err(0, "empty vmstat"));
    }
    Ok(VmStat { fields })
}

// ---------------------------------------------------------------------------------------------
// Key: value files (debugfs stats, wb_stats)

/// One `Key: value [unit]` line.
fn split_kv(line: &str, lineno: usize) -> Result<(&str, &str, Option<&str>), ParseError> {
    let Some((key, rest)) = line.split_once(':') else {
        return Err(err(lineno, format!("expected `Key: value`, got `{line}`")));
    };
    let mut it = rest.split_whitespace();
    let Some(value) = it.next() else {
        return Err(err(lineno, format!("`{}` has no value", key.trim())));
    };
    let unit = it.next();
    if let Some(extra) = it.next() {
        return Err(err(
            lineno,
            format!("`{}`: unexpected `{extra}` after the value", key.trim()),
        ));
    }
    Ok((key.trim(), value, unit))
}

fn parse_dec(key: &str, value: &str, lineno: usize) -> Result<u64, ParseError> {
    value.parse::<u64>().map_err(|_| {
        err(
            lineno,
            format!("`{key}`: `{value}` is not a decimal number"),
        )
    })
}

fn parse_hex(key: &str, value: &str, lineno: usize) -> Result<u64, ParseError> {
    u64::from_str_radix(value, 16)
        .map_err(|_| err(lineno, format!("`{key}`: `{value}` is not a hex number")))
}

/// Collects `Key: value` lines of one block into a map; `state` is hex, everything else
/// decimal; a unit, if present, must be the expected one for a few known keys.
fn parse_block<'a>(
    lines: impl Iterator<Item = (usize, &'a str)>,
) -> Result<BTreeMap<String, u64>, ParseError> {
    let mut map = BTreeMap::new();
    for (lineno, raw) in lines {
        let line = raw.trim();
        if line.is_empty() {
            continue;
        }
        let (key, value, unit) = split_kv(line, lineno)?;
        let v = if key == "state" {
            parse_hex(key, value, lineno)?
        } else {
            parse_dec(key, value, lineno)?
        };
        if let Some(u) = unit {
            if u != "kB" && u != "kBps" {
                return Err(err(lineno, format!("`{key}`: unknown unit `{u}`")));
            }
        }
        if map.insert(key.to_string(), v).is_some() {
            return Err(err(lineno, format!("`{key}` appears twice")));
        }
    }
    Ok(map)
}

fn take(map: &BTreeMap<String, u64>, key: &str) -> Result<u64, ParseError> {
    map.get(key)
        .copied()
        .ok_or_else(|| err(0, format!("missing `{key}`")))
}

/// `/sys/kernel/debug/bdi/<bdi>/stats` (`bdi_debug_stats_show`). Sizes in kB as printed.
///
/// With `CONFIG_CGROUP_WRITEBACK` every field is the sum over the bdi's `bdi_writeback`s,
/// `BdiDirtyThresh` included (`collect_wb_stats` adds `wb_calc_thresh(wb, dirty_thresh)` of
/// each wb).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct BdiStats {
    /// `BdiWriteback` (kB): pages under writeback.
    pub writeback_kb: u64,
    /// `BdiReclaimable` (kB): dirty pages.
    pub reclaimable_kb: u64,
    /// `BdiDirtyThresh` (kB): `wb_calc_thresh(wb, DirtyThresh)`.
    pub bdi_dirty_thresh_kb: u64,
    /// `DirtyThresh` (kB): the global `thresh` of `global_dirty_limits()` at read time.
    pub dirty_thresh_kb: u64,
    /// `BackgroundThresh` (kB).
    pub background_thresh_kb: u64,
    /// `BdiDirtied` (kB), cumulative.
    pub dirtied_kb: u64,
    /// `BdiWritten` (kB), cumulative writeback completions (`WB_WRITTEN`).
    pub written_kb: u64,
    /// `BdiWriteBandwidth` (kBps).
    pub write_bandwidth_kbps: u64,
    /// `b_dirty`: inodes on the dirty list.
    pub b_dirty: u64,
    /// `b_io`: inodes queued for writeback.
    pub b_io: u64,
    /// `b_more_io`: inodes requeued.
    pub b_more_io: u64,
    /// `b_dirty_time`: inodes with only timestamps dirty.
    pub b_dirty_time: u64,
    /// `bdi_list`: whether the bdi is registered.
    pub bdi_list: u64,
    /// `state` (printed in hex).
    pub state: u64,
}

impl BdiStats {
    /// `BdiDirtyThresh` in pages.
    pub fn bdi_dirty_thresh_pages(&self) -> u64 {
        kb_to_pages(self.bdi_dirty_thresh_kb)
    }
    /// `DirtyThresh` in pages.
    pub fn dirty_thresh_pages(&self) -> u64 {
        kb_to_pages(self.dirty_thresh_kb)
    }
    /// `BackgroundThresh` in pages.
    pub fn background_thresh_pages(&self) -> u64 {
        kb_to_pages(self.background_thresh_kb)
    }
    /// `BdiWritten` in pages.
    pub fn written_pages(&self) -> u64 {
        kb_to_pages(self.written_kb)
    }
    /// `BdiReclaimable + BdiWriteback` in pages: what the bdi holds of the global dirty +
    /// writeback count.
    pub fn held_pages(&self) -> u64 {
        kb_to_pages(self.reclaimable_kb + self.writeback_kb)
    }
}

/// Parses `/sys/kernel/debug/bdi/<bdi>/stats`.
pub fn parse_bdi_stats(text: &str) -> Result<BdiStats, ParseError> {
    let map = parse_block(text.lines().enumerate().map(|(i, l)| (i + 1, l)))?;
    Ok(BdiStats {
        writeback_kb: take(&map, "BdiWriteback")?,
        reclaimable_kb: take(&map, "BdiReclaimable")?,
        bdi_dirty_thresh_kb: take(&map, "BdiDirtyThresh")?,
        dirty_thresh_kb: take(&map, "DirtyThresh")?,
        background_thresh_kb: take(&map, "BackgroundThresh")?,
        dirtied_kb: take(&map, "BdiDirtied")?,
        written_kb: take(&map, "BdiWritten")?,
        write_bandwidth_kbps: take(&map, "BdiWriteBandwidth")?,
        b_dirty: take(&map, "b_dirty")?,
        b_io: take(&map, "b_io")?,
        b_more_io: take(&map, "b_more_io")?,
        b_dirty_time: take(&map, "b_dirty_time")?,
        bdi_list: take(&map, "bdi_list")?,
        state: take(&map, "state")?,
    })
}

/// One block of `/sys/kernel/debug/bdi/<bdi>/wb_stats`: one `bdi_writeback`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct WbStats {
    /// `WbCgIno`: inode of the wb's memory cgroup (1 = the root wb).
    pub cg_ino: u64,
    /// `WbWriteback` (kB).
    pub writeback_kb: u64,
    /// `WbReclaimable` (kB).
    pub reclaimable_kb: u64,
    /// `WbDirtyThresh` (kB): this wb's `wb_calc_thresh()`, for a cgroup wb the min with its
    /// memcg domain's `cgwb_calc_thresh()`.
    pub dirty_thresh_kb: u64,
    /// `WbDirtied` (kB).
    pub dirtied_kb: u64,
    /// `WbWritten` (kB).
    pub written_kb: u64,
    /// `WbWriteBandwidth` (kBps).
    pub write_bandwidth_kbps: u64,
    /// `WbState` (bits).
    pub state: u64,
}

/// Parses `/sys/kernel/debug/bdi/<bdi>/wb_stats` into one entry per wb.
pub fn parse_wb_stats(text: &str) -> Result<Vec<WbStats>, ParseError> {
    let mut out = Vec::new();
    let mut block: Vec<(usize, &str)> = Vec::new();
    let lines = text.lines().enumerate().map(|(i, l)| (i + 1, l));
    let mut flush = |block: &mut Vec<(usize, &str)>| -> Result<(), ParseError> {
        if block.is_empty() {
            return Ok(());
        }
        let first = block.first().map(|b| b.0).unwrap_or(0);
        let map = parse_block(block.drain(..))?;
        let wb = (|| {
            Ok::<_, ParseError>(WbStats {
                cg_ino: take(&map, "WbCgIno")?,
                writeback_kb: take(&map, "WbWriteback")?,
                reclaimable_kb: take(&map, "WbReclaimable")?,
                dirty_thresh_kb: take(&map, "WbDirtyThresh")?,
                dirtied_kb: take(&map, "WbDirtied")?,
                written_kb: take(&map, "WbWritten")?,
                write_bandwidth_kbps: take(&map, "WbWriteBandwidth")?,
                state: take(&map, "state")?,
            })
        })()
        .map_err(|e| err(first, format!("wb block starting here: {}", e.msg)))?;
        out.push(wb);
        Ok(())
    };
    for (n, l) in lines {
        if l.trim().is_empty() {
            flush(&mut block)?;
        } else {
            block.push((n, l));
        }
    }
    flush(&mut block)?;
    Ok(out)
}

// ---------------------------------------------------------------------------------------------
// /sys/class/bdi/<bdi>/ knobs

/// Parses a sysfs knob holding one unsigned integer (trailing newline allowed).
pub fn parse_knob(text: &str) -> Result<u64, ParseError> {
    let t = text.trim();
    if t.is_empty() {
        return Err(err(0, "empty knob"));
    }
    t.parse::<u64>()
        .map_err(|_| err(1, format!("`{t}` is not a decimal number")))
}

/// The per-bdi settings in `/sys/class/bdi/<bdi>/`, as the kernel reports them.
///
/// The kernel stores only `bdi->min_ratio`/`bdi->max_ratio` in parts per million
/// (`*_ratio_fine`, 100% = 1,000,000); `*_ratio` is that divided by `BDI_RATIO_SCALE`, and
/// `*_bytes` is derived from the ratio and the current dirty limit when read
/// (`bdi_get_{min,max}_bytes`). The model therefore uses only the `_fine` values.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct BdiKnobs {
    /// `min_ratio` (percent).
    pub min_ratio: u64,
    /// `max_ratio` (percent).
    pub max_ratio: u64,
    /// `min_ratio_fine` (ppm); on kernels before 6.5 (no `_fine` files) `min_ratio * 10000`.
    pub min_ratio_fine: u64,
    /// `max_ratio_fine` (ppm); on kernels before 6.5 `max_ratio * 10000`.
    pub max_ratio_fine: u64,
    /// `min_bytes`, if the kernel has it (6.5+).
    pub min_bytes: Option<u64>,
    /// `max_bytes`, if the kernel has it (6.5+).
    pub max_bytes: Option<u64>,
    /// `strict_limit` (`BDI_CAP_STRICTLIMIT`), if the kernel has the knob (6.5+).
    pub strict_limit: bool,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vmstat_rejects_garbage() {
        assert!(parse_vmstat("nr_dirty 12\nnr_writeback x\n").is_err());
        assert!(parse_vmstat("nr_dirty 12 13\n").is_err());
        assert!(parse_vmstat("").is_err());
        let v = parse_vmstat("nr_dirty 12\nnr_writeback 3\n").unwrap();
        assert_eq!(v.global_dirty().unwrap(), 15);
    }

    #[test]
    fn stats_state_is_hex() {
        let text = "BdiWriteback: 4 kB\nBdiReclaimable: 8 kB\nBdiDirtyThresh: 40 kB\n\
                    DirtyThresh: 400 kB\nBackgroundThresh: 200 kB\nBdiDirtied: 12 kB\n\
                    BdiWritten: 4 kB\nBdiWriteBandwidth: 100 kBps\nb_dirty: 1\nb_io: 0\n\
                    b_more_io: 0\nb_dirty_time: 0\nbdi_list: 1\nstate: 1d\n";
        let s = parse_bdi_stats(text).unwrap();
        assert_eq!(s.state, 0x1d);
        assert_eq!(s.bdi_dirty_thresh_pages(), 10);
        let missing = text.replace("BdiWritten: 4 kB\n", "");
        let e = parse_bdi_stats(&missing).unwrap_err();
        assert!(e.msg.contains("BdiWritten"), "{e}");
        let bad_unit = text.replace("BdiWritten: 4 kB", "BdiWritten: 4 MB");
        assert!(parse_bdi_stats(&bad_unit).is_err());
    }
}
