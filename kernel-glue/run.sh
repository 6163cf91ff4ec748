#!/usr/bin/env bash
# kernel-glue/run.sh: boot Linux 7.3 with CONFIG_FUSE_DIRTY_LIMIT (plain and debug builds from
# kernel-glue/kernel/build.sh) under QEMU (TCG) and fail unless every guest check passes.
# The plain kernel boots twice: with fuse.dirty_limit=0 (FUSE exactly stock: the reference
# measurements of the attacks) and with the option on (the checks; the healthy-throughput check
# switches fuse.dirty_limit between mounts to compare ours, stock and unrestricted in one boot);
# the debug kernel (lockdep + KASAN) runs the checks once more. Also runs the host-side C check
# of the ABI.
# Idempotent; run as root; what it builds goes under kernel-glue/build/, kernels are cached by
# build.sh under /var/cache/dirtylimit/kernel/.
# Knobs: KERNEL_PLAIN / KERNEL_DEBUG (a bzImage to use instead of build.sh's), DEBUG_KERNEL=0 /
# PLAIN_KERNEL=0 (skip that kernel: neither built nor booted), FSX_OPS (default 20000; FSX_OPS_DEBUG for the debug kernel, default
# 8000: lockdep + KASAN make each operation about 5x slower), GUEST_TIMEOUT (s per boot,
# default 900), CHECKS (the checks of the "ours" boots, comma-separated; default all of them:
# earn,many,unpriv,lifetime,healthy,kupdate,fsx:OPS).
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
B=$HERE/build
FSX_OPS=${FSX_OPS:-20000}
FSX_OPS_DEBUG=${FSX_OPS_DEBUG:-8000}
GUEST_TIMEOUT=${GUEST_TIMEOUT:-900}
NICE="nice -n 10"
T0=$(date +%s)
mkdir -p "$B"

step() { echo "== [$(($(date +%s) - T0))s] $*"; }
die() { echo "run.sh: FAIL: $*" >&2; exit 1; }

# ---------------------------------------------------------------- packages
step "packages"
PKGS=(qemu-system-x86 busybox-static cpio gzip gcc make)
missing=()
for p in "${PKGS[@]}"; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
if ((${#missing[@]})); then
	echo "installing: ${missing[*]}"
	export DEBIAN_FRONTEND=noninteractive
	apt-get update -q >/dev/null
	apt-get install -y -q "${missing[@]}" >/dev/null
fi
command -v cargo >/dev/null || die "cargo not found"

# ------------------------------------- in parallel: kernels, test binaries, host check
DLTEST=$B/testbin-target/x86_64-unknown-linux-gnu/release/dltest
build_testbin() {
	cd "$HERE/testbin" && CARGO_TARGET_DIR=$B/testbin-target RUSTFLAGS="-C target-feature=+crt-static" \
		$NICE cargo build -q --release --target x86_64-unknown-linux-gnu
}
# $1 = variant; prints the bzImage path as the last line of $B/kernel-$1.log
build_kernel() {
	local v=$1 var="KERNEL_${1^^}"
	if [ -n "${!var:-}" ]; then
		echo "${!var}"
	else
		bash "$HERE/kernel/build.sh" "$v"
	fi
}
step "in parallel: kernels (build.sh, cached), test binaries, host-side C check"
declare -A JOBS=()
if [ "${PLAIN_KERNEL:-1}" = 1 ]; then
	build_kernel plain >"$B/kernel-plain.log" 2>&1 & JOBS[kernel-plain]=$!
fi
if [ "${DEBUG_KERNEL:-1}" = 1 ]; then
	build_kernel debug >"$B/kernel-debug.log" 2>&1 & JOBS[kernel-debug]=$!
fi
build_testbin >"$B/testbin.log" 2>&1 & JOBS[testbin]=$!
bash "$HERE/hostcheck/run.sh" "$B/hostcheck" >"$B/hostcheck.log" 2>&1 & JOBS[hostcheck]=$!
failed=()
for j in kernel-plain kernel-debug testbin hostcheck; do
	[ -n "${JOBS[$j]:-}" ] || continue
	wait "${JOBS[$j]}" || failed+=("$j")
done
for j in "${failed[@]}"; do
	echo "---- $j failed:"; tail -30 "$B/$j.log"
done
((${#failed[@]} == 0)) || die "failed: ${failed[*]}"
grep -h '^DLTEST' "$B/hostcheck.log" >"$B/results-host.txt" || true
cat "$B/results-host.txt"
KPLAIN=
if [ "${PLAIN_KERNEL:-1}" = 1 ]; then
	KPLAIN=$(tail -1 "$B/kernel-plain.log")
	[ -f "$KPLAIN" ] || die "no plain bzImage ($KPLAIN)"
fi
KDEBUG=
if [ "${DEBUG_KERNEL:-1}" = 1 ]; then
	KDEBUG=$(tail -1 "$B/kernel-debug.log")
	[ -f "$KDEBUG" ] || die "no debug bzImage ($KDEBUG)"
fi

# ---------------------------------------------------------------- initramfs
step "initramfs"
R=$B/initramfs-fuse
rm -rf "$R" && mkdir -p "$R"/{bin,dev,proc,sys,tmp,mnt}
cp /bin/busybox "$R/bin/busybox"
cp "$HERE/guest/init" "$R/init"
cp "$DLTEST" "$R/dltest"
(cd "$R" && find . | cpio -o -H newc --quiet | gzip -1) >"$B/initramfs-fuse.cpio.gz"

# ---------------------------------------------------------------- boots
# The disk writer's virtio disk: an image in memory, its writes throttled by QEMU, so that the
# disk, not the host's own disk and page cache, is what bounds the writer (as on a real machine),
# and its rate holds still from one run to the next. 10 MiB/s is below what the emulated guest
# writes when the shared host runs slow (14-25 MiB/s seen through a 48 MiB/s throttle, moving
# by up to 1.5x within one boot), so that the host's speed of the moment does not set the rate.
DISK=$(mktemp /dev/shm/dirtylimit-disk.XXXXXX)
DISK_BPS=$((10 << 20))
trap 'rm -f "$DISK"' EXIT
# $1 = name, $2 = bzImage, $3 = mode (stock|ours), $4 = tests, $5 = more kernel arguments
boot() {
	local name=$1 kernel=$2 mode=$3 tests=$4 extra=${5:-} log=$B/guest-$1.log dl=1 qrc
	[ "$mode" = stock ] && dl=0
	step "boot $name: $(basename "$(dirname "$kernel")") mode $mode: $tests"
	rm -f "$DISK" && truncate -s 512M "$DISK"
	set +e
	# no5lvl: four-level paging (see wb-experiment.sh: KASAN's check during identify_cpu()).
	timeout "$GUEST_TIMEOUT" qemu-system-x86_64 -accel tcg -cpu max -smp 2 -m 1024 \
		-kernel "$kernel" -initrd "$B/initramfs-fuse.cpio.gz" \
		-drive "file=$DISK,format=raw,if=virtio,throttling.bps-write=$DISK_BPS" \
		-append "console=ttyS0 panic=-1 loglevel=4 no5lvl rdinit=/init fuse.dirty_limit=$dl dltest.mode=$mode dltest.tests=$tests $extra" \
		-nographic -no-reboot -monitor none -serial stdio </dev/null >"$log" 2>&1
	qrc=$?
	set -e
	tr -d '\r' <"$log" | grep -E '^(DLTEST|  |guest:)|fsx:|Kernel panic|BUG:|WARNING:' || true
	tr -d '\r' <"$log" | grep -E '^DLTEST (PASS|FAIL|NUM)' | sed "s/^DLTEST \([A-Z]*\) /DLTEST \1 [$name] /" >"$B/results-$name.txt" || true
	if [ $qrc = 124 ]; then
		echo "DLTEST FAIL [$name] guest-finished: timed out after ${GUEST_TIMEOUT}s" >>"$B/results-$name.txt"
	elif ! grep -q 'DLTEST DONE' "$log"; then
		echo "DLTEST FAIL [$name] guest-finished: no DLTEST DONE (qemu exit $qrc)" >>"$B/results-$name.txt"
	fi
}
rm -f "$B"/results-plain-*.txt "$B"/results-debug-*.txt
CHECKS=${CHECKS:-earn,many,unpriv,lifetime,healthy,kupdate,fsx:$FSX_OPS}
if [ -n "$KPLAIN" ]; then
	boot plain-stock "$KPLAIN" stock earn,many
	boot plain-ours "$KPLAIN" ours "$CHECKS"
fi
# lockdep + KASAN under TCG: about 10x slower, time limits 10x, throughput ratios reported only
[ -n "$KDEBUG" ] && boot debug-ours "$KDEBUG" ours "$(sed -E "s/fsx:[0-9]+/fsx:$FSX_OPS_DEBUG/" <<<"$CHECKS")" dltest.slow=10

ALL=$(cat "$B"/results-host.txt "$B"/results-plain-*.txt "$B"/results-debug-*.txt 2>/dev/null || true)
npass=$(grep -c '^DLTEST PASS' <<<"$ALL" || true)
nfail=$(grep -c '^DLTEST FAIL' <<<"$ALL" || true)
step "done"
grep '^DLTEST FAIL' <<<"$ALL" || true
echo "kernel-glue: $npass passed, $nfail failed"
[ "$nfail" = 0 ] || exit 1
[ "$npass" -gt 0 ] || exit 1
