//! In-memory FUSE server (flat root directory) used as the "fast" and the "stalled" server.
//!
//! Stalling: the server answers everything except WRITE once stalling has begun: from the start
//! (`--stall-now`), after `--stall-after-ms N`, or after SIGUSR1. Unanswered WRITE replies are
//! kept alive (fuser would answer EIO for a dropped reply), so the kernel's writeback pages stay
//! pinned until the connection is aborted.
//!
//! `--discard`: WRITE data is counted, not kept (reads return zeros), so a writer can stream
//! through a file larger than the guest's memory.
//!
//! `--latency-ms N`: every WRITE is answered N ms after it arrived (the data is stored at
//! once), like a network filesystem; replies are sent by a second thread, so up to
//! `max_background` WRITEs are in flight at once and the throughput is about
//! (pages in flight) / latency.
//!
//! `--max-background N`: the server's window, WRITEs of at most `MAX_WRITE` bytes in flight at
//! once (default `MAX_BACKGROUND`), like a network filesystem's slot table.

use fuser::consts::{FOPEN_DIRECT_IO, FUSE_WRITEBACK_CACHE};
use fuser::{
    FileAttr, FileType, Filesystem, KernelConfig, MountOption, ReplyAttr, ReplyCreate, ReplyData,
    ReplyDirectory, ReplyEmpty, ReplyEntry, ReplyOpen, ReplyWrite, Request, TimeOrNow,
};
use std::collections::HashMap;
use std::ffi::{OsStr, OsString};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::time::{Duration, Instant, SystemTime};

static STALL: AtomicBool = AtomicBool::new(false);

/// A WRITE reply to send at a given time, with the length it acknowledges.
type Deferred = (Instant, ReplyWrite, u32);

extern "C" fn on_usr1(_: libc::c_int) {
    STALL.store(true, Ordering::SeqCst);
}

const TTL: Duration = Duration::from_secs(1);
/// Largest WRITE the server accepts (bytes).
pub const MAX_WRITE: u32 = 128 * 1024;
/// WRITEs in flight at once unless `--max-background` says otherwise.
const MAX_BACKGROUND: u16 = 256;
/// `STATS_NAME` in the root: a read-only, direct-I/O file holding the WRITE bytes and the number
/// of WRITE requests received so far (`BYTES WRITES`), so that a test measures what reached the server, not what was dirtied in the cache.
pub const STATS_NAME: &str = "__stats";
const STATS_INO: u64 = 1 << 40;
const MAX_FILE: u64 = 1 << 30;
const MAX_DISCARD_FILE: u64 = 1 << 40;

struct Node {
    name: OsString,
    /// the contents, empty with `--discard`
    data: Vec<u8>,
    size: u64,
    mtime: SystemTime,
}

pub struct MemFs {
    files: HashMap<u64, Node>,
    next_ino: u64,
    wbcache: bool,
    discard: bool,
    stalled_replies: Vec<ReplyWrite>,
    write_bytes: u64,
    /// WRITE requests received so far
    writes: u64,
    latency: Option<(Duration, mpsc::Sender<Deferred>)>,
    max_background: u16,
}

fn root_attr() -> FileAttr {
    FileAttr {
        ino: 1,
        size: 0,
        blocks: 0,
        atime: SystemTime::UNIX_EPOCH,
        mtime: SystemTime::UNIX_EPOCH,
        ctime: SystemTime::UNIX_EPOCH,
        crtime: SystemTime::UNIX_EPOCH,
        kind: FileType::Directory,
        perm: 0o777,
        nlink: 2,
        uid: 0,
        gid: 0,
        rdev: 0,
        blksize: 4096,
        flags: 0,
    }
}

impl MemFs {
    fn attr(&self, ino: u64) -> Option<FileAttr> {
        if ino == 1 {
            return Some(root_attr());
        }
        if ino == STATS_INO {
            return Some(FileAttr {
                ino,
                size: 64,
                kind: FileType::RegularFile,
                perm: 0o444,
                nlink: 1,
                ..root_attr()
            });
        }
        let n = self.files.get(&ino)?;
        Some(FileAttr {
            ino,
            size: n.size,
            blocks: n.size.div_ceil(512),
            atime: n.mtime,
            mtime: n.mtime,
            ctime: n.mtime,
            crtime: n.mtime,
            kind: FileType::RegularFile,
            perm: 0o666,
            nlink: 1,
            uid: 0,
            gid: 0,
            rdev: 0,
            blksize: 4096,
            flags: 0,
        })
    }
}

impl Filesystem for MemFs {
    fn init(&mut self, _req: &Request<'_>, config: &mut KernelConfig) -> Result<(), libc::c_int> {
        if self.wbcache {
            config
                .add_capabilities(FUSE_WRITEBACK_CACHE)
                .map_err(|_| libc::ENOSYS)?;
        }
        let _ = config.set_max_write(MAX_WRITE);
        let _ = config.set_max_background(self.max_background);
        // the kernel's default proportion: congested at three quarters of the window
        let _ = config.set_congestion_threshold(self.max_background - self.max_background / 4);
        Ok(())
    }

    fn lookup(&mut self, _req: &Request<'_>, parent: u64, name: &OsStr, reply: ReplyEntry) {
        if parent != 1 {
            return reply.error(libc::ENOENT);
        }
        if name == STATS_NAME {
            return reply.entry(&TTL, &self.attr(STATS_INO).expect("stats"), 0);
        }
        let ino = self
            .files
            .iter()
            .find(|(_, n)| n.name == name)
            .map(|(i, _)| *i);
        match ino.and_then(|i| self.attr(i)) {
            Some(a) => reply.entry(&TTL, &a, 0),
            None => reply.error(libc::ENOENT),
        }
    }

    fn getattr(&mut self, _req: &Request<'_>, ino: u64, _fh: Option<u64>, reply: ReplyAttr) {
        match self.attr(ino) {
            Some(a) => reply.attr(&TTL, &a),
            None => reply.error(libc::ENOENT),
        }
    }

    fn setattr(
        &mut self,
        _req: &Request<'_>,
        ino: u64,
        _mode: Option<u32>,
        _uid: Option<u32>,
        _gid: Option<u32>,
        size: Option<u64>,
        _atime: Option<TimeOrNow>,
        _mtime: Option<TimeOrNow>,
        _ctime: Option<SystemTime>,
        _fh: Option<u64>,
        _crtime: Option<SystemTime>,
        _chgtime: Option<SystemTime>,
        _bkuptime: Option<SystemTime>,
        _flags: Option<u32>,
        reply: ReplyAttr,
    ) {
        if let Some(sz) = size {
            if sz
                > if self.discard {
                    MAX_DISCARD_FILE
                } else {
                    MAX_FILE
                }
            {
                return reply.error(libc::EFBIG);
            }
            match self.files.get_mut(&ino) {
                Some(n) => {
                    n.size = sz;
                    if !self.discard {
                        n.data.resize(sz as usize, 0);
                    }
                    n.mtime = SystemTime::now();
                }
                None => return reply.error(libc::ENOENT),
            }
        }
        match self.attr(ino) {
            Some(a) => reply.attr(&TTL, &a),
            None => reply.error(libc::ENOENT),
        }
    }

    fn create(
        &mut self,
        _req: &Request<'_>,
        parent: u64,
        name: &OsStr,
        _mode: u32,
        _umask: u32,
        _flags: i32,
        reply: ReplyCreate,
    ) {
        if parent != 1 {
            return reply.error(libc::ENOENT);
        }
        let ino = self.next_ino;
        self.next_ino += 1;
        self.files.insert(
            ino,
            Node {
                name: name.to_owned(),
                data: Vec::new(),
                size: 0,
                mtime: SystemTime::now(),
            },
        );
        let a = self.attr(ino).expect("just inserted");
        reply.created(&TTL, &a, 0, 0, 0);
    }

    fn open(&mut self, _req: &Request<'_>, ino: u64, _flags: i32, reply: ReplyOpen) {
        if ino == STATS_INO {
            reply.opened(0, FOPEN_DIRECT_IO)
        } else if self.attr(ino).is_some() {
            reply.opened(0, 0)
        } else {
            reply.error(libc::ENOENT)
        }
    }

    fn read(
        &mut self,
        _req: &Request<'_>,
        ino: u64,
        _fh: u64,
        offset: i64,
        size: u32,
        _flags: i32,
        _lock_owner: Option<u64>,
        reply: ReplyData,
    ) {
        if ino == STATS_INO {
            let text = format!("{} {}\n", self.write_bytes, self.writes);
            let off = (offset.max(0) as usize).min(text.len());
            return reply.data(&text.as_bytes()[off..]);
        }
        let Some(n) = self.files.get(&ino) else {
            return reply.error(libc::ENOENT);
        };
        let off = (offset.max(0) as u64).min(n.size);
        let end = off.saturating_add(size as u64).min(n.size);
        if self.discard {
            return reply.data(&vec![0u8; (end - off) as usize]);
        }
        reply.data(&n.data[off as usize..end as usize]);
    }

    fn write(
        &mut self,
        _req: &Request<'_>,
        ino: u64,
        _fh: u64,
        offset: i64,
        data: &[u8],
        _write_flags: u32,
        _flags: i32,
        _lock_owner: Option<u64>,
        reply: ReplyWrite,
    ) {
        if STALL.load(Ordering::SeqCst) {
            self.stalled_replies.push(reply);
            return;
        }
        let Some(n) = self.files.get_mut(&ino) else {
            return reply.error(libc::ENOENT);
        };
        let off = offset.max(0) as u64;
        let end = off + data.len() as u64;
        if end
            > if self.discard {
                MAX_DISCARD_FILE
            } else {
                MAX_FILE
            }
        {
            return reply.error(libc::EFBIG);
        }
        n.size = n.size.max(end);
        if !self.discard {
            if (n.data.len() as u64) < end {
                n.data.resize(end as usize, 0);
            }
            n.data[off as usize..end as usize].copy_from_slice(data);
        }
        n.mtime = SystemTime::now();
        self.write_bytes += data.len() as u64;
        self.writes += 1;
        match &self.latency {
            Some((lat, tx)) => {
                let _ = tx.send((Instant::now() + *lat, reply, data.len() as u32));
            }
            None => reply.written(data.len() as u32),
        }
    }

    fn flush(&mut self, _req: &Request<'_>, _ino: u64, _fh: u64, _lo: u64, reply: ReplyEmpty) {
        reply.ok()
    }

    fn release(
        &mut self,
        _req: &Request<'_>,
        _ino: u64,
        _fh: u64,
        _flags: i32,
        _lock_owner: Option<u64>,
        _flush: bool,
        reply: ReplyEmpty,
    ) {
        reply.ok()
    }

    fn fsync(&mut self, _req: &Request<'_>, _ino: u64, _fh: u64, _ds: bool, reply: ReplyEmpty) {
        reply.ok()
    }

    fn readdir(
        &mut self,
        _req: &Request<'_>,
        ino: u64,
        _fh: u64,
        offset: i64,
        mut reply: ReplyDirectory,
    ) {
        if ino != 1 {
            return reply.error(libc::ENOTDIR);
        }
        let mut entries: Vec<(u64, FileType, OsString)> = vec![
            (1, FileType::Directory, ".".into()),
            (1, FileType::Directory, "..".into()),
        ];
        let mut inos: Vec<_> = self.files.keys().copied().collect();
        inos.sort_unstable();
        for i in inos {
            entries.push((i, FileType::RegularFile, self.files[&i].name.clone()));
        }
        for (k, (i, t, name)) in entries.into_iter().enumerate().skip(offset.max(0) as usize) {
            if reply.add(i, (k + 1) as i64, t, name) {
                break;
            }
        }
        reply.ok()
    }
}

/// The value after `flag` in `args`, parsed.
fn opt_u64(args: &[String], flag: &str) -> Option<u64> {
    let i = args.iter().position(|a| a == flag)?;
    args.get(i + 1)?.parse().ok()
}

/// Sends deferred WRITE replies when their time has come (they arrive in deadline order).
fn reply_thread(rx: mpsc::Receiver<Deferred>) {
    for (at, reply, len) in rx {
        let now = Instant::now();
        if at > now {
            std::thread::sleep(at - now);
        }
        if STALL.load(Ordering::SeqCst) {
            // keep it unanswered, like the stalled WRITEs
            std::mem::forget(reply);
            continue;
        }
        reply.written(len);
    }
}

/// `serve MNT [--wbcache] [--discard] [--stall-now] [--stall-after-ms N] [--latency-ms N] [--max-background N]`: mount and serve
/// until unmounted or aborted.
pub fn main(args: &[String]) -> i32 {
    let Some(mnt) = args.first() else {
        eprintln!(
            "usage: serve MNT [--wbcache] [--discard] [--stall-now] [--stall-after-ms N] [--latency-ms N] [--max-background N]"
        );
        return 2;
    };
    let wbcache = args.iter().any(|a| a == "--wbcache");
    if args.iter().any(|a| a == "--stall-now") {
        STALL.store(true, Ordering::SeqCst);
    }
    if let Some(ms) = opt_u64(args, "--stall-after-ms") {
        std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(ms));
            STALL.store(true, Ordering::SeqCst);
        });
    }
    let latency = opt_u64(args, "--latency-ms")
        .filter(|&ms| ms > 0)
        .map(|ms| {
            let (tx, rx) = mpsc::channel();
            std::thread::spawn(move || reply_thread(rx));
            (Duration::from_millis(ms), tx)
        });
    let max_background = match args.iter().position(|a| a == "--max-background") {
        None => MAX_BACKGROUND,
        Some(_) => match opt_u64(args, "--max-background").and_then(|n| u16::try_from(n).ok()) {
            Some(n) if n >= 4 => n,
            _ => {
                eprintln!("serve: --max-background needs a number of WRITEs from 4 to 65535");
                return 2;
            }
        },
    };
    // SAFETY: installing an async-signal-safe handler that only stores to an atomic.
    unsafe {
        libc::signal(
            libc::SIGUSR1,
            on_usr1 as extern "C" fn(libc::c_int) as usize,
        );
    }
    let fs = MemFs {
        files: HashMap::new(),
        next_ino: 2,
        wbcache,
        discard: args.iter().any(|a| a == "--discard"),
        stalled_replies: Vec::new(),
        write_bytes: 0,
        writes: 0,
        latency,
        max_background,
    };
    let opts = [
        MountOption::FSName("dltest".into()),
        MountOption::RW,
        MountOption::Dev,
    ];
    match fuser::mount2(fs, mnt, &opts) {
        Ok(()) => 0,
        Err(e) => {
            eprintln!("serve {mnt}: {e}");
            1
        }
    }
}
