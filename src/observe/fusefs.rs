//! A tiny FUSE server for the `crosscheck` FUSE phase: one directory holding one regular file
//! `data`, served by a thread of this process (the `fuser` crate, no libfuse).
//!
//! It asks the kernel for `FUSE_WRITEBACK_CACHE`, so writes go through the page cache and are
//! written back later, like on any disk: that is what makes the FUSE bdi show up in the dirty
//! limit accounting (`BdiWritten`, `BdiDirtyThresh`). Without writeback caching FUSE writes
//! are synchronous and never dirty a page. The server keeps only the file size: data is
//! dropped (reads return zeros), so memory stays bounded whatever is written. Optionally it
//! serves writes at a bounded rate, like a slow network filesystem.
//!
//! The kernel sets `strict_limit` and `max_ratio` 1% on every FUSE bdi (fuse_bdi_init).

use std::ffi::OsStr;
use std::io;
use std::path::Path;
use std::string::String;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, UNIX_EPOCH};
use std::vec::Vec;

use fuser::{
    Errno, FileAttr, FileHandle, FileType, Filesystem, FopenFlags, Generation, INodeNo, InitFlags,
    KernelConfig, LockOwner, OpenFlags, ReplyAttr, ReplyData, ReplyDirectory, ReplyEmpty,
    ReplyEntry, ReplyOpen, ReplyWrite, Request, WriteFlags,
};

/// The file's inode.
const DATA_INO: INodeNo = INodeNo(2);
/// Name of the only file.
pub const DATA_NAME: &str = "data";
const TTL: Duration = Duration::from_secs(3600);

/// Counters shared with the experiment.
#[derive(Debug, Default)]
pub struct SinkStats {
    /// Bytes received in WRITE requests.
    pub written: AtomicU64,
    /// WRITE requests flagged `FUSE_WRITE_CACHE` (writeback from the page cache).
    pub cached_writes: AtomicU64,
    /// Whether the kernel granted writeback caching (1) or not (0).
    pub writeback_cache: AtomicU64,
}

/// The filesystem: one file whose data is dropped.
pub struct SinkFs {
    size: AtomicU64,
    uid: u32,
    gid: u32,
    /// Bytes per second the server accepts (0 = unlimited).
    rate: u64,
    pace: Mutex<(Instant, u64)>,
    stats: Arc<SinkStats>,
}

impl SinkFs {
    /// A sink that accepts `rate_bytes_per_s` (0: as fast as it can), counting into `stats`.
    pub fn new(rate_bytes_per_s: u64, stats: Arc<SinkStats>) -> Self {
        SinkFs {
            size: AtomicU64::new(0),
            uid: 0,
            gid: 0,
            rate: rate_bytes_per_s,
            pace: Mutex::new((Instant::now(), 0)),
            stats,
        }
    }

    fn attr(&self, ino: INodeNo) -> Option<FileAttr> {
        let (kind, perm, size, nlink) = if ino == INodeNo::ROOT {
            (FileType::Directory, 0o755, 0, 2)
        } else if ino == DATA_INO {
            (
                FileType::RegularFile,
                0o644,
                self.size.load(Ordering::SeqCst),
                1,
            )
        } else {
            return None;
        };
        Some(FileAttr {
            ino,
            size,
            blocks: size.div_ceil(512),
            atime: UNIX_EPOCH,
            mtime: UNIX_EPOCH,
            ctime: UNIX_EPOCH,
            crtime: UNIX_EPOCH,
            kind,
            perm,
            nlink,
            uid: self.uid,
            gid: self.gid,
            rdev: 0,
            flags: 0,
            blksize: 4096,
        })
    }

    /// Sleeps so that accepted bytes stay within `rate` (a simple virtual clock).
    fn pace(&self, bytes: u64) {
        if self.rate == 0 {
            return;
        }
        let wait = {
            let Ok(mut p) = self.pace.lock() else {
                return;
            };
            p.1 = p.1.saturating_add(bytes);
            let due = p.0 + Duration::from_secs_f64(p.1 as f64 / self.rate as f64);
            due.saturating_duration_since(Instant::now())
        };
        if !wait.is_zero() {
            std::thread::sleep(wait);
        }
    }
}

impl Filesystem for SinkFs {
    fn init(&mut self, _req: &Request, config: &mut KernelConfig) -> io::Result<()> {
        if config
            .add_capabilities(InitFlags::FUSE_WRITEBACK_CACHE)
            .is_ok()
        {
            self.stats.writeback_cache.store(1, Ordering::SeqCst);
        }
        let _ = config.set_max_write(1 << 20);
        Ok(())
    }

    fn lookup(&self, _req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEntry) {
        if parent == INodeNo::ROOT && name == DATA_NAME {
            if let Some(a) = self.attr(DATA_INO) {
                reply.entry(&TTL, &a, Generation(0));
                return;
            }
        }
        reply.error(Errno::ENOENT);
    }

    fn getattr(&self, _req: &Request, ino: INodeNo, _fh: Option<FileHandle>, reply: ReplyAttr) {
        match self.attr(ino) {
            Some(a) => reply.attr(&TTL, &a),
            None => reply.error(Errno::ENOENT),
        }
    }

    fn setattr(
        &self,
        _req: &Request,
        ino: INodeNo,
        _mode: Option<u32>,
        _uid: Option<u32>,
        _gid: Option<u32>,
        size: Option<u64>,
        _atime: Option<fuser::TimeOrNow>,
        _mtime: Option<fuser::TimeOrNow>,
        _ctime: Option<std::time::SystemTime>,
        _fh: Option<FileHandle>,
        _crtime: Option<std::time::SystemTime>,
        _chgtime: Option<std::time::SystemTime>,
        _bkuptime: Option<std::time::SystemTime>,
        _flags: Option<fuser::BsdFileFlags>,
        reply: ReplyAttr,
    ) {
        if ino == DATA_INO {
            if let Some(s) = size {
                self.size.store(s, Ordering::SeqCst);
            }
        }
        match self.attr(ino) {
            Some(a) => reply.attr(&TTL, &a),
            None => reply.error(Errno::ENOENT),
        }
    }

    fn open(&self, _req: &Request, ino: INodeNo, _flags: OpenFlags, reply: ReplyOpen) {
        if ino == DATA_INO || ino == INodeNo::ROOT {
            reply.opened(FileHandle(0), FopenFlags::empty());
        } else {
            reply.error(Errno::ENOENT);
        }
    }

    fn read(
        &self,
        _req: &Request,
        ino: INodeNo,
        _fh: FileHandle,
        offset: u64,
        size: u32,
        _flags: OpenFlags,
        _lock_owner: Option<LockOwner>,
        reply: ReplyData,
    ) {
        if ino != DATA_INO {
            reply.error(Errno::EISDIR);
            return;
        }
        let end = self.size.load(Ordering::SeqCst);
        let n = end.saturating_sub(offset).min(u64::from(size));
        let zeros: Vec<u8> = std::vec![0u8; usize::try_from(n).unwrap_or(0)];
        reply.data(&zeros);
    }

    fn write(
        &self,
        _req: &Request,
        ino: INodeNo,
        _fh: FileHandle,
        offset: u64,
        data: &[u8],
        write_flags: WriteFlags,
        _flags: OpenFlags,
        _lock_owner: Option<LockOwner>,
        reply: ReplyWrite,
    ) {
        if ino != DATA_INO {
            reply.error(Errno::EISDIR);
            return;
        }
        let len = data.len() as u64;
        self.pace(len);
        self.size
            .fetch_max(offset.saturating_add(len), Ordering::SeqCst);
        self.stats.written.fetch_add(len, Ordering::SeqCst);
        if write_flags.contains(WriteFlags::FUSE_WRITE_CACHE) {
            self.stats.cached_writes.fetch_add(1, Ordering::SeqCst);
        }
        reply.written(u32::try_from(len).unwrap_or(u32::MAX));
    }

    fn flush(
        &self,
        _req: &Request,
        _ino: INodeNo,
        _fh: FileHandle,
        _lock_owner: LockOwner,
        reply: ReplyEmpty,
    ) {
        reply.ok();
    }

    fn fsync(
        &self,
        _req: &Request,
        _ino: INodeNo,
        _fh: FileHandle,
        _datasync: bool,
        reply: ReplyEmpty,
    ) {
        reply.ok();
    }

    fn opendir(&self, _req: &Request, ino: INodeNo, _flags: OpenFlags, reply: ReplyOpen) {
        if ino == INodeNo::ROOT {
            reply.opened(FileHandle(0), FopenFlags::empty());
        } else {
            reply.error(Errno::ENOTDIR);
        }
    }

    fn readdir(
        &self,
        _req: &Request,
        ino: INodeNo,
        _fh: FileHandle,
        offset: u64,
        mut reply: ReplyDirectory,
    ) {
        if ino != INodeNo::ROOT {
            reply.error(Errno::ENOTDIR);
            return;
        }
        let entries = [
            (INodeNo::ROOT, FileType::Directory, "."),
            (INodeNo::ROOT, FileType::Directory, ".."),
            (DATA_INO, FileType::RegularFile, DATA_NAME),
        ];
        for (i, (ino, kind, name)) in entries.iter().enumerate().skip(offset as usize) {
            if reply.add(*ino, (i + 1) as u64, *kind, name) {
                break;
            }
        }
        reply.ok();
    }
}

/// A mounted [`SinkFs`]; unmounts (lazily, then joins the server thread) when finished.
pub struct SinkMount {
    session: Option<fuser::BackgroundSession>,
    /// What the sink received.
    pub stats: Arc<SinkStats>,
    /// Where it is mounted.
    pub mountpoint: std::path::PathBuf,
}

impl SinkMount {
    /// Mounts a sink filesystem on `mountpoint` (must exist), served at `rate` bytes/s.
    pub fn mount(mountpoint: &Path, rate_bytes_per_s: u64) -> io::Result<Self> {
        let stats = Arc::new(SinkStats::default());
        let fs = SinkFs::new(rate_bytes_per_s, stats.clone());
        let mut cfg = fuser::Config::default();
        cfg.mount_options = std::vec![
            fuser::MountOption::FSName(String::from("dirtylimit-sink")),
            fuser::MountOption::Subtype(String::from("dirtylimit")),
            fuser::MountOption::RW,
            fuser::MountOption::NoAtime,
        ];
        let session = fuser::spawn_mount(fs, mountpoint, &cfg)?;
        Ok(SinkMount {
            session: Some(session),
            stats,
            mountpoint: mountpoint.into(),
        })
    }

    /// Unmounts and waits for the server thread.
    pub fn unmount(&mut self) -> io::Result<()> {
        match self.session.take() {
            Some(s) => s.umount_and_join(),
            None => Ok(()),
        }
    }
}

impl Drop for SinkMount {
    fn drop(&mut self) {
        let _ = self.unmount();
    }
}
