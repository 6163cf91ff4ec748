/work/main/kernel-glue/ffi/target/release/deps/dirtylimit-93e068827f6e9806.d: /work/main/src/lib.rs /work/main/src/bdi.rs /work/main/src/consts.rs /work/main/src/domain.rs /work/main/src/error.rs /work/main/src/flex_proportions.rs /work/main/src/global_limits.rs /work/main/src/lending.rs /work/main/src/mul_div.rs /work/main/src/period.rs /work/main/src/policy.rs /work/main/src/selftest.rs /work/main/src/water_level.rs /work/main/src/wb_thresh.rs

/work/main/kernel-glue/ffi/target/release/deps/libdirtylimit-93e068827f6e9806.rmeta: /work/main/src/lib.rs /work/main/src/bdi.rs /work/main/src/consts.rs /work/main/src/domain.rs /work/main/src/error.rs /work/main/src/flex_proportions.rs /work/main/src/global_limits.rs /work/main/src/lending.rs /work/main/src/mul_div.rs /work/main/src/period.rs /work/main/src/policy.rs /work/main/src/selftest.rs /work/main/src/water_level.rs /work/main/src/wb_thresh.rs

/work/main/src/lib.rs:
/work/main/src/bdi.rs:
/work/main/src/consts.rs:
/work/main/src/domain.rs:
/work/main/src/error.rs:
/work/main/src/flex_proportions.rs:
/work/main/src/global_limits.rs:
/work/main/src/lending.rs:
/work/main/src/mul_div.rs:
/work/main/src/period.rs:
/work/main/src/policy.rs:
/work/main/src/selftest.rs:
/work/main/src/water_level.rs:
/work/main/src/wb_thresh.rs:
