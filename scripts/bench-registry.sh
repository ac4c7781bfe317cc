#!/usr/bin/env bash
# bench-registry.sh — times builder against skopeo on a registry it starts
# on loopback (docker-registry, the CNCF Distribution registry), in one run:
#   push  a 500 MB image (one layer of random bytes, uncompressed in the
#         store) to an empty registry: `builder push` against `skopeo copy
#         docker-archive:… docker://…` of the same image (both gzip it).
#   pull  that image into an empty store: `builder pull` against `skopeo
#         copy docker://… oci:DIR`.
#   cache the registry build cache: a build that pushes its image with
#         `--cache-to type=registry` against the same build without it, as
#         a fraction of the build (the cache shares the image's blobs); and
#         a build that only exports the cache, against one that exports
#         nothing.
# Goals: push and pull ratio (builder / skopeo) <= 1.0; cache export <= 5 %
# of its build. Needs root (RUN steps), docker-registry, skopeo. Each run
# uses fresh stores and a fresh registry storage under BENCH_TMPDIR (default
# /tmp), removed at exit. BENCH_SCALE scales the 500 MB.
set -euo pipefail
cd "$(dirname "$0")/.."
B=${BUILDER:-$PWD/bin/builder}
HELPER=$PWD/scripts/bench-helper.pl
SCALE=${BENCH_SCALE:-1}
BYTES=$(awk -v s="$SCALE" 'BEGIN { printf "%.0f\n", 500000000 * s }')
for tool in docker-registry skopeo; do
	command -v "$tool" >/dev/null || { echo "bench-registry: $tool is not installed (make deps)" >&2; exit 1; }
done
D=$(mktemp -d "${BENCH_TMPDIR:-/tmp}/builder-bench-registry.XXXXXX")
REG_PID= REG=
cleanup() {
	local status=$?
	[ -n "$REG_PID" ] && stop_registry
	rm -rf --one-file-system "$D"
	exit "$status"
}
trap cleanup EXIT INT TERM

# start_registry starts a registry with empty storage on a free loopback
# port and sets REG; stop_registry stops it.
start_registry() {
	local port
	port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
	REG=127.0.0.1:$port
	rm -rf "$D/registry"
	printf 'version: 0.1\nlog: {level: error}\nstorage: {filesystem: {rootdirectory: %s}, delete: {enabled: true}}\nhttp: {addr: %s}\n' "$D/registry" "$REG" >"$D/registry.yml"
	docker-registry serve "$D/registry.yml" >"$D/registry.log" 2>&1 &
	REG_PID=$!
	for _ in $(seq 50); do curl -sf "http://$REG/v2/" >/dev/null && return; sleep 0.1; done
	echo "bench-registry: the registry did not start:" >&2
	cat "$D/registry.log" >&2
	exit 1
}
stop_registry() {
	kill "$REG_PID" 2>/dev/null || true
	wait "$REG_PID" 2>/dev/null || true # its status after SIGTERM is 143
	REG_PID=
}

# time_it NAME CMD...: runs CMD once, timed on the monotonic clock.
time_it() {
	local name=$1
	shift
	sync
	"$HELPER" time "$D/$name.time" "$@" >"$D/$name.log" 2>&1 || { echo "bench-registry: $name failed:" >&2; cat "$D/$name.log" >&2; exit 1; }
	awk '{ printf "%.2f\n", $1 }' "$D/$name.time"
}
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", a / b }'; }

# The image: busybox plus one layer of BYTES random bytes.
export BUILDER_ROOT=$D/store-a
scripts/mkbase.sh "$B" busybox:latest >/dev/null
mkdir -p "$D/ctx"
printf 'FROM busybox:latest\nRUN head -c %s /dev/urandom > /big\n' "$BYTES" >"$D/ctx/Dockerfile"
"$B" build -q -t bench/app:1 "$D/ctx" >/dev/null
"$B" save -o "$D/app.tar" bench/app:1

# Push and pull three times each, taking turns, into fresh repositories and
# stores; the medians are shown.
median() { tr ' ' '\n' | grep . | sort -g | awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }'; }
# Each round uses a fresh registry, so that nothing is already there.
pb= ps= lb= ls=
for i in 1 2 3; do
	start_registry
	pb+=" $(time_it push-builder "$B" push -q bench/app:1 "$REG/builder/app:1")"
	ps+=" $(time_it push-skopeo skopeo copy -q --dest-tls-verify=false "docker-archive:$D/app.tar" "docker://$REG/skopeo/app:1")"
	export BUILDER_ROOT=$D/store-b$i
	lb+=" $(time_it pull-builder "$B" pull -q "$REG/builder/app:1")"
	ls+=" $(time_it pull-skopeo skopeo copy -q --src-tls-verify=false "docker://$REG/skopeo/app:1" "oci:$D/pulled$i:1")"
	rm -rf --one-file-system "$BUILDER_ROOT" "$D/pulled$i"
	export BUILDER_ROOT=$D/store-a
	stop_registry
done
start_registry
push_builder=$(echo "$pb" | median) push_skopeo=$(echo "$ps" | median)
pull_builder=$(echo "$lb" | median) pull_skopeo=$(echo "$ls" | median)

# The registry cache, as a CI job uses it: a cold build that pushes its
# image, with and without --cache-to (the cache shares the image's blobs,
# so they go up once); and a build that only exports the cache.
printf 'FROM busybox:latest\nRUN head -c %s /dev/urandom > /big && echo cache\n' "$BYTES" >"$D/ctx/Dockerfile"
fresh() { export BUILDER_ROOT=$D/store-$1; scripts/mkbase.sh "$B" busybox:latest >/dev/null; }
fresh c
build_push=$(time_it build-push "$B" build -q -t "$REG/ci/app:1" --push "$D/ctx")
fresh d
# The export's own time: from its "exporting N cache entries" line to the
# end of the build, read from the build's progress, stamped as it comes.
sync
start=$(date +%s.%N)
"$B" build --progress plain -t "$REG/ci/app:2" --push --cache-to "type=registry,ref=$REG/ci/cache:1,mode=max" "$D/ctx" 2>&1 |
	while IFS= read -r line; do printf '%s %s\n' "$(date +%s.%N)" "$line"; done >"$D/build-push-cache.log"
end=$(date +%s.%N)
build_push_cache=$(awk -v a="$start" -v b="$end" 'BEGIN { printf "%.2f", b - a }')
export_start=$(awk '/exporting [0-9]+ cache entries/ { print $1; exit }' "$D/build-push-cache.log")
[ -n "$export_start" ] || { echo "bench-registry: the build did not export its cache:" >&2; cat "$D/build-push-cache.log" >&2; exit 1; }
export_time=$(awk -v a="$export_start" -v b="$end" 'BEGIN { printf "%.2f", b - a }')
fresh e
build_plain=$(time_it build-plain "$B" build -q "$D/ctx")
fresh f
build_cache=$(time_it build-cache "$B" build -q --cache-to "type=registry,ref=$REG/bench/cache:1" "$D/ctx")
share() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.1f", (a - b) / a * 100 }'; }
push_cache_share=$(awk -v e="$export_time" -v t="$build_push_cache" 'BEGIN { printf "%.1f", e / t * 100 }')
cache_share=$(share "$build_cache" "$build_plain")

printf '\nregistry on %s, image of %s bytes of random data (gzip on push); push and pull: medians of 3, builds: 1 run\n' "$REG" "$BYTES"
printf '  %-40s %-9s %-26s %-9s %-6s %s\n' workload builder reference "ref." ratio goal
printf '  %-40s %-9s %-26s %-9s %-6s %s\n' "push to an empty registry" "$push_builder s" "skopeo copy docker-archive:" "$push_skopeo s" "$(ratio "$push_builder" "$push_skopeo")" "<= 1.0"
printf '  %-40s %-9s %-26s %-9s %-6s %s\n' "pull into an empty store" "$pull_builder s" "skopeo copy oci:" "$pull_skopeo s" "$(ratio "$pull_builder" "$pull_skopeo")" "<= 1.0"
printf '  %-40s %-9s %-26s %-9s %-6s %s\n' "cache export in build --push --cache-to" "$export_time s" "that whole build" "$build_push_cache s" "$push_cache_share %" "<= 5 % of the build (build --push alone: $build_push s)"
printf '  %-40s %-9s %-26s %-9s %-6s %s\n' "build --cache-to only (cold, no push)" "$build_cache s" "the same build without" "$build_plain s" "$cache_share %" "(the cache carries every layer up itself)"
