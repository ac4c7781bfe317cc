#!/usr/bin/env bash
# bench.sh — `make bench`: builder's Go benchmarks, then the workloads of
# scripts/bench-workloads.sh (timed against references on a tmpfs and on a
# journaled ext4 loop device, ending in a table). Not run by `make test` or
# CI. Needs root for everything but the layer and cache benchmarks.
#
# The Go benchmarks ("go" in BENCH_ONLY):
#   - ./cmd/builder/: whole `builder build` processes (cold build, no-op and
#     one-file-change rebuilds of a small and a 20,000-file context), wall
#     time per build (ns/op) and peak RSS (peak-RSS-MB). Needs root (RUN
#     steps, overlayfs, and a tmpfs for the stores); skipped otherwise.
#   - ./layer/: diff + compression of a BUILDER_BENCH_MB tree (default 200,
#     times BENCH_SCALE), and unpacking a layer of that size (BenchmarkApply).
#   - ./internal/store/: reading a blob through its verifying reader.
#   - ./cache/: context checksums of 20,000 files.
# Then scripts/bench-registry.sh ("registry"): push and pull of a 500 MB
# image against skopeo, and the registry cache's share of its build, on a
# docker-registry it starts on loopback.
# Environment: GO (default go), BUILDER (default bin/builder), BENCH_ONLY
# (comma-separated: go, unpack, copy, run, stages, export, registry; default
# all),
# BENCH_SCALE, BENCH_FS, BENCH_VERBOSE, BENCH_BUILDAH, BENCH_TMPDIR (see
# scripts/bench-workloads.sh), BUILDER_BENCH_MB, BUILDER_BENCHTIME (default
# 3x, for ./cmd/builder/), BUILDER_BENCH_OUT (keep the Go benchmarks' full
# output there).
set -euo pipefail
cd "$(dirname "$0")/.."
GO=${GO:-go}
ONLY=${BENCH_ONLY:-go,unpack,copy,run,stages,export,registry}
SCALE=${BENCH_SCALE:-1}
start=$(date +%s)

status=0
go_benchmarks() {
	export BUILDER_BENCH_MB=${BUILDER_BENCH_MB:-$(awk -v s="$SCALE" 'BEGIN { v = int(200 * s + 0.5); print (v < 1 ? 1 : v) }')}
	local benchtime=${BUILDER_BENCHTIME:-3x}
	out=${BUILDER_BENCH_OUT:-}
	if [ -z "$out" ]; then
		out=$(mktemp)
		trap 'rm -f "$out"' EXIT
	fi
	: >"$out"
	run() {
		echo "== $*" | tee -a "$out"
		"$GO" test -run '^$' -bench . "$@" 2>&1 | tee -a "$out" || status=1
	}
	run -benchtime "$benchtime" -timeout 30m ./cmd/builder/
	run -benchtime 1x -timeout 30m ./layer/ ./cache/ ./builder/ ./internal/store/
	# The cost per RUN of seccomp and of the private network (goal < 30 ms).
	run -benchtime 20x -timeout 30m ./executor/

	echo
	echo "== summary (BUILDER_BENCH_MB=$BUILDER_BENCH_MB)"
	grep -E '^(Benchmark|ok|FAIL|--- (FAIL|SKIP))' "$out" || true
	# The last verdict per context (a benchmark first runs once with b.N=1).
	grep -E 'no-op rebuild of .*target' "$out" | sed 's/; last run:.*//; s/^[[:space:]]*//' |
		tac | awk '!seen[$5]++' | tac || true
}

workloads=
for w in ${ONLY//,/ }; do
	case $w in
	go) go_benchmarks ;;
	registry) registry=1 ;;
	*) workloads+=${workloads:+,}$w ;;
	esac
done

if [ -n "$workloads" ]; then
	echo
	if [ "$(id -u)" != 0 ]; then
		echo "== workloads ($workloads) skipped: they need root (mounts, RUN steps)"
	else
		echo "== workloads"
		BENCH_ONLY=$workloads scripts/bench-workloads.sh || status=1
	fi
fi
if [ -n "${registry:-}" ]; then
	echo
	echo "== registry (push, pull, registry cache; scripts/bench-registry.sh)"
	scripts/bench-registry.sh || status=1
fi
echo
echo "make bench took $(($(date +%s) - start)) s"
exit $status
