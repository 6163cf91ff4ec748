//! fsx-style randomized integrity checker: mmap writes, write(2), read, mmap reads, truncate,
//! msync/fsync, all mirrored in a shadow copy and compared.
//!
//! Two processes can share one file: each owns a region `[base, base + maxlen)`. The `head`
//! process owns `[0, maxlen)` at a fixed length and never truncates; the `tail` process owns
//! the region after it and truncates the file inside its region, racing the head's mmap writes
//! and writeback on the same inode.

use crate::util::{close, ftruncate, open_rw, Mapping, XorShift};

const PAGE: u64 = 4096;

struct Fsx {
    fd: i32,
    path: String,
    shadow: Vec<u8>,
    rng: XorShift,
    /// Offset of this process's region in the file.
    base: u64,
    /// The head process: fixed-length region, no truncate.
    head: bool,
    maxlen: u64,
    maxop: u64,
    mismatches: u64,
    errors: u64,
    /// One MAP_SHARED mapping of `maxlen` bytes, remapped every 1000 ops (munmap runs FUSE's
    /// synchronous vma close writeback; mapping per op would make every mapwrite synchronous).
    map: Option<Mapping>,
}

impl Fsx {
    fn fill(&mut self, len: usize) -> Vec<u8> {
        let mut v = Vec::with_capacity(len);
        while v.len() < len {
            let x = self.rng.next().to_le_bytes();
            let k = (len - v.len()).min(8);
            v.extend_from_slice(&x[..k]);
        }
        v
    }

    fn compare(&mut self, what: &str, off: u64, got: &[u8]) {
        let exp = &self.shadow[off as usize..off as usize + got.len()];
        if exp != got {
            let i = exp.iter().zip(got).position(|(a, b)| a != b).unwrap_or(0);
            if self.mismatches < 5 {
                eprintln!(
                    "fsx: MISMATCH {what} at {} (off {off} len {}): expected {:#x} got {:#x}",
                    off + i as u64,
                    got.len(),
                    exp[i],
                    got[i]
                );
            }
            self.mismatches += 1;
        }
    }

    fn pread_all(&mut self, off: u64, len: usize) -> Vec<u8> {
        let mut buf = vec![0u8; len];
        let mut done = 0usize;
        while done < len {
            // SAFETY: buf has len bytes; we read into its tail.
            let r = unsafe {
                libc::pread(
                    self.fd,
                    buf[done..].as_mut_ptr() as *mut libc::c_void,
                    len - done,
                    (self.base + off + done as u64) as libc::off_t,
                )
            };
            if r < 0 {
                self.errors += 1;
                break;
            }
            if r == 0 {
                break;
            }
            done += r as usize;
        }
        buf.truncate(done);
        buf
    }

    fn op_read(&mut self) {
        let flen = self.shadow.len() as u64;
        if flen == 0 {
            return;
        }
        let off = self.rng.below(flen);
        let len = 1 + self.rng.below(self.maxop.min(flen - off));
        let got = self.pread_all(off, len as usize);
        if got.len() as u64 != len {
            eprintln!("fsx: short read at {off}: {} of {len}", got.len());
            self.mismatches += 1;
            return;
        }
        self.compare("read", off, &got);
    }

    fn op_write(&mut self) {
        let off = self.rng.below(self.maxlen - 1);
        let len = 1 + self.rng.below(self.maxop.min(self.maxlen - off));
        let data = self.fill(len as usize);
        // SAFETY: data is a live buffer of len bytes.
        let r = unsafe {
            libc::pwrite(
                self.fd,
                data.as_ptr() as *const libc::c_void,
                data.len(),
                (self.base + off) as i64,
            )
        };
        if r != len as isize {
            eprintln!("fsx: pwrite({off},{len}) = {r}");
            self.errors += 1;
            return;
        }
        let end = (off + len) as usize;
        if self.shadow.len() < end {
            self.shadow.resize(end, 0);
        }
        self.shadow[off as usize..end].copy_from_slice(&data);
    }

    fn op_truncate(&mut self) {
        let newlen = self.rng.below(self.maxlen + 1);
        if self.head {
            return;
        }
        if ftruncate(self.fd, self.base + newlen) != 0 {
            eprintln!("fsx: ftruncate({newlen}) failed");
            self.errors += 1;
            return;
        }
        self.shadow.resize(newlen as usize, 0);
    }

    fn op_mapwrite(&mut self) {
        let off = self.rng.below(self.maxlen - 1);
        let len = 1 + self.rng.below(self.maxop.min(self.maxlen - off));
        let end = off + len;
        if end > self.shadow.len() as u64 {
            if ftruncate(self.fd, self.base + end) != 0 {
                self.errors += 1;
                return;
            }
            self.shadow.resize(end as usize, 0);
        }
        let data = self.fill(len as usize);
        let sync = self.rng.below(16) == 0;
        let Some(m) = self.mapping() else { return };
        // SAFETY: [off, off+len) lies inside the mapping (maxlen >= end) and the file (size >= end).
        unsafe {
            std::ptr::copy_nonoverlapping(data.as_ptr(), m.ptr.add(off as usize), data.len())
        };
        if sync && m.msync(libc::MS_SYNC) != 0 {
            self.errors += 1;
        }
        self.shadow[off as usize..end as usize].copy_from_slice(&data);
    }

    fn op_mapread(&mut self) {
        let flen = self.shadow.len() as u64;
        if flen == 0 {
            return;
        }
        let off = self.rng.below(flen);
        let len = 1 + self.rng.below(self.maxop.min(flen - off));
        let Some(m) = self.mapping() else { return };
        let mut got = vec![0u8; len as usize];
        // SAFETY: [off, off+len) lies inside the mapping and the file.
        unsafe {
            std::ptr::copy_nonoverlapping(m.ptr.add(off as usize), got.as_mut_ptr(), got.len())
        };
        self.compare("mapread", off, &got);
    }

    fn mapping(&mut self) -> Option<&Mapping> {
        if self.map.is_none() {
            let len = self.maxlen.div_ceil(PAGE) as usize * PAGE as usize;
            match Mapping::new_at(self.fd, len, self.base) {
                Ok(m) => self.map = Some(m),
                Err(e) => {
                    eprintln!("fsx: mmap: {e}");
                    self.errors += 1;
                }
            }
        }
        self.map.as_ref()
    }

    fn op_sync(&mut self) {
        // SAFETY: plain syscall on our fd.
        if unsafe { libc::fsync(self.fd) } != 0 {
            self.errors += 1;
        }
    }

    fn full_check(&mut self, what: &str) {
        let len = self.shadow.len();
        let got = self.pread_all(0, len);
        if got.len() != len {
            eprintln!("fsx: {what}: file has {} bytes, shadow {len}", got.len());
            self.mismatches += 1;
            return;
        }
        self.compare(what, 0, &got);
    }
}

/// `fsx FILE OPS SEED [MAXLEN [MAXOP [head|tail]]]`: prints one summary line, returns 0 iff no
/// mismatch and no error. With `head`/`tail` the file is shared with a second process (see the
/// module doc); the caller sizes the file to MAXLEN first.
pub fn main(args: &[String]) -> i32 {
    if args.len() < 3 {
        eprintln!("usage: fsx FILE OPS SEED [MAXLEN [MAXOP [head|tail]]]");
        return 2;
    }
    let ops: u64 = args[1].parse().unwrap_or(10_000);
    let seed: u64 = args[2].parse().unwrap_or(1) | 1;
    let maxlen: u64 = args.get(3).and_then(|s| s.parse().ok()).unwrap_or(4 << 20);
    let maxop: u64 = args.get(4).and_then(|s| s.parse().ok()).unwrap_or(64 << 10);
    let fd = match open_rw(&args[0], true) {
        Ok(fd) => fd,
        Err(e) => {
            eprintln!("fsx: open {}: {e}", args[0]);
            return 1;
        }
    };
    let role = args.get(5).map(String::as_str);
    let (base, head, shadow) = match role {
        Some("head") => (0, true, vec![0u8; maxlen as usize]),
        Some("tail") => (maxlen.div_ceil(PAGE) * PAGE, false, Vec::new()),
        _ => {
            ftruncate(fd, 0);
            (0, false, Vec::new())
        }
    };
    let mut f = Fsx {
        fd,
        path: args[0].clone(),
        shadow,
        rng: XorShift(seed),
        base,
        head,
        maxlen,
        maxop,
        mismatches: 0,
        errors: 0,
        map: None,
    };
    let t0 = std::time::Instant::now();
    let mut counts = [0u64; 6];
    let mut secs = [0f64; 6];
    for i in 0..ops {
        let op = f.rng.below(100);
        let k = match op {
            0..=19 => 0,
            20..=42 => 1,
            43..=77 => 2,
            78..=94 => 3,
            95..=97 => 4,
            _ => 5,
        };
        counts[k] += 1;
        let t = std::time::Instant::now();
        match k {
            0 => f.op_read(),
            1 => f.op_write(),
            2 => f.op_mapwrite(),
            3 => f.op_mapread(),
            4 => f.op_truncate(),
            _ => f.op_sync(),
        }
        secs[k] += t.elapsed().as_secs_f64();
        if i % 1000 == 999 {
            f.map = None; // munmap: FUSE writes the file back synchronously
            f.full_check("periodic");
            if i % 5000 == 4999 {
                println!(
                    "  fsx: {} ops, {:.1}s, mismatches {}",
                    i + 1,
                    t0.elapsed().as_secs_f64(),
                    f.mismatches
                );
            }
        }
    }
    f.map = None;
    f.full_check("final");
    // Push everything to the server, drop the cache, and compare what the server holds.
    f.op_sync();
    // SAFETY: plain syscall on our fd.
    unsafe { libc::posix_fadvise(f.fd, f.base as i64, 0, libc::POSIX_FADV_DONTNEED) };
    close(f.fd);
    match open_rw(&f.path, false) {
        Ok(fd) => {
            f.fd = fd;
            f.full_check("reopen");
            close(fd);
        }
        Err(_) => f.errors += 1,
    }
    println!(
        "fsx: seconds per kind: read {:.1} write {:.1} mapwrite {:.1} mapread {:.1} truncate {:.1} sync {:.1}",
        secs[0], secs[1], secs[2], secs[3], secs[4], secs[5]
    );
    println!(
        "fsx: {ops} ops (read {} write {} mapwrite {} mapread {} truncate {} sync {}) in {:.1}s, \
         final size {}, mismatches {}, errors {}",
        counts[0],
        counts[1],
        counts[2],
        counts[3],
        counts[4],
        counts[5],
        t0.elapsed().as_secs_f64(),
        f.shadow.len(),
        f.mismatches,
        f.errors
    );
    if f.mismatches == 0 && f.errors == 0 {
        0
    } else {
        1
    }
}
