//! Kernel constants shared by the whole crate: the page size and the unit of
//! the fine ratios. A leaf: it imports nothing, every module may import it.

/// `PAGE_SHIFT` on x86-64.
pub const PAGE_SHIFT: u32 = 12;
/// `PAGE_SIZE` on x86-64.
pub const PAGE_SIZE: u64 = 1 << PAGE_SHIFT;
/// `BDI_RATIO_SCALE`: fine-ratio units per percent.
pub const BDI_RATIO_SCALE: u32 = 10_000;
/// 100% in fine-ratio units (ppm): `100 * BDI_RATIO_SCALE`.
pub const RATIO_FINE_MAX: u32 = 100 * BDI_RATIO_SCALE;
/// Pages per MiB.
pub const PAGES_PER_MIB: u64 = (1 << 20) / PAGE_SIZE;
