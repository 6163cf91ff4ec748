//! Known-answer cases of the core, runnable anywhere (no_std, no allocation,
//! a few hundred bytes of stack): the unit tests, the host-side C check and
//! the kernel at boot (`lib/dirtylimit`) all run [`run`].
//!
//! Every expected value below was worked out by hand from the kernel's
//! integer arithmetic; the comment on each case shows the working.

use crate::bdi::Bdi;
use crate::domain::{Domain, DomainConfig};
use crate::error::Error;
use crate::flex_proportions::{FpropGlobal, FpropLocal};
use crate::global_limits::{domain_dirty_limits, VmDirtyConfig};
use crate::mul_div::mul_div;
use crate::policy::Policy;

/// The first case that failed.
#[derive(Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "fmt", derive(Debug))]
pub struct Failure(pub &'static str);

fn check(ok: bool, name: &'static str) -> Result<(), Failure> {
    if ok {
        Ok(())
    } else {
        Err(Failure(name))
    }
}

/// Runs every case; returns how many passed, or the first failure.
pub fn run() -> Result<u32, Failure> {
    let mut n = 0;
    let cases: [fn() -> Result<(), Failure>; 6] = [
        mul_div_cases,
        fprop_cases,
        global_limit_cases,
        linux_cases,
        redistribute_cases,
        validation_cases,
    ];
    for case in cases {
        case()?;
        n += 1;
    }
    Ok(n)
}

fn mul_div_cases() -> Result<(), Failure> {
    check(
        mul_div(u64::MAX, u64::MAX, u64::MAX) == u64::MAX,
        "mul_div max",
    )?;
    // (2^63 * 6) / 4 = 3 * 2^62
    check(mul_div(1 << 63, 6, 4) == 3 << 62, "mul_div 128-bit")?;
    check(
        mul_div(1 << 40, 1 << 40, 1 << 20) == 1 << 60,
        "mul_div shift",
    )?;
    check(mul_div(5, 7, 0) == u64::MAX, "mul_div by zero saturates")
}

fn fprop_cases() -> Result<(), Failure> {
    let mut g = FpropGlobal::new();
    let mut a = FpropLocal::new(&g);
    a.add(&mut g, 9); // e = 1 + 9
    check(g.events() == 10, "fprop add")?;
    check(g.new_period(1) && g.events() == 5, "fprop halve")?;
    check(a.events(&g) == 4, "fprop lazy aging")?;
    // __fprop_add_percpu_max, max_frac 256: e = 5 + 295 = 300 from another
    // type; tmp = 300*256 - 4*1024 = 72704, room 768 → ceil(72704/768) = 95.
    let mut b = FpropLocal::new(&g);
    b.add(&mut g, 295);
    check(a.add_max(&mut g, 256, 1000) == 95, "fprop add_max")
}

fn global_limit_cases() -> Result<(), Failure> {
    // ratio 20% → 819/4096; 819 * 1,000,000 / 4096 = 199,951.
    // bg 10% → 409/4096; 409 * 1,000,000 / 4096 = 99,853.
    let l = domain_dirty_limits(1_000_000, &VmDirtyConfig::default(), None);
    check(
        l.thresh == 199_951 && l.bg_thresh == 99_853,
        "domain_dirty_limits ratio",
    )?;
    let cfg = VmDirtyConfig {
        dirty_bytes: 10 << 20,
        dirty_background_bytes: 20 << 20,
        ..VmDirtyConfig::default()
    };
    // bytes → 2560 pages; bg 5120 >= thresh → thresh / 2.
    let l = domain_dirty_limits(1_000_000, &cfg, None);
    check(
        l.thresh == 2560 && l.bg_thresh == 1280,
        "domain_dirty_limits bytes",
    )
}

/// T = 100,000; "fuse" max_ratio 1% completes 9,000 pages, "ssd" 1,000.
fn fuse_and_ssd(policy: Policy) -> Result<(u64, u64), Failure> {
    let mut slots = [Bdi::EMPTY; 2];
    let mut d = Domain::new(&mut slots, DomainConfig::new(policy));
    let (fuse, ssd) = match (d.add_bdi(), d.add_bdi()) {
        (Ok(f), Ok(s)) => (f, s),
        _ => return Err(Failure("add_bdi")),
    };
    check(d.set_max_ratio(fuse, 1).is_ok(), "set_max_ratio")?;
    d.update_dirty_limit(100_000);
    d.writeout_inc(fuse, 9_000, 0);
    d.writeout_inc(ssd, 1_000, 0);
    d.tick(0); // no period has passed; Redistribute recomputes its level
               // dirty == T: the idle floor is 0.
    Ok((
        d.wb_thresh(fuse, 100_000, 100_000),
        d.wb_thresh(ssd, 100_000, 100_000),
    ))
}

fn linux_cases() -> Result<(), Failure> {
    // max_prop_frac = 1024 * 10,000 / 10^6 = 10. First add: f = 0/1,
    // tmp = 1*10 = 10 < 9000*1014 → ceil(10/1014) = 1 event counted; e = 2,
    // then ssd's 1,000: e = 1,002. fuse: 100,000 * 1 / 1002 = 99;
    // ssd: 100,000 * 1000 / 1002 = 99,800.
    check(
        fuse_and_ssd(Policy::Linux)? == (99, 99_800),
        "linux __wb_calc_thresh",
    )?;
    // ClipOnly counts all: e = 10,001. fuse: 100,000*9000/10001 = 89,991,
    // clipped to 1,000; ssd: 100,000*1000/10001 = 9,999.
    check(
        fuse_and_ssd(Policy::ClipOnly)? == (1_000, 9_999),
        "clip-only",
    )?;

    // min_ratio and the idle floor: T = 100,000, A min 10% with 300
    // events, B with 100 (e = 401). P = 100,000 * 900,000 / 10^6 = 90,000.
    // A: 90,000*300/401 = 67,331 + 10,000 = 77,331; B: 90,000*100/401 = 22,443.
    // C (no events, strict): idle floor (100,000 - 20,000)/100 = 800.
    let mut slots = [Bdi::EMPTY; 3];
    let mut d = Domain::new(&mut slots, DomainConfig::new(Policy::Linux));
    let (a, b, c) = match (d.add_bdi(), d.add_bdi(), d.add_bdi()) {
        (Ok(a), Ok(b), Ok(c)) => (a, b, c),
        _ => return Err(Failure("add_bdi")),
    };
    check(
        d.set_min_ratio(a, 10).is_ok() && d.set_strict_limit(c, true).is_ok(),
        "setters",
    )?;
    d.writeout_inc(a, 300, 0);
    d.writeout_inc(b, 100, 0);
    check(
        d.wb_thresh(a, 100_000, 100_000) == 77_331,
        "linux min_ratio",
    )?;
    check(d.wb_thresh(b, 100_000, 100_000) == 22_443, "linux share")?;
    check(
        d.wb_thresh(c, 100_000, 20_000) == 800,
        "linux strict idle floor",
    )?;
    // B, not strict: max(22,443, 80,000/8 = 10,000) = 22,443; C not strict
    // would get 10,000.
    check(
        d.wb_thresh(b, 100_000, 20_000) == 22_443,
        "linux idle floor below share",
    )
}

fn redistribute_cases() -> Result<(), Failure> {
    // Water-filling: fuse's room/x = 1000/9000 < ssd's 100,000/1000, so fuse
    // is tested first: share 100,000 * 9000/10,000 = 90,000 >= 1,000 → capped.
    // Then ssd alone: rest 99,000 * 1000/1000 = 99,000 < its room → level found.
    check(
        fuse_and_ssd(Policy::Redistribute)? == (1_000, 99_000),
        "redistribute",
    )
}

fn validation_cases() -> Result<(), Failure> {
    let mut slots = [Bdi::EMPTY; 2];
    let mut d = Domain::new(&mut slots, DomainConfig::new(Policy::Redistribute));
    let (a, b) = match (d.add_bdi(), d.add_bdi()) {
        (Ok(a), Ok(b)) => (a, b),
        _ => return Err(Failure("add_bdi")),
    };
    check(d.add_bdi() == Err(Error::DomainFull), "domain full")?;
    check(
        d.set_max_ratio(a, 101) == Err(Error::RatioOutOfRange),
        "max > 100%",
    )?;
    check(d.set_min_ratio(a, 60).is_ok(), "min 60%")?;
    check(
        d.set_min_ratio(b, 40) == Err(Error::MinSumTooLarge),
        "sum of min reaches 100%",
    )?;
    check(
        d.set_max_ratio(a, 50) == Err(Error::MinAboveMax),
        "max below min",
    )?;
    check(
        d.set_max_ratio_fine(b, 1_000_001).map_err(Error::errno) == Err(-22),
        "-EINVAL",
    )?;
    check(d.min_ratio_fine(a) == Ok(600_000), "state unchanged")
}

#[cfg(test)]
mod tests {
    #[test]
    fn all_known_answers_pass() {
        assert_eq!(super::run(), Ok(6));
    }
}
