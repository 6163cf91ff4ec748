#![no_std]
#![forbid(unsafe_code)]

#[cfg(feature = "std")]
extern crate std;

// userspace parts (std only)
#[cfg(feature = "std")]
pub mod observe;
#[cfg(feature = "std")]
pub mod sim;
