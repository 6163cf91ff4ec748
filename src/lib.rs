//! # dirtylimit: per-bdi dirty limits with exact redistribution
//!
//! Linux lets at most `T` pages be dirty (`vm.dirty_ratio` of dirtyable
//! memory, see [`global_limits`]) and divides `T` among backing devices
//! (bdis) by their share of recent writeback completions. This crate
//! reproduces that computation to the page, and adds a policy that gives
//! what a capped bdi cannot use to the others, at once and exactly.
//!
//! ## Floating proportions ([`flex_proportions`])
//!
//! As lib/flex_proportions.c states it: we want the fraction of events of
//! type `j` in the recent past, where the past is weighted so that an event
//! `i` periods old counts `2^-i`. With periods of fixed length and `x_j(i)`
//! the events of type `j` in period `i` (now is period 0),
//!
//! ```text
//!          x_j(0) + x_j(1)/2 + x_j(2)/4 + ...
//!   p_j = ------------------------------------
//!           e(0)  +  e(1)/2  +  e(2)/4  + ...
//! ```
//!
//! where `e(i) = Σ_j x_j(i)`. Both sums obey `S(now) = S(last period)/2 + new
//! events`, so we keep one running count per type and one global count and
//! halve them at each period boundary. Halving `n` local counts eagerly would
//! cost O(n) per period; instead each local count remembers the period it was
//! last updated in and is halved `k` times when next touched `k` periods
//! later ([`flex_proportions::FpropLocal::reflect_period`]). Halving `k` times
//! equals shifting right by `k`, so lazy aging is exact (integer halving
//! rounds down each time, as the kernel's does). The global count starts at 1
//! so the denominator is never 0, and when it has aged to 1 or less there is
//! nothing left to age and the [`period`] clock stops.
//!
//! ## The threshold of one bdi ([`wb_thresh`])
//!
//! With bdi `i`'s fraction `f_i`, floor `min_i` and cap `max_i` (ratios of
//! `T`, `Σ min < 1`), the kernel's `__wb_calc_thresh()` is
//!
//! ```text
//!   wb_thresh_i = min( T·(1 − Σmin)·f_i + T·min_i ,  T·max_i )
//! ```
//!
//! (6.13+ first raises it to `(T − dirty)/8`, or `/100` with `strict_limit`,
//! so an idle bdi is never stuck at 0). Since `Σ f_i ≤ 1`, the bdis share
//! `P = T·(1 − Σmin)` and their floors: `Σ wb_thresh ≤ T`. But the clip to
//! `T·max_i` throws away `T·(1−Σmin)·f_i + T·min_i − T·max_i` pages, which
//! nobody gets: a 1%-capped FUSE bdi that completes 90% of the writes leaves
//! 89% of `T` unallocated. Today's kernel stops counting a capped bdi's
//! completions past `max_ratio` (`__fprop_add_percpu_max`, in 1/1024 steps),
//! so the others' fractions grow back over several 3 s periods
//! ([`policy::Policy::Linux`]).
//!
//! ## Water-filling ([`water_level`])
//!
//! We want to give the pool away so that nobody exceeds its cap, nobody
//! gets less than its floor, and bdis that are not capped keep the ratio of
//! their fractions. Scale every fraction by a common level `λ ≥ 1`:
//!
//! ```text
//!   wb_thresh_i = T·min_i + min( T·(max_i − min_i),  λ·f_i·P )
//! ```
//!
//! and raise `λ` until the pool is spent or every bdi with `f_i > 0` sits at
//! its cap. `Σ_i min(c_i, λ·f_i·P)` is continuous and non-decreasing in `λ`,
//! so that level exists and is unique where it matters. This is the weighted
//! max-min fair allocation: to give any uncapped bdi more we would have to
//! take from a bdi whose allocation relative to its weight is no larger. At
//! `λ = 1` with no bdi capped it is exactly the kernel's formula; a capped
//! bdi's excess goes to the others in proportion to their fractions, at
//! once, not periods later.
//!
//! ## Lending ([`lending`])
//!
//! [`policy::Policy::Lend`] water-fills only among the bdis the caller
//! reports active, the set `A`; an idle bdi (a lender) commits no floor
//! `m_i = T·min_i` and takes no share: it keeps the `h_i` pages it holds
//! (dirty and under writeback, which the caller reports) and lends the rest:
//!
//! ```text
//!   wb_thresh_i = m_i + min( T·max_i − m_i ,  λ·f_i·P_A )    for i ∈ A
//!   wb_thresh_i = min( h_i , T·max_i )                      for i ∉ A
//!   P_A = T − Σ_{j∈A} m_j − Σ_{j∉A} h_j
//! ```
//!
//! (should the lenders hold more than the active bdis' floors and caps
//! leave, `R`, they share `R` in proportion to `h_i` and `P_A` is 0).
//! `Σ_{i∈A} f_i ≤ 1` and the level spends at most `P_A`, so still
//! `Σ wb_thresh ≤ T`; the lenders' floors and stale shares are in `P_A`
//! and go to the active bdis by their fractions, and as a lender's pages
//! are written back they go there too, at once. When an owner `o` is
//! reported, the next tick recomputes with `o ∈ A`, so from then on
//! `wb_thresh_o ≥ min(m_o, T·max_o)`.
//!
//! The price: a threshold limits future dirtying, it reserves no pages.
//! What the borrowers dirtied with the lent share is dirty or under
//! writeback and cannot be taken back; only writeback frees it. With `D_B`
//! the pages the borrowers hold when `o` wakes, `o` has room for its floor
//! once `D_B + m_o ≤ T`. `balance_dirty_pages()` keeps the global count at
//! or below the hard limit `H` (`hard_dirty_limit()`, near `T`), so
//! `D_B ≤ H` (no page is lent while its lender holds it, so the borrowers
//! cannot dirty on top of a lender's pages), and the borrowers must flush
//!
//! ```text
//!   E = D_B − (T − m_o)  ≤  m_o + (H − T)
//! ```
//!
//! pages. At the tick their thresholds drop by what they borrowed, so they
//! are above them and throttled; if they dirty nothing more while above
//! (`strict_limit` bdis, or a domain at `H`), `D_B` falls at their
//! writeback bandwidth `B = Σ_b bw_b`, and the owner's wait is
//!
//! ```text
//!   wait ≤ one tick + E / B  ≤  one tick + (m_o + H − T) / B
//! ```
//!
//! (a borrower still dirtying at `r_b` while above its threshold slows the
//! drain to `B − Σ r_b`). Without lending the floor is never lent: the
//! owner has it at once, and a writer beside an idle owner is held at
//! `T − m_o`. [`lending`] and docs/lending.md give the rest (newcomers, the
//! cap on counted completions) and the simulator's measurements.
//!
//! ## Example
//!
//! ```
//! use dirtylimit::{bdi::Bdi, domain::{Domain, DomainConfig}, policy::Policy};
//!
//! let mut slots = [Bdi::EMPTY; 4];
//! let mut dom = Domain::new(&mut slots, DomainConfig::new(Policy::Redistribute));
//! let (fuse, ssd) = (dom.add_bdi().unwrap(), dom.add_bdi().unwrap());
//! dom.set_max_ratio(fuse, 1).unwrap(); // FUSE: max_ratio = 1%
//! dom.update_dirty_limit(100_000);      // T = 100,000 pages
//! dom.writeout_inc(fuse, 9_000, 0);     // FUSE completes 90% of the writes
//! dom.writeout_inc(ssd, 1_000, 0);
//! dom.tick(1);                          // the next tick moves the water level
//! let (t, dirty) = (100_000, 100_000);  // at the limit: no idle floor
//! assert_eq!(dom.wb_thresh(fuse, t, dirty), 1_000);   // its 1% cap
//! assert_eq!(dom.wb_thresh(ssd, t, dirty), 99_000);   // everything else
//! ```
//!
//! ## Constraints
//!
//! `no_std`, no allocation (a [`domain::Domain`] borrows caller-provided
//! [`bdi::Bdi`] slots), no floating point, no `u128` division
//! ([`mul_div`]), no panics on any input, no `unsafe`: the same code is
//! linked into the Linux FUSE module.

#![no_std]
#![forbid(unsafe_code)]
#![deny(missing_docs)]

#[cfg(feature = "std")]
extern crate std;

pub mod bdi;
pub mod consts;
pub mod domain;
pub mod error;
pub mod flex_proportions;
pub mod global_limits;
pub mod lending;
pub mod mul_div;
pub mod period;
pub mod policy;
pub mod selftest;
pub mod water_level;
pub mod wb_thresh;

// userspace parts (std only)
#[cfg(feature = "std")]
pub mod observe;
#[cfg(feature = "std")]
pub mod sim;

pub use bdi::{Bdi, BdiId, Limit, LimitSum};
pub use consts::{BDI_RATIO_SCALE, PAGE_SHIFT, PAGE_SIZE, RATIO_FINE_MAX};
pub use domain::{Domain, DomainConfig};
pub use error::Error;
pub use global_limits::{DirtyLimits, VmDirtyConfig};
pub use policy::{BytesMode, Policy};
