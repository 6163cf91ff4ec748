//! The experiment's resources, each undone in reverse order of creation: writer threads stopped
//! and joined, knobs and vm settings restored, filesystems unmounted, loop devices detached,
//! image files and directories deleted. [`Lab::cleanup`] runs on success, on error and (through
//! the signal flag that every loop polls) on Ctrl-C/SIGTERM; `Drop` runs it too.

use std::ffi::OsStr;
use std::fs::{self, File, OpenOptions};
use std::io::{Seek, SeekFrom, Write};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::string::{String, ToString};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};
use std::vec::Vec;
use std::{eprintln, format, vec};

use super::error::{ObserveError, Result};
use super::fusefs::SinkMount;
use super::signal;
use super::sysfs::{self, KernelPaths};

/// Runs a command, returning its stdout; a non-zero exit is an error carrying stderr.
pub fn run_cmd<I, S>(program: &str, args: I) -> Result<String>
where
    I: IntoIterator<Item = S>,
    S: AsRef<OsStr>,
{
    let args: Vec<std::ffi::OsString> = args.into_iter().map(|a| a.as_ref().into()).collect();
    let shown = format!(
        "{program} {}",
        args.iter()
            .map(|a| a.to_string_lossy().into_owned())
            .collect::<Vec<_>>()
            .join(" ")
    );
    let out = Command::new(program)
        .args(&args)
        .output()
        .map_err(|e| ObserveError::Command {
            cmd: shown.clone(),
            detail: format!("cannot run: {e}"),
        })?;
    if !out.status.success() {
        return Err(ObserveError::Command {
            cmd: shown,
            detail: format!(
                "{}: {}",
                out.status,
                String::from_utf8_lossy(&out.stderr).trim()
            ),
        });
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// Whether `program` is found in `PATH` (or is an existing path).
pub fn have_program(program: &str) -> bool {
    if program.contains('/') {
        return Path::new(program).is_file();
    }
    let path = std::env::var_os("PATH").unwrap_or_default();
    let mut dirs: Vec<PathBuf> = std::env::split_paths(&path).collect();
    // root's tools live in sbin, which a non-login PATH may lack.
    for extra in ["/usr/sbin", "/sbin"] {
        dirs.push(extra.into());
    }
    dirs.iter().any(|d| d.join(program).is_file())
}

/// The bdi name (`MAJ:MIN`) of the filesystem holding `path`.
pub fn bdi_of(path: &Path) -> Result<String> {
    let md = fs::metadata(path).map_err(|e| ObserveError::io_path("stat", path, e))?;
    let dev = md.dev();
    // glibc's gnu_dev_major / gnu_dev_minor
    let major = ((dev >> 8) & 0xfff) | ((dev >> 32) & !0xfff);
    let minor = (dev & 0xff) | ((dev >> 12) & !0xff);
    Ok(format!("{major}:{minor}"))
}

/// A writer thread: writes `chunk`-sized blocks into one file, wrapping around at
/// `file_size`, at most `rate` bytes/s (0 = as fast as the kernel lets it).
pub struct Writer {
    /// The writer's name (A, B, FUSE).
    pub name: String,
    stop: Arc<AtomicBool>,
    /// Bytes written so far.
    pub bytes: Arc<AtomicU64>,
    handle: Option<JoinHandle<std::result::Result<(), String>>>,
    error: Arc<Mutex<Option<String>>>,
}

impl Writer {
    /// Starts a thread writing `path` (wrapping at `file_size`) at `rate` bytes/s.
    pub fn spawn(name: &str, path: &Path, file_size: u64, rate: u64) -> Result<Writer> {
        let mut file = OpenOptions::new()
            .create(true)
            .write(true)
            .truncate(false)
            .open(path)
            .map_err(|e| ObserveError::io_path("opening", path, e))?;
        let stop = Arc::new(AtomicBool::new(false));
        let bytes = Arc::new(AtomicU64::new(0));
        let error = Arc::new(Mutex::new(None));
        let (s, b, e) = (stop.clone(), bytes.clone(), error.clone());
        let shown = path.display().to_string();
        let handle = std::thread::Builder::new()
            .name(format!("writer-{name}"))
            .spawn(move || {
                let chunk: usize = 1 << 20;
                let buf = vec![0xa5u8; chunk];
                let start = Instant::now();
                let mut total: u64 = 0;
                let mut pos: u64 = 0;
                let res = (|| -> std::result::Result<(), String> {
                    while !s.load(Ordering::Relaxed) && !signal::interrupted() {
                        if pos + chunk as u64 > file_size {
                            pos = 0;
                            file.seek(SeekFrom::Start(0))
                                .map_err(|e| format!("seek {shown}: {e}"))?;
                        }
                        file.write_all(&buf)
                            .map_err(|e| format!("write {shown}: {e}"))?;
                        pos += chunk as u64;
                        total += chunk as u64;
                        b.store(total, Ordering::Relaxed);
                        if rate > 0 {
                            let due = Duration::from_secs_f64(total as f64 / rate as f64);
                            loop {
                                let el = start.elapsed();
                                if el >= due || s.load(Ordering::Relaxed) || signal::interrupted() {
                                    break;
                                }
                                std::thread::sleep((due - el).min(Duration::from_millis(20)));
                            }
                        }
                    }
                    Ok(())
                })();
                if let Err(msg) = &res {
                    if let Ok(mut g) = e.lock() {
                        *g = Some(msg.clone());
                    }
                }
                res
            })
            .map_err(|e| ObserveError::io("spawning a writer thread", e))?;
        Ok(Writer {
            name: name.into(),
            stop,
            bytes,
            handle: Some(handle),
            error,
        })
    }

    /// The writer's error, if it failed.
    pub fn error(&self) -> Option<String> {
        self.error.lock().ok().and_then(|g| g.clone())
    }

    /// Stops and joins the thread.
    pub fn stop(&mut self) -> Result<()> {
        self.stop.store(true, Ordering::SeqCst);
        match self.handle.take() {
            Some(h) => match h.join() {
                Ok(Ok(())) => Ok(()),
                Ok(Err(msg)) => Err(ObserveError::Other(format!("writer {}: {msg}", self.name))),
                Err(_) => Err(ObserveError::Other(format!(
                    "writer {} panicked",
                    self.name
                ))),
            },
            None => Ok(()),
        }
    }
}

impl Drop for Writer {
    fn drop(&mut self) {
        let _ = self.stop();
    }
}

enum Undo {
    RemoveDir(PathBuf),
    RemoveFile(PathBuf),
    Detach(String),
    Unmount(PathBuf),
    Fuse(SinkMount),
    Knob {
        paths: KernelPaths,
        bdi: String,
        knob: String,
        value: u64,
    },
    Sysctl {
        path: PathBuf,
        value: String,
    },
    Writer(Writer),
}

/// The experiment's resources.
pub struct Lab {
    /// The directory for images and mount points.
    pub dir: PathBuf,
    undo: Vec<Undo>,
    /// Say what is set up and torn down.
    pub verbose: bool,
}

impl Lab {
    /// Creates `<base>/dirtylimit-crosscheck.<pid>`.
    pub fn new(base: &Path, verbose: bool) -> Result<Lab> {
        let dir = base.join(format!("dirtylimit-crosscheck.{}", std::process::id()));
        fs::create_dir(&dir).map_err(|e| ObserveError::io_path("creating", &dir, e))?;
        Ok(Lab {
            undo: vec![Undo::RemoveDir(dir.clone())],
            dir,
            verbose,
        })
    }

    fn note(&self, msg: &str) {
        if self.verbose {
            eprintln!("crosscheck: {msg}");
        }
    }

    /// A directory inside the lab (removed at cleanup).
    pub fn subdir(&mut self, name: &str) -> Result<PathBuf> {
        let p = self.dir.join(name);
        fs::create_dir(&p).map_err(|e| ObserveError::io_path("creating", &p, e))?;
        self.undo.push(Undo::RemoveDir(p.clone()));
        Ok(p)
    }

    /// A sparse image file of `size` bytes.
    pub fn image(&mut self, name: &str, size: u64) -> Result<PathBuf> {
        let p = self.dir.join(name);
        let f = File::create(&p).map_err(|e| ObserveError::io_path("creating", &p, e))?;
        self.undo.push(Undo::RemoveFile(p.clone()));
        f.set_len(size)
            .map_err(|e| ObserveError::io_path("sizing", &p, e))?;
        Ok(p)
    }

    /// `losetup --find --show --direct-io=on IMAGE`: returns `/dev/loopN`.
    pub fn attach_loop(&mut self, image: &Path) -> Result<String> {
        let out = run_cmd(
            "losetup",
            [
                OsStr::new("--find"),
                OsStr::new("--show"),
                OsStr::new("--direct-io=on"),
                image.as_os_str(),
            ],
        )?;
        let dev = out.trim().to_string();
        if !dev.starts_with("/dev/") {
            return Err(ObserveError::Command {
                cmd: String::from("losetup --find --show"),
                detail: format!("unexpected output `{dev}`"),
            });
        }
        self.undo.push(Undo::Detach(dev.clone()));
        self.note(&format!("attached {} to {dev}", image.display()));
        Ok(dev)
    }

    /// `mkfs.ext4` on a device (no lazy init, so no background zeroing during the run).
    pub fn mkfs_ext4(&mut self, dev: &str) -> Result<()> {
        run_cmd(
            "mkfs.ext4",
            [
                "-q",
                "-F",
                "-E",
                "lazy_itable_init=0,lazy_journal_init=0",
                dev,
            ],
        )
        .map(|_| ())
    }

    /// `mount -o noatime DEV DIR`.
    pub fn mount(&mut self, dev: &str, dir: &Path) -> Result<()> {
        run_cmd(
            "mount",
            [
                OsStr::new("-o"),
                OsStr::new("noatime"),
                OsStr::new(dev),
                dir.as_os_str(),
            ],
        )?;
        self.undo.push(Undo::Unmount(dir.into()));
        self.note(&format!("mounted {dev} on {}", dir.display()));
        Ok(())
    }

    /// Mounts the FUSE sink on `dir`.
    pub fn mount_fuse(&mut self, dir: &Path, rate: u64) -> Result<()> {
        let m = SinkMount::mount(dir, rate)
            .map_err(|e| ObserveError::io_path("mounting the FUSE sink on", dir, e))?;
        self.undo.push(Undo::Fuse(m));
        self.note(&format!("mounted the FUSE sink on {}", dir.display()));
        Ok(())
    }

    /// Whether the FUSE sink was granted writeback caching, and bytes it received.
    pub fn fuse_stats(&self) -> Option<(bool, u64, u64)> {
        self.undo.iter().find_map(|u| match u {
            Undo::Fuse(m) => Some((
                m.stats.writeback_cache.load(Ordering::SeqCst) == 1,
                m.stats.written.load(Ordering::SeqCst),
                m.stats.cached_writes.load(Ordering::SeqCst),
            )),
            _ => None,
        })
    }

    /// Writes a bdi knob, remembering the old value to restore.
    pub fn set_knob(
        &mut self,
        paths: &KernelPaths,
        bdi: &str,
        knob: &str,
        value: u64,
    ) -> Result<()> {
        let old_path = paths.knob(bdi, knob);
        let old = fs::read_to_string(&old_path)
            .map_err(|e| ObserveError::io_path("reading", &old_path, e))?;
        let old = super::parse::parse_knob(&old)
            .map_err(|e| ObserveError::parse(old_path.display().to_string(), e))?;
        self.undo.push(Undo::Knob {
            paths: paths.clone(),
            bdi: bdi.into(),
            knob: knob.into(),
            value: old,
        });
        sysfs::write_knob(paths, bdi, knob, value)?;
        self.note(&format!("{bdi}: {knob} {old} -> {value}"));
        Ok(())
    }

    /// Sets `vm.dirty_bytes` and `vm.dirty_background_bytes`, restoring the previous
    /// ratio-or-bytes settings at cleanup (writing one of a pair zeroes the other, so the
    /// non-zero one of each pair is written back).
    pub fn set_dirty_bytes(&mut self, dirty: u64, background: u64) -> Result<()> {
        let vm = Path::new("/proc/sys/vm");
        let read = |n: &str| -> Result<String> {
            let p = vm.join(n);
            fs::read_to_string(&p)
                .map(|s| s.trim().to_string())
                .map_err(|e| ObserveError::io_path("reading", &p, e))
        };
        let (ratio, bytes) = (read("dirty_ratio")?, read("dirty_bytes")?);
        let (bg_ratio, bg_bytes) = (
            read("dirty_background_ratio")?,
            read("dirty_background_bytes")?,
        );
        // Undo order is reversed: restore background last-pushed-first.
        let restore = |name_bytes: &str, name_ratio: &str, bytes: String, ratio: String| {
            if bytes != "0" {
                Undo::Sysctl {
                    path: vm.join(name_bytes),
                    value: bytes,
                }
            } else {
                Undo::Sysctl {
                    path: vm.join(name_ratio),
                    value: ratio,
                }
            }
        };
        self.undo
            .push(restore("dirty_bytes", "dirty_ratio", bytes, ratio));
        self.undo.push(restore(
            "dirty_background_bytes",
            "dirty_background_ratio",
            bg_bytes,
            bg_ratio,
        ));
        let write = |n: &str, v: u64| -> Result<()> {
            let p = vm.join(n);
            fs::write(&p, format!("{v}\n"))
                .map_err(|e| ObserveError::io_path(&format!("writing {v} to"), &p, e))
        };
        // Lower the background limit first so it stays below the hard limit throughout.
        write("dirty_background_bytes", background)?;
        write("dirty_bytes", dirty)?;
        self.note(&format!(
            "vm.dirty_bytes = {dirty}, vm.dirty_background_bytes = {background}"
        ));
        Ok(())
    }

    /// Starts a writer; it is stopped at cleanup (or earlier with [`Lab::stop_writer`]).
    pub fn start_writer(
        &mut self,
        name: &str,
        path: &Path,
        file_size: u64,
        rate: u64,
    ) -> Result<()> {
        let w = Writer::spawn(name, path, file_size, rate)?;
        self.undo.push(Undo::Writer(w));
        self.note(&format!("writer {name} started on {}", path.display()));
        Ok(())
    }

    /// Stops the named writer now.
    pub fn stop_writer(&mut self, name: &str) -> Result<()> {
        if let Some(i) = self
            .undo
            .iter()
            .position(|u| matches!(u, Undo::Writer(w) if w.name == name))
        {
            if let Undo::Writer(mut w) = self.undo.remove(i) {
                self.note(&format!("writer {name} stopped"));
                return w.stop();
            }
        }
        Ok(())
    }

    /// The first writer error, if any writer failed.
    pub fn writer_error(&self) -> Option<String> {
        self.undo.iter().find_map(|u| match u {
            Undo::Writer(w) => w.error().map(|e| format!("writer {}: {e}", w.name)),
            _ => None,
        })
    }

    /// Bytes written so far by the named writer.
    pub fn writer_bytes(&self, name: &str) -> Option<u64> {
        self.undo.iter().find_map(|u| match u {
            Undo::Writer(w) if w.name == name => Some(w.bytes.load(Ordering::Relaxed)),
            _ => None,
        })
    }

    /// Undoes everything, newest first. Returns what failed (and goes on after a failure).
    pub fn cleanup(&mut self) -> Vec<String> {
        let mut errors = Vec::new();
        while let Some(u) = self.undo.pop() {
            let res: Result<()> = match u {
                Undo::Writer(mut w) => {
                    self.note(&format!("stopping writer {}", w.name));
                    w.stop()
                }
                Undo::Knob {
                    paths,
                    bdi,
                    knob,
                    value,
                } => {
                    self.note(&format!("restoring {bdi} {knob} = {value}"));
                    sysfs::write_knob(&paths, &bdi, &knob, value)
                }
                Undo::Sysctl { path, value } => {
                    self.note(&format!("restoring {} = {value}", path.display()));
                    fs::write(&path, format!("{value}\n"))
                        .map_err(|e| ObserveError::io_path("restoring", &path, e))
                }
                Undo::Fuse(mut m) => {
                    self.note(&format!("unmounting {}", m.mountpoint.display()));
                    m.unmount()
                        .map_err(|e| ObserveError::io_path("unmounting", &m.mountpoint, e))
                }
                Undo::Unmount(dir) => {
                    self.note(&format!("unmounting {}", dir.display()));
                    unmount(&dir)
                }
                Undo::Detach(dev) => {
                    self.note(&format!("detaching {dev}"));
                    detach(&dev)
                }
                Undo::RemoveFile(p) => fs::remove_file(&p)
                    .or_else(|e| {
                        if e.kind() == std::io::ErrorKind::NotFound {
                            Ok(())
                        } else {
                            Err(e)
                        }
                    })
                    .map_err(|e| ObserveError::io_path("removing", &p, e)),
                Undo::RemoveDir(p) => fs::remove_dir(&p)
                    .or_else(|e| {
                        if e.kind() == std::io::ErrorKind::NotFound {
                            Ok(())
                        } else {
                            Err(e)
                        }
                    })
                    .map_err(|e| ObserveError::io_path("removing", &p, e)),
            };
            if let Err(e) = res {
                errors.push(format!("{e}"));
            }
        }
        errors
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        for e in self.cleanup() {
            eprintln!("crosscheck: cleanup: {e}");
        }
    }
}

fn unmount(dir: &Path) -> Result<()> {
    let mut last = None;
    for _ in 0..10 {
        match run_cmd("umount", [dir.as_os_str()]) {
            Ok(_) => return Ok(()),
            Err(e) => last = Some(e),
        }
        std::thread::sleep(Duration::from_millis(300));
    }
    // Still busy: detach it lazily so the directory can go; report the first error.
    let _ = run_cmd("umount", [OsStr::new("-l"), dir.as_os_str()]);
    Err(last.unwrap_or(ObserveError::Other(String::from("umount failed"))))
}

fn detach(dev: &str) -> Result<()> {
    let mut last = None;
    for _ in 0..10 {
        match run_cmd("losetup", ["-d", dev]) {
            Ok(_) => return Ok(()),
            Err(e) => last = Some(e),
        }
        std::thread::sleep(Duration::from_millis(300));
    }
    Err(last.unwrap_or(ObserveError::Other(String::from("losetup -d failed"))))
}
