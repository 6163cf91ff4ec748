#!/usr/bin/env bash
# Builds the ffi crate for the host as a static library, links hostcheck/main.c against it and
# runs it. $1 = output directory.
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
OUT=${1:?usage: run.sh OUTDIR}
mkdir -p "$OUT"
OUT=$(cd "$OUT" && pwd)
export CARGO_TARGET_DIR=$OUT/target
(cd "$HERE/../ffi" && cargo build -q --release --lib --target x86_64-unknown-linux-gnu)
LIB=$CARGO_TARGET_DIR/x86_64-unknown-linux-gnu/release/libdirtylimit_ffi.a
gcc -std=gnu11 -O2 -Wall -Wextra -Werror -I"$HERE/include" -I"$HERE/../include" -o "$OUT/hostcheck" "$HERE/main.c" "$LIB"
"$OUT/hostcheck"
