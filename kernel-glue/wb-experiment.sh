#!/usr/bin/env bash
# kernel-glue/wb-experiment.sh: the global per-bdi threshold experiment of CONFIG_WB_DIRTY_REDISTRIBUTE
# in a QEMU (TCG) guest of the project's Linux 7.3 kernel. Two virtio disks whose write rates QEMU
# throttles (A fast, B slow), ext4 on each, vm.dirty_ratio 10 / dirty_background_ratio 5.
# idle-min-ratio and fuse-beside-disk boot the plain kernel once per policy
# (wb_dirty_policy=linux|redistribute; fuse-beside-disk with fuse.dirty_limit=0, so that FUSE
# keeps its stock 1% max_ratio and strictlimit); max-ratio-lowered runs in one boot as
# policy-switch, both policies in alternating rounds (its table and figure: the first round of
# each), and once more on the debug kernel (lockdep, KASAN) with redistribute.
# The simulator runs each scenario's kernel-glue/wb-sim/*.toml with the rates measured in the
# guest. Writes plots/kernel-wb-table.md and plots/kernel-SCENARIO.{svg,png} (the kernel's trace
# beside the simulator's); the last line is "N passed, N failed". Run as root. Kernels come from
# kernel-glue/kernel/build.sh (cached), or from WB_BZIMAGE_PLAIN / WB_BZIMAGE_DEBUG when set.
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(cd "$HERE/.." && pwd)
B=$HERE/build/wb
A_BPS=${WB_A_BPS:-$((16 << 20))}
B_BPS=${WB_B_BPS:-$((8 << 20))}
PRE=${WB_PRE:-20}
POST=${WB_POST:-30}
IDLE_S=${WB_IDLE_S:-20}
DISK_MB=512
T0=$(date +%s)
mkdir -p "$B"

step() { echo "== [$(($(date +%s) - T0))s] $*"; }
die() { echo "wb-experiment: FAIL: $*" >&2; echo "0 passed, 1 failed"; exit 1; }

step "packages"
PKGS=(qemu-system-x86 busybox-static cpio e2fsprogs librsvg2-bin)
missing=()
for p in "${PKGS[@]}"; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
if ((${#missing[@]})); then
	export DEBIAN_FRONTEND=noninteractive
	apt-get update -q >/dev/null
	apt-get install -y -q "${missing[@]}" >/dev/null
fi

step "kernels"
kernel() { # $1 = plain|debug: prints the bzImage path
	local var="WB_BZIMAGE_${1^^}"
	if [ -n "${!var:-}" ]; then
		echo "${!var}"
	elif [ -x "$HERE/kernel/build.sh" ]; then
		"$HERE/kernel/build.sh" "$1" | tail -1
	else
		die "no kernel: kernel-glue/kernel/build.sh missing and $var unset"
	fi
}
# WB_NO_PLAIN=1 / WB_NO_DEBUG=1: no boots of that kernel (and it is not built)
BZ_PLAIN= BZ_DEBUG=
if [ -z "${WB_NO_PLAIN:-}" ]; then
	BZ_PLAIN=$(kernel plain)
	[ -f "$BZ_PLAIN" ] || die "plain kernel $BZ_PLAIN missing"
fi
if [ -z "${WB_NO_DEBUG:-}" ]; then
	BZ_DEBUG=$(kernel debug)
	[ -f "$BZ_DEBUG" ] || die "debug kernel $BZ_DEBUG missing"
fi

step "guest programs (static): wbexp and the FUSE server dltest"
# The same target directory and flags as run.sh's build of the crate: one build serves both.
TB=$HERE/build/testbin-target
(cd "$HERE/testbin" && CARGO_TARGET_DIR=$TB RUSTFLAGS="-C target-feature=+crt-static" \
	nice -n 10 cargo build -q --release --target x86_64-unknown-linux-gnu)

step "simulator"
(cd "$REPO" && nice -n 10 cargo build -q --release --bin dirtylimit)
SIM_TARGET=${CARGO_TARGET_DIR:-target}
case $SIM_TARGET in /*) ;; *) SIM_TARGET=$REPO/$SIM_TARGET ;; esac
SIM=$SIM_TARGET/release/dirtylimit
[ -x "$SIM" ] || die "simulator $SIM missing after cargo build"

step "initramfs"
R=$B/initramfs
rm -rf "$R" && mkdir -p "$R"/{bin,dev,proc,sys,tmp,mnt}
cp /bin/busybox "$R/bin/busybox"
cp "$HERE/guest/wb-init" "$R/init"
cp "$TB/x86_64-unknown-linux-gnu/release/wbexp" "$R/wbexp"
cp "$TB/x86_64-unknown-linux-gnu/release/dltest" "$R/dltest"
(cd "$R" && find . | cpio -o -H newc --quiet | gzip -1) >"$B/initramfs.cpio.gz"

step "disk image (ext4, ${DISK_MB} MiB)"
rm -f "$B/pristine.img"
truncate -s ${DISK_MB}M "$B/pristine.img"
mkfs.ext4 -q -F -E lazy_itable_init=0,lazy_journal_init=0 "$B/pristine.img"

boot() { # $1 = variant, $2 = policy, $3 = scenario, $4 = timeout (s), $5 = more kernel arguments
	local log=$B/$1-$2-$3.log
	cp --sparse=always "$B/pristine.img" "$B/a.img"
	cp --sparse=always "$B/pristine.img" "$B/b.img"
	local bz=$BZ_PLAIN
	[ "$1" = debug ] && bz=$BZ_DEBUG
	step "boot $1 kernel, wb_dirty_policy=$2, $3"
	set +e
	# no5lvl: four-level paging. Under -cpu max the guest would use five levels, and an interrupt
	# inside identify_cpu() (which clears the CPU's feature words before reading them again) then
	# makes KASAN check a five-level direct-map address against four-level bounds and report a
	# wild memory access that is not one.
	timeout "$4" qemu-system-x86_64 -machine q35 -accel tcg -cpu max -smp 2 -m 1024 \
		-kernel "$bz" -initrd "$B/initramfs.cpio.gz" \
		-append "console=ttyS0 panic=-1 loglevel=4 no5lvl rdinit=/init wb_dirty_policy=$2 wbexp.scenario=$3 wbexp.pre=$PRE wbexp.post=$([ "$3" = idle-min-ratio ] && echo "$IDLE_S" || echo "$POST") ${5:-}" \
		-drive "file=$B/a.img,if=virtio,format=raw,cache=unsafe,throttling.bps-write=$A_BPS" \
		-drive "file=$B/b.img,if=virtio,format=raw,cache=unsafe,throttling.bps-write=$B_BPS" \
		-nographic -no-reboot -monitor none -serial stdio </dev/null >"$log" 2>&1
	local rc=$?
	set -e
	tr -d '\r' <"$log" | grep -E 'WBX (kernel|guest|fuse|sysctl|E|W|DMESG|FAIL|END|DONE|slots)' | sed 's/^/    /' || true
	[ $rc = 124 ] && echo "    (timed out after $4 s)"
	rm -f "$B/a.img" "$B/b.img"
}

# WB_ORDER: the order of the policies' boots; WB_SCENARIOS: the plain kernel's scenarios
# (default idle-min-ratio fuse-beside-disk policy-switch; max-ratio-lowered boots once per
# policy; policy-switch runs both policies in one boot, WB_ROUNDS rounds, default 6);
# WB_ONLY_MAX=1: max-ratio-lowered on the plain kernel only; WB_NO_DEBUG=1: no debug boots;
# WB_NO_PLAIN=1: the debug boots only, analysed together with the plain boots' logs of the
# run before (so that the debug kernel can be built while the plain one boots).
SCENARIOS=${WB_SCENARIOS:-idle-min-ratio fuse-beside-disk policy-switch}
ROUNDS=${WB_ROUNDS:-6}
if [ -n "${WB_ONLY_MAX:-}" ]; then
	SCENARIOS=max-ratio-lowered WB_NO_DEBUG=1
fi
[ -n "${WB_NO_PLAIN:-}" ] && SCENARIOS=
[ -n "$BZ_PLAIN" ] && rm -f "$B"/plain-*.log
[ -n "$BZ_DEBUG" ] && rm -f "$B"/debug-*.log
for scen in $SCENARIOS; do
	if [ "$scen" = policy-switch ]; then
		# One boot, both policies: max-ratio-lowered ROUNDS times, the policy switched at run
		# time (vm.wb_dirty_redistribute) before each round.
		boot plain redistribute "$scen" $((ROUNDS * (PRE + POST + 30) + 200)) wbexp.rounds=$ROUNDS
		continue
	fi
	for pol in ${WB_ORDER:-linux redistribute}; do
		case $scen in
		idle-min-ratio) boot plain "$pol" "$scen" 300 ;;
		fuse-beside-disk) boot plain "$pol" "$scen" 400 fuse.dirty_limit=0 ;;
		*) boot plain "$pol" "$scen" 400 ;;
		esac
	done
done
if [ -n "$BZ_DEBUG" ]; then
	# The debug kernel runs the scenario for lockdep and KASAN, not for its timing: shorter
	# phases (the last wbexp.pre=/post= on the command line is the one read).
	boot debug redistribute max-ratio-lowered 900 "wbexp.pre=10 wbexp.post=15"
	# 10 bdis at boot (8 loop devices, 2 disks), 12 slots: 8 loop devices added 20 times run
	# out of slots each time, are given ratios and are removed again.
	boot debug redistribute slots 600 wb_dirty_slots=12
fi

step "analysis"
mkdir -p "$REPO/plots"
set +e
python3 "$HERE/wb-analyze.py" --out "$REPO/plots" --sim "$SIM" --sim-work "$B/sim" \
	--setup "Measured by kernel-glue/wb-experiment.sh: Linux 7.3.4 guest under QEMU TCG (1 GiB; -smp 2, the tinyconfig guest brings up 1 CPU) on $(nproc) host cores; virtio disks throttled by QEMU to A $((A_BPS >> 20)) MiB/s and B $((B_BPS >> 20)) MiB/s of writes; ext4; dirty_ratio 10, dirty_background_ratio 5; samples every 0.25 s." \
	"$B"/*.log | tee "$B/analysis.txt"
arc=${PIPESTATUS[0]}
set -e
for scen in max-ratio-lowered idle-min-ratio fuse-beside-disk; do
	svg=$REPO/plots/kernel-$scen.svg
	if [ -f "$svg" ]; then
		rsvg-convert -w 1400 -b white "$svg" -o "${svg%.svg}.png" || echo "rsvg-convert failed: no PNG of $scen"
	fi
done
step "done"
tail -1 "$B/analysis.txt"
exit "$arc"
