#!/usr/bin/env bash
# kernel-glue/run.sh: build fuse.ko (stock and with CONFIG_FUSE_DIRTY_LIMIT) for Debian's 6.1
# kernel, boot that kernel under QEMU (TCG) with a busybox initramfs, and fail unless every
# guest check prints PASS. Also runs the host-side C check of the same ABI.
# Idempotent; run as root; everything it builds goes under kernel-glue/build/.
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
B=$HERE/build
KVER=6.1.0-56-amd64
KDEB_VER=6.1.192-2
KHDR=/usr/src/linux-headers-$KVER
KSRC_TAR=/usr/src/linux-source-6.1.tar.xz
GUEST_TIMEOUT=${GUEST_TIMEOUT:-300}
FSX_OPS=${FSX_OPS:-10000}
NICE="nice -n 10"
T0=$(date +%s)
mkdir -p "$B"

step() { echo "== [$(($(date +%s) - T0))s] $*"; }
die() { echo "run.sh: FAIL: $*" >&2; exit 1; }

# ---------------------------------------------------------------- packages
step "packages"
PKGS=(linux-source-6.1 "linux-headers-$KVER" qemu-system-x86 busybox-static cpio xz-utils
      gcc make binutils patch kmod)
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
command -v cargo >/dev/null || die "cargo not found (needs a Rust toolchain with rustup)"
if command -v rustup >/dev/null && ! rustup target list --installed | grep -q x86_64-unknown-none; then
	rustup target add x86_64-unknown-none >/dev/null 2>&1 || echo "warning: cannot add x86_64-unknown-none"
fi

# ------------------------------------------------------- kernel image (not installed)
step "kernel image from the .deb"
VMLINUZ=$B/kimage/boot/vmlinuz-$KVER
if [ ! -f "$VMLINUZ" ]; then
	mkdir -p "$B/deb"
	(cd "$B/deb" && apt-get download "linux-image-$KVER=$KDEB_VER" >/dev/null 2>&1 ||
		apt-get download "linux-image-$KVER" >/dev/null)
	dpkg-deb -x "$B"/deb/linux-image-"$KVER"_*.deb "$B/kimage"
fi
[ -f "$VMLINUZ" ] || die "no $VMLINUZ"

# ---------------------------------------------------------------- fs/fuse sources
PRISTINE=$B/linux-6.1-fuse
extract_fuse() {
	if [ ! -f "$PRISTINE/.stamp" ]; then
		rm -rf "$PRISTINE" && mkdir -p "$PRISTINE"
		tar -xJf "$KSRC_TAR" -C "$PRISTINE" --strip-components=1 --wildcards 'linux-source-6.1/fs/fuse/*'
		echo "extracted from $KSRC_TAR" >"$PRISTINE/.stamp"
	fi
}

# A fresh copy of fs/fuse, optionally patched. $1 = dir, $2 = apply patches (0/1)
prepare_tree() {
	rm -rf "$1" && mkdir -p "$1/fs"
	cp -r "$PRISTINE/fs/fuse" "$1/fs/fuse"
	if [ "$2" = 1 ]; then
		for p in "$HERE"/patches/*.patch; do
			patch -s -p1 -d "$1" <"$p" || die "patch $p does not apply"
		done
	fi
}

# ------------------------------------- in parallel: sources, Rust object + gate, test binaries, host check
HAVE_DL=0
if [ -d "$HERE/ffi" ] && ls "$HERE"/patches/*.patch >/dev/null 2>&1; then HAVE_DL=1; fi
DLTEST=$B/testbin-target/x86_64-unknown-linux-gnu/release/dltest
build_testbin() {
	cd "$HERE/testbin" && CARGO_TARGET_DIR=$B/testbin-target RUSTFLAGS="-C target-feature=+crt-static" \
		$NICE cargo build -q --release --target x86_64-unknown-linux-gnu
}
step "in parallel: fs/fuse extraction, Rust object for the kernel + gate, test binaries, host-side C check"
declare -A JOBS=()
extract_fuse >"$B/extract.log" 2>&1 & JOBS[extract]=$!
if [ $HAVE_DL = 1 ]; then
	$NICE bash "$HERE/ffi/build-kobj.sh" "$B/ffi" >"$B/kobj.log" 2>&1 & JOBS[kobj]=$!
fi
build_testbin >"$B/testbin.log" 2>&1 & JOBS[testbin]=$!
if [ -d "$HERE/hostcheck" ]; then
	$NICE bash "$HERE/hostcheck/run.sh" "$B/hostcheck" >"$B/hostcheck.log" 2>&1 & JOBS[hostcheck]=$!
fi
failed=()
for j in extract kobj testbin hostcheck; do
	[ -n "${JOBS[$j]:-}" ] || continue
	wait "${JOBS[$j]}" || failed+=("$j")
	grep -hE '^(gate|DLTEST|build-kobj)' "$B/$j.log" || true
done
for j in "${failed[@]}"; do
	echo "---- $j failed:"; tail -30 "$B/$j.log"
done
((${#failed[@]} == 0)) || die "failed: ${failed[*]}"

# ---------------------------------------------------------------- modules
KMAKE=(make -s -C "$KHDR" CONFIG_CUSE= CONFIG_VIRTIO_FS= -j2)
# Build fuse.ko in $1 (patched if $2 = 1) unless a build from the same inputs is there already.
build_fuse() {
	local dir=$1 dl=$2 key
	key=$( (cat "$PRISTINE/.stamp" "$HERE/run.sh"
		if [ "$dl" = 1 ]; then cat "$HERE"/patches/*.patch "$HERE"/include/*.h "$B/ffi/dirtylimit_rust.o"; fi) |
		sha256sum | cut -c1-16)
	if [ -f "$dir/fs/fuse/fuse.ko" ] && [ "$(cat "$dir/.key" 2>/dev/null)" = "$key" ]; then
		echo "(up to date)"
		return 0
	fi
	prepare_tree "$dir" "$dl"
	local extra=()
	if [ "$dl" = 1 ]; then
		cp "$HERE/include/dirtylimit.h" "$HERE/include/dirtylimit_kat.h" "$dir/fs/fuse/"
		cp "$B/ffi/dirtylimit_rust.o" "$dir/fs/fuse/dirtylimit_rust.obj"
		extra=(CONFIG_FUSE_DIRTY_LIMIT=y)
	fi
	$NICE "${KMAKE[@]}" M="$dir/fs/fuse" "${extra[@]}" modules 2>&1 | grep -v 'Skipping BTF' | tee "$dir.buildlog" || true
	[ -f "$dir/fs/fuse/fuse.ko" ] || die "fuse.ko in $dir did not build"
	if grep -qiE 'warning|error' "$dir.buildlog"; then die "warnings/errors while building $dir (see above)"; fi
	echo "$key" >"$dir/.key"
}
step "fuse.ko, stock and (if the patch is there) with CONFIG_FUSE_DIRTY_LIMIT=y, in parallel"
build_fuse "$B/fuse-stock" 0 &
pids=($!)
if [ $HAVE_DL = 1 ]; then
	build_fuse "$B/fuse-dl" 1 &
	pids+=($!)
fi
for p in "${pids[@]}"; do wait "$p" || die "module build failed"; done

# ---------------------------------------------------------------- initramfs
step "initramfs"
R=$B/initramfs
rm -rf "$R" && mkdir -p "$R"/{bin,dev,proc,sys,tmp,mnt}
cp /bin/busybox "$R/bin/busybox"
cp "$HERE/guest/init" "$R/init"
cp "$DLTEST" "$R/dltest"
cp "$B/fuse-stock/fs/fuse/fuse.ko" "$R/fuse-stock.ko"
[ $HAVE_DL = 1 ] && cp "$B/fuse-dl/fs/fuse/fuse.ko" "$R/fuse-dl.ko"
(cd "$R" && find . | cpio -o -H newc --quiet | gzip -1) >"$B/initramfs.cpio.gz"

# ---------------------------------------------------------------- boot
step "boot $KVER under qemu (TCG)"
LOG=$B/guest.log
set +e
timeout "$GUEST_TIMEOUT" qemu-system-x86_64 -machine q35 -accel tcg -cpu max -smp 2 -m 768 \
	-kernel "$VMLINUZ" -initrd "$B/initramfs.cpio.gz" \
	-append "console=ttyS0 panic=-1 loglevel=${GUEST_LOGLEVEL:-4} quiet rdinit=/init dltest.fsx_ops=$FSX_OPS${GUEST_QUICK:+ dltest.quick=$GUEST_QUICK}" \
	-nographic -no-reboot -monitor none -serial stdio </dev/null >"$LOG" 2>&1
qrc=$?
set -e
tr -d '\r' <"$LOG" | grep -E '^(DLTEST|  |guest:|===|watchdog)|BUG|WARNING|Oops|fsx:' || true
step "done (qemu exit $qrc)"
[ $qrc = 124 ] && die "guest timed out after ${GUEST_TIMEOUT}s (log: $LOG)"
grep -q 'DLTEST DONE' "$LOG" || die "guest did not finish (log: $LOG)"
npass=$(grep -c 'DLTEST PASS' "$LOG" || true)
nfail=$(grep -c 'DLTEST FAIL' "$LOG" || true)
echo "kernel-glue: $npass passed, $nfail failed"
[ "$nfail" = 0 ] || die "$nfail guest check(s) failed"
[ "$npass" -gt 0 ] || die "no guest check ran"
echo "run.sh: all checks passed in $(($(date +%s) - T0))s"
