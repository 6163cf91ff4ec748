#!/usr/bin/env bash
# Builds the QEMU guest kernel: Debian's Linux 7.3.4 source with every patch of
# kernel-glue/patches-7.3/ applied in order, configured as tinyconfig + base.config
# + patched.config (the options the patches add; not for stock) (+ debug.config for the debug
# variant), and prints the path of its bzImage.
#
#   kernel-glue/kernel/build.sh plain|debug|stock      (as root; stock: no patches)
#
# Cached outside the clone, under $DIRTYLIMIT_CACHE (default /var/cache/dirtylimit):
#   src-7.3.4/                  the pristine source (from the linux-source-7.3 .deb)
#   tree-patched/, tree-stock/  a git tree of it with the series applied (plain and debug
#                               share it) or without; sources only, nothing is built in it
#   build-VARIANT/              the variant's objects (make O=), rebuilt incrementally
#   kobj/                       the Rust object and its gate's files (plain and debug share it)
#   kernel/VARIANT-KEY/bzImage  the result, KEY = hash of the source version, the config
#                               fragments, the patches and the Rust object's sources
# A second run with the same inputs does not build anything. Compiler or objtool
# warnings fail the build. Progress goes to stderr, the bzImage path to stdout.
# Plain and debug may be built at the same time (one waits for the other only while the Rust
# object is built and the series is applied); a build of another series waits for them.
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
GLUE=$(cd "$HERE/.." && pwd)
VARIANT=${1:?usage: build.sh plain|debug|stock}
case $VARIANT in plain | debug | stock) ;; *) echo "build.sh: unknown variant $VARIANT" >&2; exit 2 ;; esac
CACHE=${DIRTYLIMIT_CACHE:-/var/cache/dirtylimit}
KVER=7.3.4
KDEB=linux-source-7.3
KDEB_VER=7.3.4-1~bpo13+1
SRC=$CACHE/src-$KVER
TREE=$CACHE/tree-patched
[ "$VARIANT" = stock ] && TREE=$CACHE/tree-stock
BUILD=$CACHE/build-$VARIANT
KOBJ=$CACHE/kobj
JOBS=${JOBS:-$(nproc)}
T0=$(date +%s)
say() { echo "kernel/build.sh [$VARIANT, $(($(date +%s) - T0))s]: $*" >&2; }
die() { echo "kernel/build.sh: FAIL: $*" >&2; exit 1; }
mkdir -p "$CACHE/kernel"
# One build per variant at a time (held to the end).
exec 9>"$CACHE/build-$VARIANT.lock"
flock 9

# ------------------------------------------------------------------ packages
need=()
for p in gcc make flex bison bc libelf-dev libssl-dev xz-utils git binutils; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || need+=("$p")
done
if ((${#need[@]})); then
	say "installing ${need[*]}"
	DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${need[@]}" >/dev/null
fi

# ------------------------------------------------------------------ source
exec 7>"$CACHE/src.lock"
flock 7
if [ ! -f "$SRC/Makefile" ]; then
	# linux-source-7.3 is in trixie-backports; its .deb only needs binutils and xz-utils, so it
	# is downloaded and unpacked, not installed. The suite is added by copying this machine's
	# own Debian entry (the first stanza of debian.sources) with another Suites: line.
	list=/etc/apt/sources.list.d/dirtylimit-trixie-backports.sources
	if ! apt-cache policy "$KDEB" 2>/dev/null | grep -q "$KDEB_VER"; then
		if [ ! -f "$list" ]; then
			[ -f /etc/apt/sources.list.d/debian.sources ] ||
				die "no /etc/apt/sources.list.d/debian.sources to derive trixie-backports from"
			awk 'BEGIN { RS = ""; ORS = "\n\n" } NR == 1' /etc/apt/sources.list.d/debian.sources |
				sed 's/^Suites:.*/Suites: trixie-backports/' >"$list"
		fi
		say "apt-get update (trixie-backports for $KDEB)"
		apt-get update -q >/dev/null
	fi
	tmp=$(mktemp -d "$CACHE/src.XXXXXX")
	say "downloading $KDEB $KDEB_VER"
	(cd "$tmp" && apt-get download -q "$KDEB=$KDEB_VER" >/dev/null 2>&1) || die "apt-get download $KDEB=$KDEB_VER"
	dpkg-deb -x "$tmp"/*.deb "$tmp/pkg"
	say "extracting"
	tar -C "$tmp" -xaf "$tmp/pkg/usr/src/$KDEB.tar.xz"
	rm -rf "$SRC"
	mv "$tmp/$KDEB" "$SRC"
	rm -rf "$tmp"
fi
flock -u 7

# ------------------------------------------------------------------ Rust object
PATCHES=()
if [ "$VARIANT" != stock ]; then
	mapfile -t PATCHES < <(ls "$GLUE"/patches-7.3/*.patch 2>/dev/null | sort)
	say "Rust object (kernel-glue/ffi/build-kobj.sh)"
	(flock 8 && "$GLUE/ffi/build-kobj.sh" "$KOBJ" >&2) 8>"$CACHE/kobj.lock" || die "the Rust object's gate"
fi
FRAGS=("$HERE/base.config")
[ "$VARIANT" != stock ] && FRAGS+=("$HERE/patched.config")
[ "$VARIANT" = debug ] && FRAGS+=("$HERE/debug.config")

# The key covers the Rust object's inputs rather than its bytes: the object names its symbols
# and sections with a crate hash that depends on where the checkout lives, so a clone elsewhere
# builds a different object from the same sources.
rust_inputs() {
	rustc -V
	# the library's no_std modules (src/*.rs); src/main.rs is the CLI, not in the object
	cat "$GLUE/../Cargo.toml" "$GLUE/../Cargo.lock" $(ls "$GLUE"/../src/*.rs | grep -v '/main\.rs$')
	cat "$GLUE/ffi/Cargo.toml" "$GLUE/ffi/Cargo.lock" "$GLUE"/ffi/src/*.rs "$GLUE/ffi/build-kobj.sh"
}
KEY=$({
	echo "$KDEB $KDEB_VER $VARIANT"
	cat "${FRAGS[@]}"
	((${#PATCHES[@]})) && cat "${PATCHES[@]}" && rust_inputs
	true
} | sha256sum | cut -c1-16)
OUTDIR=$CACHE/kernel/$VARIANT-$KEY
if [ -f "$OUTDIR/bzImage" ]; then
	say "cached: $OUTDIR"
	echo "$OUTDIR/bzImage"
	exit 0
fi

# ------------------------------------------------------------------ tree
PATCHKEY=$( ( ((${#PATCHES[@]})) && cat "${PATCHES[@]}"; true) | sha256sum | cut -c1-16)
# Whether the tree holds this series, unmodified; whether it holds this Rust object.
series_applied() {
	[ -d "$TREE/.git" ] && [ "$(cat "$TREE/.dl-patches" 2>/dev/null)" = "$PATCHKEY" ] &&
		[ -z "$(git -C "$TREE" status --porcelain -uno)" ]
}
kobj_in_tree() {
	((${#PATCHES[@]} == 0)) ||
		cmp -s "$KOBJ/dirtylimit_rust.o" "$TREE/lib/dirtylimit/dirtylimit_rust.obj" 2>/dev/null
}
tree_ready() { series_applied && kobj_in_tree; }
# The tree lock: shared while builds read the sources, exclusive to change them (which waits
# for every build of the tree to finish).
exec 8>"$TREE.lock"
flock -s 8
if tree_ready; then
	say "series already applied"
else
	flock -x 8
	if [ ! -d "$TREE/.git" ]; then
		say "new tree $TREE"
		rm -rf "$TREE"
		cp -a "$SRC" "$TREE"
		git -C "$TREE" init -q
		git -C "$TREE" add -Af .
		git -C "$TREE" -c user.name=dirtylimit -c user.email=dirtylimit@localhost \
			commit -qm "Linux $KVER ($KDEB $KDEB_VER)"
		git -C "$TREE" tag base
	fi
	if ! series_applied; then
		rm -f "$TREE/.dl-patches"
		git -C "$TREE" am --abort >/dev/null 2>&1 || true
		# Back to the pristine source (files the patches added are removed, files they changed
		# are restored): only those get a new mtime, so make rebuilds only what the patches touch.
		git -C "$TREE" reset -q --hard base
		if ((${#PATCHES[@]})); then
			say "applying ${#PATCHES[@]} patches"
			git -C "$TREE" -c user.name=dirtylimit -c user.email=dirtylimit@localhost am -q "${PATCHES[@]}" ||
				die "git am failed"
		fi
		echo "$PATCHKEY" >"$TREE/.dl-patches"
	fi
	kobj_in_tree || cp "$KOBJ/dirtylimit_rust.o" "$TREE/lib/dirtylimit/dirtylimit_rust.obj"
	# flock(1) converts a lock by dropping it first: check that nobody changed the tree meanwhile.
	flock -s 8
	tree_ready || die "$TREE changed while this build waited for it (another series?); run again"
fi
if ((${#PATCHES[@]})) && ! cmp -s "$TREE/include/linux/dirtylimit.h" "$GLUE/include/dirtylimit.h"; then
	die "include/linux/dirtylimit.h in the series differs from kernel-glue/include/dirtylimit.h"
fi
cd "$TREE"

# ------------------------------------------------------------------ configure
mkdir -p "$BUILD"
FRAGKEY=$(cat "${FRAGS[@]}" | sha256sum | cut -c1-16)
if [ "$(cat "$BUILD/.dl-config" 2>/dev/null)" != "$FRAGKEY" ] || [ ! -f "$BUILD/.config" ]; then
	say "configuring (tinyconfig + ${FRAGS[*]##*/})"
	make -s O="$BUILD" tinyconfig >/dev/null
	(cd "$BUILD" && "$TREE/scripts/kconfig/merge_config.sh" -m .config "${FRAGS[@]}" >/dev/null)
	echo "$FRAGKEY" >"$BUILD/.dl-config"
fi
make -s O="$BUILD" olddefconfig >/dev/null
for f in "${FRAGS[@]}"; do
	# Every option a fragment sets must have survived olddefconfig (a missing dependency
	# would silently drop it).
	while IFS= read -r line; do
		case $line in CONFIG_*=*) ;; *) continue ;; esac
		grep -qx "$line" "$BUILD/.config" || die "$line (from ${f##*/}) did not survive olddefconfig"
	done <"$f"
done

say "make -j$JOBS bzImage"
LOG=$BUILD/build.log
if ! nice make -j"$JOBS" O="$BUILD" bzImage >"$LOG" 2>&1; then
	tail -40 "$LOG" >&2
	die "make failed (log: $LOG)"
fi
if grep -E '(warning|error):' "$LOG" | grep -v '^make' >&2; then
	die "compiler/objtool warnings (log: $LOG)"
fi
mkdir -p "$OUTDIR.tmp"
cp "$BUILD/arch/x86/boot/bzImage" "$BUILD/.config" "$BUILD/System.map" "$OUTDIR.tmp/"
rm -rf "$OUTDIR"
mv "$OUTDIR.tmp" "$OUTDIR"
say "built: $OUTDIR"
echo "$OUTDIR/bzImage"
