//! Errors for rejected settings, each mapping to the errno the kernel returns.
//!
//! A call that returns an error has changed nothing.

#[cfg(feature = "fmt")]
use core::fmt;

/// Why a call was rejected.
#[derive(Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "fmt", derive(Debug))]
pub enum Error {
    /// A ratio above 100% (percent > 100 or ppm > 1,000,000), or a vm
    /// setting outside the kernel's sysctl bounds. `-EINVAL`.
    RatioOutOfRange,
    /// `min_ratio` would exceed `max_ratio` (or the reverse). `-EINVAL`.
    MinAboveMax,
    /// The sum of all bdis' `min_ratio` would reach 100%. `-EINVAL`.
    MinSumTooLarge,
    /// A `*_bytes` limit larger than dirtyable memory. `-EINVAL`.
    BytesAboveDirtyable,
    /// A `*_bytes` limit cannot be converted while the dirty threshold is 0. `-EINVAL`.
    NoDirtyThresh,
    /// No live bdi with that id. `-ENOENT`.
    UnknownBdi,
    /// Every slot of the domain is in use. `-ENOSPC`.
    DomainFull,
}

/// `EINVAL` from `<errno.h>`.
pub const EINVAL: i32 = 22;
/// `ENOENT` from `<errno.h>`.
pub const ENOENT: i32 = 2;
/// `ENOSPC` from `<errno.h>`.
pub const ENOSPC: i32 = 28;

impl Error {
    /// The negative errno a kernel interface returns for this error.
    pub fn errno(self) -> i32 {
        match self {
            Error::UnknownBdi => -ENOENT,
            Error::DomainFull => -ENOSPC,
            _ => -EINVAL,
        }
    }
}

#[cfg(feature = "fmt")]
impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Error::RatioOutOfRange => "ratio out of range (0..=100%, 0..=1000000 ppm)",
            Error::MinAboveMax => "min_ratio would exceed max_ratio",
            Error::MinSumTooLarge => "sum of all min_ratio would reach 100%",
            Error::BytesAboveDirtyable => "bytes limit exceeds dirtyable memory",
            Error::NoDirtyThresh => "dirty threshold is 0: cannot convert bytes to a ratio",
            Error::UnknownBdi => "no such bdi",
            Error::DomainFull => "no free bdi slot in the domain",
        })
    }
}
