#!/usr/bin/env bash
# Compiles the no_std core as a relocatable kernel object and fails unless it
# could be linked into a kernel module:
#   - undefined symbols: only memcpy/memset/memmove/memcmp (anything else, e.g.
#     a panic or formatting function, means a code path the kernel cannot link);
#   - no xmm/ymm/x87 instruction (the kernel does not save FPU state);
#   - relocations only R_X86_64_{64,32S,PC32,PLT32,PC64}.
# Uses x86_64-unknown-none when rustup can add it, else x86_64-unknown-linux-gnu
# with kernel code generation flags.
set -euo pipefail
cd "$(dirname "$0")/.."
out=${KOBJ_TARGET_DIR:-target/kobj}
mkdir -p "$out"

if [ -z "${KOBJ_FORCE_FALLBACK:-}" ] && rustup target add x86_64-unknown-none >/dev/null 2>&1 &&
   rustup target list --installed 2>/dev/null | grep -qx x86_64-unknown-none; then
  target=x86_64-unknown-none
  flags=(-C relocation-model=static -C code-model=kernel -C panic=abort -C debuginfo=0)
else
  echo "kernel-object-check: x86_64-unknown-none unavailable, falling back to x86_64-unknown-linux-gnu"
  target=x86_64-unknown-linux-gnu
  flags=(-C panic=abort -C debuginfo=0 -C code-model=kernel -C relocation-model=static -C no-redzone=yes
         -C target-feature=-sse,-sse2,-avx,-avx2,+soft-float)
fi

CARGO_TARGET_DIR="$out" cargo rustc -q --release --lib --no-default-features --target "$target" \
  --crate-type lib -- --emit=obj="$out/dirtylimit.o" "${flags[@]}" 2> >(grep -v 'soft-float' >&2 || true)
obj="$out/dirtylimit.o"
[ -s "$obj" ] || { echo "kernel-object-check: FAIL: no object produced"; exit 1; }

fail=0
undef=$(nm -u "$obj" | awk '{print $2}' | grep -Ev '^(memcpy|memset|memmove|memcmp)$' || true)
if [ -n "$undef" ]; then
  echo "kernel-object-check: FAIL: undefined symbols the kernel cannot provide:"; echo "$undef" | sed 's/^/  /'
  fail=1
fi
fpu=$(objdump -d --no-show-raw-insn "$obj" | grep -E '%[xy]mm[0-9]|%st(\(|$)|\bf(ld|st|add|mul|div|sub|ild|istp|xch|comi)[a-z]*\b' || true)
if [ -n "$fpu" ]; then
  echo "kernel-object-check: FAIL: FPU/SSE instructions:"; echo "$fpu" | head -20 | sed 's/^/  /'
  fail=1
fi
relocs=$(readelf -rW "$obj" | awk '/^[0-9a-f]+ +[0-9a-f]+ +R_X86_64/ {print $3}' | sort | uniq -c)
bad=$(echo "$relocs" | awk '{print $2}' | grep -Ev '^R_X86_64_(64|32S|PC32|PLT32|PC64)$' || true)
if [ -n "$bad" ]; then
  echo "kernel-object-check: FAIL: relocations a module cannot use:"; echo "$bad" | sed 's/^/  /'
  fail=1
fi
nsym=$(nm --defined-only "$obj" | grep -c ' T ' || true)
if [ "$fail" = 0 ]; then
  echo "kernel-object-check: PASS ($target, $(stat -c %s "$obj") bytes, $nsym functions, relocations:" $relocs ")"
fi
exit "$fail"
