//! Small helpers shared by the guest programs: a shared file mapping, fusectl access, xorshift.

use std::ffi::CString;
use std::fs;

/// A MAP_SHARED mapping of a whole file; unmapped on drop.
pub struct Mapping {
    pub ptr: *mut u8,
    pub len: usize,
}

// SAFETY: the mapping is plain shared memory; callers synchronise access themselves.
unsafe impl Send for Mapping {}

impl Mapping {
    /// Map `len` bytes of `fd` from `offset` (page-aligned) read-write and shared.
    pub fn new_at(fd: i32, len: usize, offset: u64) -> std::io::Result<Mapping> {
        // SAFETY: a fresh mapping chosen by the kernel; no existing memory is affected.
        let p = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len.max(1),
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_SHARED,
                fd,
                offset as libc::off_t,
            )
        };
        if p == libc::MAP_FAILED {
            return Err(std::io::Error::last_os_error());
        }
        Ok(Mapping {
            ptr: p as *mut u8,
            len: len.max(1),
        })
    }
    pub fn msync(&self, flags: i32) -> i32 {
        // SAFETY: ptr/len describe our own live mapping.
        unsafe { libc::msync(self.ptr as *mut libc::c_void, self.len, flags) }
    }
}

impl Drop for Mapping {
    fn drop(&mut self) {
        // SAFETY: ptr/len describe our own live mapping, unmapped exactly once.
        unsafe {
            libc::munmap(self.ptr as *mut libc::c_void, self.len);
        }
    }
}

pub fn open_rw(path: &str, create: bool) -> std::io::Result<i32> {
    let c = CString::new(path).expect("path without NUL");
    let flags = libc::O_RDWR | if create { libc::O_CREAT } else { 0 };
    // SAFETY: c is a valid NUL-terminated string.
    let fd = unsafe { libc::open(c.as_ptr(), flags, 0o666) };
    if fd < 0 {
        Err(std::io::Error::last_os_error())
    } else {
        Ok(fd)
    }
}

pub fn ftruncate(fd: i32, len: u64) -> i32 {
    // SAFETY: plain syscall on an fd we own.
    unsafe { libc::ftruncate(fd, len as libc::off_t) }
}

pub fn close(fd: i32) {
    // SAFETY: closing an fd we own.
    unsafe {
        libc::close(fd);
    }
}

/// fusectl connection number of the FUSE mount at `mnt`: the minor of its device, from
/// /proc/self/mountinfo (no stat: that would wait for the server's INIT reply).
pub fn conn_id(mnt: &str) -> Option<u64> {
    let info = fs::read_to_string("/proc/self/mountinfo").ok()?;
    let line = info
        .lines()
        .rfind(|l| l.split_whitespace().nth(4) == Some(mnt))?;
    let dev = line.split_whitespace().nth(2)?;
    dev.split(':').nth(1)?.parse().ok()
}

pub fn ctl_path(conn: u64, file: &str) -> String {
    format!("/sys/fs/fuse/connections/{conn}/{file}")
}

pub fn read_u64(path: &str) -> Option<u64> {
    fs::read_to_string(path).ok()?.trim().parse().ok()
}

pub fn write_str(path: &str, s: &str) -> std::io::Result<()> {
    fs::write(path, s)
}

pub struct XorShift(pub u64);
impl XorShift {
    pub fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.0 = x;
        x
    }
    pub fn below(&mut self, n: u64) -> u64 {
        if n == 0 {
            0
        } else {
            self.next() % n
        }
    }
}
