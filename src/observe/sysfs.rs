//! Reading the kernel's state: `/proc/vmstat`, the debugfs bdi stats, the bdi knobs.
//!
//! All paths are relative to a root directory ([`KernelPaths::root`]), `/` on a live system; the
//! tests point it at a captured tree under `tests/data/`.

use std::format;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::string::{String, ToString};
use std::time::Duration;
use std::vec::Vec;

use super::error::{ObserveError, Result};
use super::parse::{self, BdiKnobs, BdiStats, VmStat};

/// Where the kernel's files are.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KernelPaths {
    /// The directory the kernel's files are read under (`/` on the live system).
    pub root: PathBuf,
}

impl Default for KernelPaths {
    fn default() -> Self {
        Self::host()
    }
}

impl KernelPaths {
    /// The running system.
    pub fn host() -> Self {
        KernelPaths { root: "/".into() }
    }

    /// A captured tree (`<root>/proc/vmstat`, `<root>/sys/kernel/debug/bdi/…`, …).
    pub fn at(root: impl Into<PathBuf>) -> Self {
        KernelPaths { root: root.into() }
    }

    /// Whether this is the live system.
    pub fn is_host(&self) -> bool {
        self.root == Path::new("/")
    }

    /// `/proc/vmstat`.
    pub fn vmstat(&self) -> PathBuf {
        self.root.join("proc/vmstat")
    }

    /// The debugfs mount point.
    pub fn debugfs(&self) -> PathBuf {
        self.root.join("sys/kernel/debug")
    }

    /// `<debugfs>/bdi`.
    pub fn debug_bdi_dir(&self) -> PathBuf {
        self.debugfs().join("bdi")
    }

    /// `<debugfs>/bdi/<bdi>/stats`.
    pub fn stats(&self, bdi: &str) -> PathBuf {
        self.debug_bdi_dir().join(bdi).join("stats")
    }

    /// `<debugfs>/bdi/<bdi>/wb_stats`.
    pub fn wb_stats(&self, bdi: &str) -> PathBuf {
        self.debug_bdi_dir().join(bdi).join("wb_stats")
    }

    /// `/sys/class/bdi/<bdi>`.
    pub fn class_bdi(&self, bdi: &str) -> PathBuf {
        self.root.join("sys/class/bdi").join(bdi)
    }

    /// `/sys/class/bdi/<bdi>/<knob>`.
    pub fn knob(&self, bdi: &str, knob: &str) -> PathBuf {
        self.class_bdi(bdi).join(knob)
    }
}

fn read(path: &Path) -> Result<String> {
    fs::read_to_string(path).map_err(|e| ObserveError::io_path("reading", path, e))
}

/// Reads and parses `/proc/vmstat`.
pub fn read_vmstat(paths: &KernelPaths) -> Result<VmStat> {
    let p = paths.vmstat();
    let text = read(&p)?;
    parse::parse_vmstat(&text).map_err(|e| ObserveError::parse(p.display().to_string(), e))
}

/// Sort key for bdi names: `MAJ:MIN` numerically, anything else after, by name.
fn bdi_sort_key(name: &str) -> (u8, u64, u64, String) {
    if let Some((a, b)) = name.split_once(':') {
        if let (Ok(a), Ok(b)) = (a.parse::<u64>(), b.parse::<u64>()) {
            return (0, a, b, String::new());
        }
    }
    (1, 0, 0, name.to_string())
}

/// The bdis listed in debugfs, sorted (`MAJ:MIN` numerically).
pub fn list_bdis(paths: &KernelPaths) -> Result<Vec<String>> {
    let dir = paths.debug_bdi_dir();
    let rd = fs::read_dir(&dir).map_err(|e| ObserveError::io_path("listing", &dir, e))?;
    let mut names = Vec::new();
    for ent in rd {
        let ent = ent.map_err(|e| ObserveError::io_path("listing", &dir, e))?;
        if let Some(n) = ent.file_name().to_str() {
            names.push(n.to_string());
        }
    }
    names.sort_by_key(|n| bdi_sort_key(n));
    Ok(names)
}

/// Reads and parses a bdi's debugfs `stats`. `Ok(None)` if the bdi disappeared meanwhile.
pub fn read_stats(paths: &KernelPaths, bdi: &str) -> Result<Option<BdiStats>> {
    let p = paths.stats(bdi);
    match fs::read_to_string(&p) {
        Ok(text) => parse::parse_bdi_stats(&text)
            .map(Some)
            .map_err(|e| ObserveError::parse(p.display().to_string(), e)),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(ObserveError::io_path("reading", &p, e)),
    }
}

/// Number of `bdi_writeback`s of a bdi (blocks in `wb_stats`); `None` if the file is missing
/// (kernels before 6.10) or the bdi disappeared.
pub fn read_wb_count(paths: &KernelPaths, bdi: &str) -> Result<Option<usize>> {
    let p = paths.wb_stats(bdi);
    match fs::read_to_string(&p) {
        Ok(text) => parse::parse_wb_stats(&text)
            .map(|v| Some(v.len()))
            .map_err(|e| ObserveError::parse(p.display().to_string(), e)),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(ObserveError::io_path("reading", &p, e)),
    }
}

fn read_knob_opt(paths: &KernelPaths, bdi: &str, knob: &str) -> Result<Option<u64>> {
    let p = paths.knob(bdi, knob);
    match fs::read_to_string(&p) {
        Ok(text) => parse::parse_knob(&text)
            .map(Some)
            .map_err(|e| ObserveError::parse(p.display().to_string(), e)),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(ObserveError::io_path("reading", &p, e)),
    }
}

/// Reads `/sys/class/bdi/<bdi>/` knobs. `Ok(None)` if the bdi has no class directory (gone).
pub fn read_knobs(paths: &KernelPaths, bdi: &str) -> Result<Option<BdiKnobs>> {
    let Some(min_ratio) = read_knob_opt(paths, bdi, "min_ratio")? else {
        return Ok(None);
    };
    let Some(max_ratio) = read_knob_opt(paths, bdi, "max_ratio")? else {
        return Ok(None);
    };
    let min_fine = read_knob_opt(paths, bdi, "min_ratio_fine")?;
    let max_fine = read_knob_opt(paths, bdi, "max_ratio_fine")?;
    Ok(Some(BdiKnobs {
        min_ratio,
        max_ratio,
        min_ratio_fine: min_fine.unwrap_or(min_ratio.saturating_mul(10_000)),
        max_ratio_fine: max_fine.unwrap_or(max_ratio.saturating_mul(10_000)),
        min_bytes: read_knob_opt(paths, bdi, "min_bytes")?,
        max_bytes: read_knob_opt(paths, bdi, "max_bytes")?,
        strict_limit: read_knob_opt(paths, bdi, "strict_limit")?.unwrap_or(0) != 0,
    }))
}

/// Writes a knob (`/sys/class/bdi/<bdi>/<knob>`).
pub fn write_knob(paths: &KernelPaths, bdi: &str, knob: &str, value: u64) -> Result<()> {
    let p = paths.knob(bdi, knob);
    fs::write(&p, format!("{value}\n"))
        .map_err(|e| ObserveError::io_path(&format!("writing {value} to"), &p, e))
}

/// A human label for a bdi: the block device name (`/sys/dev/block/MAJ:MIN`), or the
/// filesystem type and mount point of an anonymous device (FUSE, NFS) from mountinfo.
pub fn describe_bdi(paths: &KernelPaths, bdi: &str) -> String {
    let link = paths.root.join("sys/dev/block").join(bdi);
    if let Ok(target) = fs::read_link(&link) {
        if let Some(n) = target.file_name().and_then(|n| n.to_str()) {
            return n.to_string();
        }
    }
    if let Ok(mi) = fs::read_to_string(paths.root.join("proc/self/mountinfo")) {
        for line in mi.lines() {
            // id parent MAJ:MIN root mountpoint options ... - fstype source superoptions
            let f: Vec<&str> = line.split_whitespace().collect();
            if f.get(2) == Some(&bdi) {
                let fstype = f
                    .iter()
                    .position(|x| *x == "-")
                    .and_then(|i| f.get(i + 1))
                    .copied()
                    .unwrap_or("?");
                let mnt = f.get(4).copied().unwrap_or("?");
                return format!("{fstype}:{mnt}");
            }
        }
    }
    String::from("-")
}

/// The effective uid of this process, from `/proc/self/status` (no libc needed).
pub fn effective_uid() -> Result<u32> {
    let p = Path::new("/proc/self/status");
    let text = read(p)?;
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("Uid:") {
            let mut it = rest.split_whitespace();
            let _real = it.next();
            if let Some(Ok(e)) = it.next().map(|s| s.parse::<u32>()) {
                return Ok(e);
            }
        }
    }
    Err(ObserveError::Other(
        "no `Uid:` line in /proc/self/status".into(),
    ))
}

/// Whether this process runs as root.
pub fn is_root() -> bool {
    matches!(effective_uid(), Ok(0))
}

/// Makes sure `<debugfs>/bdi` is readable: on the host, mounts debugfs on
/// `/sys/kernel/debug` if it is not mounted (root only). Errors say why it is unavailable.
pub fn ensure_debugfs(paths: &KernelPaths) -> Result<()> {
    let bdi_dir = paths.debug_bdi_dir();
    if !paths.is_host() {
        return if bdi_dir.is_dir() {
            Ok(())
        } else {
            Err(ObserveError::NoDebugfs(format!(
                "{} is not a directory",
                bdi_dir.display()
            )))
        };
    }
    if !is_root() {
        return Err(ObserveError::NotRoot(
            "the bdi statistics are in debugfs (/sys/kernel/debug/bdi), readable by root only"
                .into(),
        ));
    }
    if bdi_dir.is_dir() {
        return Ok(());
    }
    let dbg = paths.debugfs();
    if !dbg.is_dir() {
        return Err(ObserveError::NoDebugfs(format!(
            "{} does not exist (kernel without CONFIG_DEBUG_FS?)",
            dbg.display()
        )));
    }
    let fs_list = fs::read_to_string("/proc/filesystems").unwrap_or_default();
    if !fs_list
        .lines()
        .any(|l| l.split_whitespace().last() == Some("debugfs"))
    {
        return Err(ObserveError::NoDebugfs(
            "the kernel has no debugfs (not in /proc/filesystems)".into(),
        ));
    }
    let out = Command::new("mount")
        .args(["-t", "debugfs", "debugfs"])
        .arg(&dbg)
        .output()
        .map_err(|e| ObserveError::NoDebugfs(format!("cannot run `mount`: {e}")))?;
    if !out.status.success() {
        return Err(ObserveError::NoDebugfs(format!(
            "`mount -t debugfs debugfs {}` failed: {}",
            dbg.display(),
            String::from_utf8_lossy(&out.stderr).trim()
        )));
    }
    if bdi_dir.is_dir() {
        Ok(())
    } else {
        Err(ObserveError::NoDebugfs(format!(
            "debugfs is mounted but has no {} (restricted by debugfs= boot option?)",
            bdi_dir.display()
        )))
    }
}

/// Page size the kernel uses for the counters; the core assumes 4 KiB
/// ([`crate::PAGE_SIZE`]). Read from `KernelPageSize` in `/proc/self/smaps`.
pub fn host_page_size_kb() -> Option<u64> {
    let text = fs::read_to_string("/proc/self/smaps").ok()?;
    text.lines()
        .find_map(|l| l.strip_prefix("KernelPageSize:"))
        .and_then(|r| r.split_whitespace().next())
        .and_then(|v| v.parse().ok())
}

/// One bdi in a [`Sample`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BdiSample {
    /// The bdi (`major:minor`).
    pub name: String,
    /// Its knobs.
    pub knobs: BdiKnobs,
    /// Its debugfs `stats`.
    pub stats: BdiStats,
    /// Number of `bdi_writeback`s (cgroup writeback); the model assumes 1.
    pub wb_count: Option<usize>,
    /// Global dirty pages (`nr_dirty + nr_writeback`) read from vmstat right before and right
    /// after this bdi's `stats` file: the kernel's `wb_calc_thresh()` used a value in between.
    pub dirty_before: u64,
    /// Global dirty + writeback pages read just after its `stats`.
    pub dirty_after: u64,
}

impl BdiSample {
    /// Estimate of the global dirty count the kernel used for this bdi's `BdiDirtyThresh`.
    pub fn dirty_estimate(&self) -> u64 {
        self.dirty_before / 2
            + self.dirty_after / 2
            + (self.dirty_before % 2 + self.dirty_after % 2) / 2
    }
}

/// One reading of everything, at time `t` since the start of observation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sample {
    /// Time since the sampler started.
    pub t: Duration,
    /// `/proc/vmstat` at the start of the sample.
    pub vmstat: VmStat,
    /// Every bdi.
    pub bdis: Vec<BdiSample>,
}

impl Sample {
    /// The bdi called `name`.
    pub fn bdi(&self, name: &str) -> Option<&BdiSample> {
        self.bdis.iter().find(|b| b.name == name)
    }

    /// `DirtyThresh` in pages as the bdis' stats reported it (the first bdi's; they are read
    /// within a millisecond or so), else vmstat's `nr_dirty_threshold`.
    pub fn dirty_thresh(&self) -> Option<u64> {
        self.bdis
            .first()
            .map(|b| b.stats.dirty_thresh_pages())
            .or_else(|| self.vmstat.dirty_limits().ok().map(|l| l.0))
    }
}

/// Reads one [`Sample`]: vmstat, then for each bdi its knobs, vmstat, stats, vmstat.
/// Bdis that vanish between listing and reading are left out.
pub fn read_sample(paths: &KernelPaths, t: Duration) -> Result<Sample> {
    let vmstat = read_vmstat(paths)?;
    let mut dirty = vmstat
        .global_dirty()
        .map_err(|e| ObserveError::parse(paths.vmstat().display().to_string(), e))?;
    let mut bdis = Vec::new();
    for name in list_bdis(paths)? {
        let Some(knobs) = read_knobs(paths, &name)? else {
            continue;
        };
        let wb_count = read_wb_count(paths, &name)?;
        let dirty_before = dirty;
        let Some(stats) = read_stats(paths, &name)? else {
            continue;
        };
        let after = read_vmstat(paths)?;
        dirty = after
            .global_dirty()
            .map_err(|e| ObserveError::parse(paths.vmstat().display().to_string(), e))?;
        bdis.push(BdiSample {
            name,
            knobs,
            stats,
            wb_count,
            dirty_before,
            dirty_after: dirty,
        });
    }
    Ok(Sample { t, vmstat, bdis })
}

/// Copies the files `observe` reads into `dest`, laid out like the live system (for tests
/// and bug reports): `proc/vmstat`, then per bdi `stats`, `wb_stats` and the knobs, then
/// `proc/vmstat.after`.
pub fn capture_tree(paths: &KernelPaths, dest: &Path) -> Result<()> {
    let copy = |from: PathBuf, rel: &Path| -> Result<()> {
        let to = dest.join(rel);
        if let Some(parent) = to.parent() {
            fs::create_dir_all(parent).map_err(|e| ObserveError::io_path("creating", parent, e))?;
        }
        match fs::read(&from) {
            Ok(bytes) => {
                fs::write(&to, bytes).map_err(|e| ObserveError::io_path("writing", &to, e))
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(ObserveError::io_path("reading", &from, e)),
        }
    };
    copy(paths.vmstat(), Path::new("proc/vmstat"))?;
    for bdi in list_bdis(paths)? {
        let dbg = Path::new("sys/kernel/debug/bdi").join(&bdi);
        copy(paths.stats(&bdi), &dbg.join("stats"))?;
        copy(paths.wb_stats(&bdi), &dbg.join("wb_stats"))?;
        let class = Path::new("sys/class/bdi").join(&bdi);
        for knob in [
            "min_ratio",
            "min_ratio_fine",
            "max_ratio",
            "max_ratio_fine",
            "min_bytes",
            "max_bytes",
            "strict_limit",
        ] {
            copy(paths.knob(&bdi, knob), &class.join(knob))?;
        }
    }
    copy(paths.vmstat(), Path::new("proc/vmstat.after"))
}

/// `(major, minor)` of a kernel release string like `6.18.44-fc-v657`.
pub fn parse_release(release: &str) -> Option<(u32, u32)> {
    let mut it = release.trim().split(['.', '-']);
    let major = it.next()?.parse().ok()?;
    let minor = it.next()?.parse().ok()?;
    Some((major, minor))
}

/// Whether the kernel at `paths` applies the idle-device floor in `__wb_calc_thresh` (6.13+).
/// Read from `proc/sys/kernel/osrelease`; a tree without it (a capture) is taken as 6.13+.
pub fn kernel_has_idle_floor(paths: &KernelPaths) -> bool {
    match fs::read_to_string(paths.root.join("proc/sys/kernel/osrelease"))
        .ok()
        .and_then(|r| parse_release(&r))
    {
        Some(v) => v >= (6, 13),
        None => true,
    }
}
