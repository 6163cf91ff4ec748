/work/main/kernel-glue/ffi/target/release/deps/dirtylimit_ffi-d03118c300aec09b.d: src/lib.rs Cargo.toml

/work/main/kernel-glue/ffi/target/release/deps/libdirtylimit_ffi-d03118c300aec09b.rmeta: src/lib.rs Cargo.toml

src/lib.rs:
Cargo.toml:

# env-dep:CLIPPY_ARGS=-D__CLIPPY_HACKERY__warnings__CLIPPY_HACKERY__
# env-dep:CLIPPY_CONF_DIR
