#!/usr/bin/env bash
# bench-registry.sh — times builder against skopeo on a registry it starts
# on loopback (docker-registry, the CNCF Distribution registry), in one run:
#   push  a 500 MB image (one layer of random bytes, uncompressed in the
#         store) to an empty registry: `builder push` against `skopeo copy
#         docker-archive:… docker://…` of the same image (both gzip it).
#   pull  that image into an empty store: `builder pull` against `skopeo
#         copy docker://… oci:DIR`.
#   cache the registry build cache: a build with `--cache-to type=registry`
#         against the same build without, as a fraction of the build.
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
REG_PID=
cleanup() {
	[ -n "$REG_PID" ] && kill "$REG_PID" 2>/dev/null && wait "$REG_PID" 2>/dev/null
	rm -rf --one-file-system "$D"
}
trap cleanup EXIT INT TERM

# A registry on a free loopback port.
PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
REG=127.0.0.1:$PORT
cat >"$D/registry.yml" <<EOF
version: 0.1
log: {level: error}
storage: {filesystem: {rootdirectory: $D/registry}, delete: {enabled: true}}
http: {addr: $REG}
EOF
docker-registry serve "$D/registry.yml" >"$D/registry.log" 2>&1 &
REG_PID=$!
for _ in $(seq 50); do curl -sf "http://$REG/v2/" >/dev/null && break; sleep 0.1; done

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
"$B" build -q -t "$REG/bench/app:1" "$D/ctx" >/dev/null
"$B" save -o "$D/app.tar" "$REG/bench/app:1"

push_builder=$(time_it push-builder "$B" push -q "$REG/bench/app:1" "$REG/builder/app:1")
push_skopeo=$(time_it push-skopeo skopeo copy -q --dest-tls-verify=false "docker-archive:$D/app.tar" "docker://$REG/skopeo/app:1")
export BUILDER_ROOT=$D/store-b
pull_builder=$(time_it pull-builder "$B" pull -q "$REG/builder/app:1")
pull_skopeo=$(time_it pull-skopeo skopeo copy -q --src-tls-verify=false "docker://$REG/skopeo/app:1" "oci:$D/pulled:1")

# The registry cache: the same cold build with and without --cache-to.
printf 'FROM busybox:latest\nRUN head -c %s /dev/urandom > /big && echo cache\n' "$BYTES" >"$D/ctx/Dockerfile"
export BUILDER_ROOT=$D/store-c
scripts/mkbase.sh "$B" busybox:latest >/dev/null
build_plain=$(time_it build-plain "$B" build -q "$D/ctx")
export BUILDER_ROOT=$D/store-d
scripts/mkbase.sh "$B" busybox:latest >/dev/null
build_cache=$(time_it build-cache "$B" build -q --cache-to "type=registry,ref=$REG/bench/cache:1" "$D/ctx")
cache_share=$(awk -v a="$build_cache" -v b="$build_plain" 'BEGIN { printf "%.1f", (a - b) / a * 100 }')

printf '\nregistry on %s, image of %s bytes of random data (gzip on push)\n' "$REG" "$BYTES"
printf '  %-40s %-9s %-26s %-9s %-6s %s\n' workload builder reference "ref." ratio goal
printf '  %-40s %-9s %-26s %-9s %-6s %s\n' "push to an empty registry" "$push_builder s" "skopeo copy docker-archive:" "$push_skopeo s" "$(ratio "$push_builder" "$push_skopeo")" "<= 1.0"
printf '  %-40s %-9s %-26s %-9s %-6s %s\n' "pull into an empty store" "$pull_builder s" "skopeo copy oci:" "$pull_skopeo s" "$(ratio "$pull_builder" "$pull_skopeo")" "<= 1.0"
printf '  %-40s %-9s %-26s %-9s %-6s %s\n' "build with --cache-to type=registry" "$build_cache s" "the same build without" "$build_plain s" "$cache_share %" "<= 5 % of the build"
