#!/usr/bin/env bash
# Runs the kernel's own scripts/checkpatch.pl --strict (from the 7.3.4 tree that build.sh
# keeps) on every patch of kernel-glue/patches-7.3, prints its output, and fails unless every
# patch reports 0 errors, 0 warnings and 0 checks. Needs python3-ply for the SPDX check.
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
CACHE=${DIRTYLIMIT_CACHE:-/var/cache/dirtylimit}
TREE=$CACHE/src-7.3.4
[ -x "$TREE/scripts/checkpatch.pl" ] || { echo "checkpatch.sh: no $TREE (run kernel/build.sh first)" >&2; exit 1; }
fail=0
for p in "$HERE"/../patches-7.3/*.patch; do
	out=$(cd "$TREE" && ./scripts/checkpatch.pl --strict "$p" 2>&1) || true
	echo "$out" | sed -n '/^total:/p;/^\(ERROR\|WARNING\|CHECK\)/,/^$/p' | sed "s|^|${p##*/}: |"
	echo "$out" | grep -q '^total: 0 errors, 0 warnings, 0 checks' || fail=1
done
[ $fail = 0 ] && echo "checkpatch --strict: every patch clean" || echo "checkpatch --strict: FAIL"
exit $fail
