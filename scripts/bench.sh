#!/usr/bin/env bash
# bench.sh — runs builder's benchmarks and prints a summary of the results:
#   - ./cmd/builder/: whole `builder build` processes (cold build, no-op and
#     one-file-change rebuilds of a small and a 20,000-file context), wall
#     time per build (ns/op) and peak RSS (peak-RSS-MB). Needs root (RUN
#     steps, overlayfs, and a tmpfs for the stores); skipped otherwise.
#   - ./layer/: diff + compression of a BUILDER_BENCH_MB tree (default 200).
#   - ./cache/: context checksums of 20,000 files.
# Environment: GO (default go), BUILDER_BENCH_MB, BUILDER_BENCHTIME (default
# 3x, for ./cmd/builder/), BUILDER_BENCH_OUT (keep the full output there).
set -euo pipefail
cd "$(dirname "$0")/.."
GO=${GO:-go}
export BUILDER_BENCH_MB=${BUILDER_BENCH_MB:-200}
benchtime=${BUILDER_BENCHTIME:-3x}
out=${BUILDER_BENCH_OUT:-}
if [ -z "$out" ]; then
	out=$(mktemp)
	trap 'rm -f "$out"' EXIT
fi
: >"$out"

status=0
run() {
	echo "== $*" | tee -a "$out"
	"$GO" test -run '^$' -bench . "$@" 2>&1 | tee -a "$out" || status=1
}
run -benchtime "$benchtime" -timeout 30m ./cmd/builder/
run -benchtime 1x -timeout 30m ./layer/ ./cache/ ./builder/

echo
echo "== summary (BUILDER_BENCH_MB=$BUILDER_BENCH_MB)"
grep -E '^(Benchmark|ok|FAIL|--- (FAIL|SKIP))' "$out" || true
# The last verdict per context (a benchmark first runs once with b.N=1).
grep -E 'no-op rebuild of .*target' "$out" | sed 's/; last run:.*//; s/^[[:space:]]*//' |
	tac | awk '!seen[$5]++' | tac || true
exit $status
