/work/main/kernel-glue/ffi/target/release/deps/az-a2130004224e87f0.d: /root/.cargo/registry/src/index.crates.io-1949cf8c6b5b557f/az-1.3.0/src/lib.rs /root/.cargo/registry/src/index.crates.io-1949cf8c6b5b557f/az-1.3.0/src/float.rs /root/.cargo/registry/src/index.crates.io-1949cf8c6b5b557f/az-1.3.0/src/int.rs

/work/main/kernel-glue/ffi/target/release/deps/libaz-a2130004224e87f0.rmeta: /root/.cargo/registry/src/index.crates.io-1949cf8c6b5b557f/az-1.3.0/src/lib.rs /root/.cargo/registry/src/index.crates.io-1949cf8c6b5b557f/az-1.3.0/src/float.rs /root/.cargo/registry/src/index.crates.io-1949cf8c6b5b557f/az-1.3.0/src/int.rs

/root/.cargo/registry/src/index.crates.io-1949cf8c6b5b557f/az-1.3.0/src/lib.rs:
/root/.cargo/registry/src/index.crates.io-1949cf8c6b5b557f/az-1.3.0/src/float.rs:
/root/.cargo/registry/src/index.crates.io-1949cf8c6b5b557f/az-1.3.0/src/int.rs:
