#!/usr/bin/env bash
# Builds the ffi crate and the core into ONE relocatable object for the kernel (lib/dirtylimit), then gates it.
#   $1 = output directory (dirtylimit_rust.o is written there)
# Codegen: x86_64-unknown-none (no SSE/x87, no red zone), code-model=kernel, static relocations,
# panic=abort, no unwind tables, and the mitigations of the guest kernel the way Rust for Linux
# builds them: returns through __x86_return_thunk (CONFIG_RETHUNK), indirect branches through
# __x86_indirect_thunk_* (CONFIG_RETPOLINE). Both are -Z flags, hence RUSTC_BOOTSTRAP=1.
# -Zcf-protection=branch: an ENDBR64 at every function entry (CONFIG_X86_KERNEL_IBT; objtool
# rejects exported functions without one).
# -Zplt=yes: without it rustc asks LLVM to call runtime functions (memcpy) through the GOT
# (R_X86_64_GOTPCREL), which insmod rejects.
# No LTO: each crate's objects are partially linked with `ld -r --gc-sections` from the
# exported symbols; precompiled core/compiler_builtins are NOT linked in, so any call into
# them stays undefined and fails the gate below. That is also why mixing the mitigation flags with
# the precompiled core (built without them) is allowed: none of its code ends up in the object.
# The gate fails the build on: an undefined symbol other than mem* and the kernel's thunks (so a
# panic path, which would call the glue's dirtylimit_panic_hook, fails it too); any xmm/ymm/x87
# instruction; a relocation other than R_X86_64_{64,32S,PC32,PLT32,PC64}; a missing export.
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
OUT=${1:?usage: build-kobj.sh OUTDIR}
mkdir -p "$OUT"
OUT=$(cd "$OUT" && pwd)
TARGET=x86_64-unknown-none
EXTRA=()
if [ -z "${KOBJ_FORCE_FALLBACK:-}" ] && ! rustup target list --installed 2>/dev/null | grep -qx "$TARGET"; then
	rustup target add "$TARGET" >/dev/null 2>&1 || true
fi
if [ -n "${KOBJ_FORCE_FALLBACK:-}" ] || ! rustup target list --installed 2>/dev/null | grep -qx "$TARGET"; then
	echo "build-kobj: x86_64-unknown-none unavailable, falling back to x86_64-unknown-linux-gnu"
	TARGET=x86_64-unknown-linux-gnu
	EXTRA=(-C no-redzone=yes -C target-feature=-sse,-sse2,-avx,-avx2,+soft-float)
fi
export CARGO_TARGET_DIR=$OUT/target
export RUSTC_BOOTSTRAP=1
export RUSTFLAGS="-C relocation-model=static -C code-model=kernel -C panic=abort -C debuginfo=0 \
 -C force-unwind-tables=no -C embed-bitcode=no -Zfunction-return=thunk-extern -Zcf-protection=branch \
 -Zretpoline-external-thunk -Zplt=yes -Cunsafe-allow-abi-mismatch=retpoline,retpoline-external-thunk \
 ${EXTRA[*]}"
(cd "$HERE" && cargo build -q --release --lib --target "$TARGET" --message-format=json \
	>"$OUT/cargo.json" 2> >(grep -v 'soft-float\|unstable feature specified' >&2))

EXPORTS=$(cat "$HERE"/src/*.rs | sed -n 's/^pub \(unsafe \)\?extern "C" fn \([a-z0-9_]*\).*/\2/p')
# The rlibs of this build (the deps directory may hold stale ones from other flag sets).
RLIBS=$(grep -o '"filenames":\[[^]]*\]' "$OUT/cargo.json" | grep -o '[^"]*\.rlib' | sort -u)
OBJ=$OUT/dirtylimit_rust.o
# Only the C interface stays global (the kernel exports every global function of the object).
printf '%s\n' $EXPORTS >"$OUT/exports.txt"
ld -r --gc-sections $(printf -- '-u %s ' $EXPORTS) -o "$OBJ.tmp" --start-group $RLIBS --end-group
# One object for objtool: drop the per-crate STT_FILE symbols (objtool would take several of
# them for a linked object and force --link), the unwind tables and the notes.
FILESYMS=$(readelf -sW "$OBJ.tmp" | awk '$4 == "FILE" && $8 != "" {print "--strip-symbol=" $8}' | sort -u)
# The panic handler is garbage-collected when no code can panic, but ld -r leaves the hook it
# would call in the symbol table: drop that entry (objcopy keeps it, and the gate below fails,
# if a relocation still names it).
objcopy --remove-section=.eh_frame --remove-section=.rela.eh_frame --remove-section=.comment \
	--remove-section=.note.GNU-stack --strip-symbol=dirtylimit_panic_hook \
	--keep-global-symbols="$OUT/exports.txt" $FILESYMS "$OBJ.tmp" "$OBJ"
rm -f "$OBJ.tmp"

fail=0
undef=$(nm -u "$OBJ" | awk '{print $2}' |
	grep -Ev '^(memcpy|memset|memmove|memcmp|__x86_return_thunk|__x86_indirect_thunk_r[a-z0-9]+)$' || true)
[ -z "$undef" ] || { echo "gate: FAIL: undefined symbols:"; echo "$undef" | sed 's/^/  /'; fail=1; }
fpu=$(objdump -d --no-show-raw-insn "$OBJ" |
	grep -E '%[xyz]mm[0-9]|%st(\(|\b)|\bf(ld|st|add|mul|div|sub|ild|istp|xch|comi|nstcw|ldcw|xsave|xrstor)[a-z]*\b|\b(movs[sd]|cvt[a-z0-9]+|emms)\b' || true)
[ -z "$fpu" ] || { echo "gate: FAIL: FPU/SSE instructions:"; echo "$fpu" | head -20 | sed 's/^/  /'; fail=1; }
relocs=$(readelf -rW "$OBJ" | awk '/^[0-9a-f]+ +[0-9a-f]+ +R_X86_64/ {print $3}' | sort | uniq -c)
bad=$(echo "$relocs" | awk '{print $2}' | grep -Ev '^R_X86_64_(64|32S|PC32|PLT32|PC64)$' || true)
[ -z "$bad" ] || { echo "gate: FAIL: relocations:"; echo "$bad" | sed 's/^/  /'; fail=1; }
for s in $EXPORTS; do
	nm --defined-only "$OBJ" | grep -q " T $s\$" || { echo "gate: FAIL: $s not exported"; fail=1; }
done
if readelf -SW "$OBJ" | grep -q '\.eh_frame'; then echo "gate: FAIL: .eh_frame left"; fail=1; fi
rets=$(objdump -d --no-show-raw-insn "$OBJ" | grep -cE '\sret[ql]?\b' || true)
[ "$rets" = 0 ] || { echo "gate: FAIL: $rets bare ret instructions (want jmp __x86_return_thunk)"; fail=1; }
icalls=$(objdump -d --no-show-raw-insn "$OBJ" | grep -cE '\s(call|jmp)q?\s+\*' || true)
[ "$icalls" = 0 ] || { echo "gate: FAIL: $icalls indirect call/jmp (want retpoline thunks)"; fail=1; }
# objtool (OBJTOOL=path) with the arguments Kbuild gives module objects, on a copy: no output.
OBJTOOL=${OBJTOOL:-}
if [ -n "$OBJTOOL" ] && [ -x "$OBJTOOL" ]; then
	cp "$OBJ" "$OUT/objtool-check.o"
	otout=$("$OBJTOOL" --hacks=jump_label --hacks=noinstr --orc --retpoline --rethunk --sls \
		--static-call --uaccess --module "$OUT/objtool-check.o" 2>&1) || { echo "gate: FAIL: objtool exit $?"; fail=1; }
	[ -z "$otout" ] || { echo "gate: FAIL: objtool:"; echo "$otout" | head -20 | sed 's/^/  /'; fail=1; }
else
	echo "gate: no OBJTOOL given (skipped here; the kernel build runs objtool on vmlinux.o)"
fi
if [ $fail = 0 ]; then
	echo "gate: PASS ($TARGET, $(stat -c %s "$OBJ") bytes, $(nm --defined-only "$OBJ" | grep -c ' [Tt] ') functions," \
		"undefined: $(nm -u "$OBJ" | awk '{print $2}' | tr '\n' ' ')relocations:" $relocs ")"
fi
exit $fail
