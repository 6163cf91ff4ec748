//! `extern "C"` boundary of the `dirtylimit` core, for the kernel (`lib/dirtylimit`, used by
//! `CONFIG_FUSE_DIRTY_LIMIT` and `CONFIG_WB_DIRTY_REDISTRIBUTE`) and the host-side C check. The C
//! declarations are in `kernel-glue/include/dirtylimit.h` (in the kernel tree:
//! `include/linux/dirtylimit.h`).
//!
//! Memory and locking belong to the C side:
//! * it allocates `nr` slots of [`dirtylimit_slot_size`] bytes (aligned to
//!   [`dirtylimit_slot_align`]) and one blob of [`dirtylimit_domain_size`] bytes (aligned to
//!   [`dirtylimit_domain_align`]) for the `Domain<'static>` itself;
//! * [`dirtylimit_init`] writes a fresh domain over those slots into the blob;
//! * every other call takes the blob back, under the C side's lock (one caller at a time), and
//!   the blob and the slots stay allocated and unmoved until the C side stops calling.
//!
//! No allocation happens here; this is the only place in the project with `unsafe`.
#![cfg_attr(not(test), no_std)]
#![deny(unsafe_op_in_unsafe_fn)]
#![deny(clippy::undocumented_unsafe_blocks)]

use core::ffi::{c_char, c_int, c_void};
use core::marker::{PhantomData, PhantomPinned};
use core::mem::{align_of, size_of};
use dirtylimit::domain::{Domain, DomainConfig};
use dirtylimit::global_limits::{
    domain_dirty_limits, global_dirtyable_memory, MemInfo, VmDirtyConfig,
};
use dirtylimit::{Bdi, BdiId, Error, Policy};

const EINVAL: c_int = 22;

/// Bumped whenever a signature in `dirtylimit.h` changes.
pub const DIRTYLIMIT_ABI_VERSION: u32 = 2;

/// `DIRTYLIMIT_POLICY_LINUX`: thresholds as `__wb_calc_thresh()` computes them.
pub const DIRTYLIMIT_POLICY_LINUX: u32 = 0;
/// `DIRTYLIMIT_POLICY_REDISTRIBUTE`: the share clipped by caps goes to the uncapped devices.
pub const DIRTYLIMIT_POLICY_REDISTRIBUTE: u32 = 1;

/// `struct dirtylimit_domain`: opaque to C, a `Domain<'static>` on this side. C only ever holds
/// a pointer to caller-allocated memory of [`dirtylimit_domain_size`] bytes.
#[allow(non_camel_case_types)]
#[repr(C)]
pub struct dirtylimit_domain {
    _opaque: [u8; 0],
    _not_send_sync_unpin: PhantomData<(*mut u8, PhantomPinned)>,
}

extern "C" {
    /// Provided by the C side: report a Rust panic (`file`, `len`, `line`) and never return.
    fn dirtylimit_panic_hook(file: *const c_char, len: usize, line: u32) -> !;
}

#[cfg(not(test))]
#[panic_handler]
fn panic(info: &core::panic::PanicInfo<'_>) -> ! {
    let (file, line) = match info.location() {
        Some(l) => (l.file(), l.line()),
        None => ("?", 0),
    };
    // SAFETY: the hook is a plain C function that takes a pointer/length pair valid for the
    // duration of the call and does not return.
    unsafe { dirtylimit_panic_hook(file.as_ptr().cast(), file.len(), line) }
}

type Dom = Domain<'static>;

fn errno(e: Error) -> c_int {
    e.errno()
}

fn status(r: Result<(), Error>) -> c_int {
    match r {
        Ok(()) => 0,
        Err(e) => errno(e),
    }
}

/// The domain in `dom`, or `None` for a null pointer.
///
/// # Safety
/// `dom` is null or was initialised by [`dirtylimit_init`], is still allocated, and the caller
/// holds the C side's lock (no other reference to it exists for `'a`).
unsafe fn domain<'a>(dom: *mut dirtylimit_domain) -> Option<&'a mut Dom> {
    // SAFETY: per this function's contract, a non-null `dom` points to an initialised, live,
    // exclusively accessed `Domain<'static>`.
    unsafe { dom.cast::<Dom>().as_mut() }
}

/// Shared-reference variant of [`domain`] for queries.
///
/// # Safety
/// As for [`domain`].
unsafe fn domain_ref<'a>(dom: *const dirtylimit_domain) -> Option<&'a Dom> {
    // SAFETY: per this function's contract, a non-null `dom` points to an initialised, live
    // `Domain<'static>` that nobody mutates during the call.
    unsafe { dom.cast::<Dom>().as_ref() }
}

#[no_mangle]
pub extern "C" fn dirtylimit_abi_version() -> u32 {
    DIRTYLIMIT_ABI_VERSION
}

#[no_mangle]
pub extern "C" fn dirtylimit_domain_size() -> usize {
    size_of::<Dom>()
}

#[no_mangle]
pub extern "C" fn dirtylimit_domain_align() -> usize {
    align_of::<Dom>()
}

#[no_mangle]
pub extern "C" fn dirtylimit_slot_size() -> usize {
    size_of::<Bdi>()
}

#[no_mangle]
pub extern "C" fn dirtylimit_slot_align() -> usize {
    align_of::<Bdi>()
}

/// Initialises a domain with `policy` ([`DIRTYLIMIT_POLICY_LINUX`] or
/// [`DIRTYLIMIT_POLICY_REDISTRIBUTE`], both with the idle-device floor) in `dom` over `nr` slots
/// at `slots`; `period_len` is the aging period in the unit later passed as `now` (jiffies in the
/// kernel). Returns 0, or -EINVAL for a null or misaligned pointer, a zero period or an unknown
/// policy (nothing is written then).
///
/// # Safety
/// `dom` points to [`dirtylimit_domain_size`] writable bytes, `slots` to `nr` *
/// [`dirtylimit_slot_size`] writable bytes; both stay allocated, unmoved and used only through
/// this API (under the caller's lock) until the caller stops using the domain. Neither may hold
/// a live domain (the old one is overwritten without being dropped; it owns nothing).
#[no_mangle]
pub unsafe extern "C" fn dirtylimit_init(
    dom: *mut dirtylimit_domain,
    slots: *mut c_void,
    nr: usize,
    period_len: u64,
    policy: u32,
) -> c_int {
    let policy = match policy {
        DIRTYLIMIT_POLICY_LINUX => Policy::Linux,
        DIRTYLIMIT_POLICY_REDISTRIBUTE => Policy::Redistribute,
        _ => return -EINVAL,
    };
    if dom.is_null()
        || slots.is_null()
        || period_len == 0
        || !dom.cast::<Dom>().is_aligned()
        || !slots.cast::<Bdi>().is_aligned()
    {
        return -EINVAL;
    }
    let first = slots.cast::<Bdi>();
    for i in 0..nr {
        // SAFETY: `slots` holds `nr` properly aligned slots (contract above), so slot `i` is in
        // bounds; `ptr::write` makes it a valid `Bdi` whatever bytes it held.
        unsafe { first.add(i).write(Bdi::EMPTY) };
    }
    // SAFETY: the `nr` slots are now initialised `Bdi`s, stay allocated and are reached only
    // through the domain built below, so an exclusive `'static` borrow of them is sound.
    let slots: &'static mut [Bdi] = unsafe { core::slice::from_raw_parts_mut(first, nr) };
    let cfg = DomainConfig {
        period_len,
        ..DomainConfig::new(policy)
    };
    // SAFETY: `dom` is aligned and large enough for a `Domain<'static>` (contract above) and
    // holds no live value that would need dropping.
    unsafe { dom.cast::<Dom>().write(Domain::new(slots, cfg)) };
    0
}

/// Registers a connection. Returns its id (>= 0), or -ENOSPC when every slot is in use.
///
/// # Safety
/// See [`domain`].
#[no_mangle]
pub unsafe extern "C" fn dirtylimit_add(dom: *mut dirtylimit_domain) -> c_int {
    // SAFETY: forwarded contract.
    let Some(d) = (unsafe { domain(dom) }) else {
        return -EINVAL;
    };
    match d.add_bdi() {
        Ok(BdiId(id)) => c_int::try_from(id).unwrap_or(-EINVAL),
        Err(e) => errno(e),
    }
}

/// Unregisters a connection. 0, or -ENOENT for an unknown id.
///
/// # Safety
/// See [`domain`].
#[no_mangle]
pub unsafe extern "C" fn dirtylimit_remove(dom: *mut dirtylimit_domain, id: u32) -> c_int {
    // SAFETY: forwarded contract.
    let Some(d) = (unsafe { domain(dom) }) else {
        return -EINVAL;
    };
    status(d.remove_bdi(BdiId(id)))
}

/// Sets a connection's floor in percent of the domain threshold. 0, -EINVAL (state unchanged),
/// or -ENOENT.
///
/// # Safety
/// See [`domain`].
#[no_mangle]
pub unsafe extern "C" fn dirtylimit_set_min_ratio(
    dom: *mut dirtylimit_domain,
    id: u32,
    percent: u32,
) -> c_int {
    // SAFETY: forwarded contract.
    let Some(d) = (unsafe { domain(dom) }) else {
        return -EINVAL;
    };
    status(d.set_min_ratio(BdiId(id), percent))
}

/// Sets a connection's cap in percent of the domain threshold. 0, -EINVAL (state unchanged),
/// or -ENOENT.
///
/// # Safety
/// See [`domain`].
#[no_mangle]
pub unsafe extern "C" fn dirtylimit_set_max_ratio(
    dom: *mut dirtylimit_domain,
    id: u32,
    percent: u32,
) -> c_int {
    // SAFETY: forwarded contract.
    let Some(d) = (unsafe { domain(dom) }) else {
        return -EINVAL;
    };
    status(d.set_max_ratio(BdiId(id), percent))
}

/// Sets a device's floor in parts per million of the domain threshold (`min_ratio_fine`). 0,
/// -EINVAL (state unchanged), or -ENOENT.
///
/// # Safety
/// See [`domain`].
#[no_mangle]
pub unsafe extern "C" fn dirtylimit_set_min_ratio_fine(
    dom: *mut dirtylimit_domain,
    id: u32,
    ppm: u32,
) -> c_int {
    // SAFETY: forwarded contract.
    let Some(d) = (unsafe { domain(dom) }) else {
        return -EINVAL;
    };
    status(d.set_min_ratio_fine(BdiId(id), ppm))
}

/// Sets a device's cap in parts per million of the domain threshold (`max_ratio_fine`). 0,
/// -EINVAL (state unchanged), or -ENOENT.
///
/// # Safety
/// See [`domain`].
#[no_mangle]
pub unsafe extern "C" fn dirtylimit_set_max_ratio_fine(
    dom: *mut dirtylimit_domain,
    id: u32,
    ppm: u32,
) -> c_int {
    // SAFETY: forwarded contract.
    let Some(d) = (unsafe { domain(dom) }) else {
        return -EINVAL;
    };
    status(d.set_max_ratio_fine(BdiId(id), ppm))
}

/// `bdi_set_strict_limit()`: the device's idle floor becomes `(thresh - dirty) / 100`. 0, or
/// -ENOENT.
///
/// # Safety
/// See [`domain`].
#[no_mangle]
pub unsafe extern "C" fn dirtylimit_set_strict_limit(
    dom: *mut dirtylimit_domain,
    id: u32,
    on: bool,
) -> c_int {
    // SAFETY: forwarded contract.
    let Some(d) = (unsafe { domain(dom) }) else {
        return -EINVAL;
    };
    status(d.set_strict_limit(BdiId(id), on))
}

/// A connection's floor in ppm (>= 0), or a negative errno.
///
/// # Safety
/// See [`domain_ref`].
#[no_mangle]
pub unsafe extern "C" fn dirtylimit_min_ratio_fine(dom: *const dirtylimit_domain, id: u32) -> i64 {
    // SAFETY: forwarded contract.
    let Some(d) = (unsafe { domain_ref(dom) }) else {
        return -i64::from(EINVAL);
    };
    match d.min_ratio_fine(BdiId(id)) {
        Ok(v) => i64::try_from(v).unwrap_or(i64::MAX),
        Err(e) => i64::from(errno(e)),
    }
}

/// A connection's cap in ppm (>= 0), or a negative errno.
///
/// # Safety
/// See [`domain_ref`].
#[no_mangle]
pub unsafe extern "C" fn dirtylimit_max_ratio_fine(dom: *const dirtylimit_domain, id: u32) -> i64 {
    // SAFETY: forwarded contract.
    let Some(d) = (unsafe { domain_ref(dom) }) else {
        return -i64::from(EINVAL);
    };
    match d.max_ratio_fine(BdiId(id)) {
        Ok(v) => i64::try_from(v).unwrap_or(i64::MAX),
        Err(e) => i64::from(errno(e)),
    }
}

/// `nr` pages of connection `id` completed writeback at `now`. O(1). Unknown ids are ignored.
///
/// # Safety
/// See [`domain`].
#[no_mangle]
pub unsafe extern "C" fn dirtylimit_writeout_inc(dom: *mut dirtylimit_domain, id: u32, nr: u64, now: u64) {
    // SAFETY: forwarded contract.
    if let Some(d) = unsafe { domain(dom) } {
        d.writeout_inc(BdiId(id), nr, now);
    }
}

/// Declares the aging periods that ended by `now`; returns how many.
///
/// # Safety
/// See [`domain`].
#[no_mangle]
pub unsafe extern "C" fn dirtylimit_tick(dom: *mut dirtylimit_domain, now: u64) -> u32 {
    // SAFETY: forwarded contract.
    match unsafe { domain(dom) } {
        Some(d) => d.tick(now),
        None => 0,
    }
}

/// Sets the domain threshold (the FUSE budget B, in pages) the water level is computed for.
///
/// # Safety
/// See [`domain`].
#[no_mangle]
pub unsafe extern "C" fn dirtylimit_update_dirty_limit(dom: *mut dirtylimit_domain, thresh: u64) {
    // SAFETY: forwarded contract.
    if let Some(d) = unsafe { domain(dom) } {
        d.update_dirty_limit(thresh);
    }
}

/// Connection `id`'s threshold in pages for a domain threshold `thresh` with `dirty` pages in
/// use across the domain. 0 for an unknown id.
///
/// # Safety
/// See [`domain_ref`].
#[no_mangle]
pub unsafe extern "C" fn dirtylimit_wb_thresh(
    dom: *const dirtylimit_domain,
    id: u32,
    thresh: u64,
    dirty: u64,
) -> u64 {
    // SAFETY: forwarded contract.
    match unsafe { domain_ref(dom) } {
        Some(d) => d.wb_thresh(BdiId(id), thresh, dirty),
        None => 0,
    }
}

/// The global dirty threshold in pages (`domain_dirty_limits()` on
/// `global_dirtyable_memory()`), from page counts and the vm.dirty_ratio / vm.dirty_bytes
/// settings. 0 if the settings are out of range.
#[no_mangle]
pub extern "C" fn dirtylimit_global_thresh(
    free: u64,
    totalreserve: u64,
    file_lru: u64,
    dirty_ratio: u32,
    dirty_bytes: u64,
) -> u64 {
    let mut cfg = VmDirtyConfig::default();
    let set = if dirty_bytes != 0 {
        cfg.set_dirty_bytes(dirty_bytes)
    } else {
        cfg.set_dirty_ratio(dirty_ratio)
    };
    if set.is_err() {
        return 0;
    }
    let avail = global_dirtyable_memory(&MemInfo {
        free,
        totalreserve,
        file_lru,
    });
    domain_dirty_limits(avail, &cfg, None).thresh
}

/// Runs the core's known-answer cases. Returns how many passed (> 0), or -1 after copying the
/// failing case's name (NUL-terminated, truncated to fit) into `buf[0..len]`.
///
/// # Safety
/// `buf` is null or points to `len` writable bytes.
#[no_mangle]
pub unsafe extern "C" fn dirtylimit_selftest(buf: *mut c_char, len: usize) -> c_int {
    match dirtylimit::selftest::run() {
        Ok(n) => c_int::try_from(n).unwrap_or(c_int::MAX),
        Err(f) => {
            if !buf.is_null() && len > 0 {
                let name = f.0.as_bytes();
                let n = name.len().min(len - 1);
                // SAFETY: `buf` has `len` writable bytes and we write `n + 1 <= len` of them;
                // `name` is a distinct Rust string, so the ranges do not overlap.
                unsafe {
                    core::ptr::copy_nonoverlapping(name.as_ptr(), buf.cast::<u8>(), n);
                    buf.add(n).write(0);
                }
            }
            -1
        }
    }
}
