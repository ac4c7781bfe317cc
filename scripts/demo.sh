#!/usr/bin/env bash
# The main job on a fresh machine: make a busybox base image offline, then
# show the store at work and build the examples.
set -euo pipefail
cd "$(dirname "$0")/.."
B=$PWD/bin/builder
export BUILDER_ROOT=${BUILDER_ROOT:-/tmp/builder-demo}
out=${DEMO_OUT:-/tmp/builder-demo-out}
mkdir -p "$out"
step() { printf '\n\033[1m==> %s\033[0m\n' "$*"; }

if ! [ -x /bin/busybox ] || ! /bin/busybox --list >/dev/null 2>&1; then
	step "installing busybox-static"
	scripts/install-deps.sh
fi

step "store at $BUILDER_ROOT"
step "import a busybox root filesystem as busybox:latest"
scripts/mkbase.sh "$B" busybox:latest
step "tag it"
$B tag busybox:latest demo/base:1
$B images
step "inspect"
$B inspect demo/base:1 >"$out/inspect.json"
sed -n 1,40p "$out/inspect.json"
step "history"
$B history demo/base:1
step "save as docker-archive and OCI archive"
$B save -o "$out/base-docker.tar" demo/base:1
$B save --format oci -o "$out/base-oci.tar" demo/base:1
ls -l "$out"/base-*.tar
step "remove and load back"
$B rmi demo/base:1
$B load -i "$out/base-oci.tar"
$B images
step "export the flattened root filesystem"
$B export -o "$out/rootfs.tar" busybox:latest
tar -tvf "$out/rootfs.tar" >"$out/rootfs.list"
sed -n 1,5p "$out/rootfs.list"
echo "... $(wc -l <"$out/rootfs.list") entries"
if $B build --help >/dev/null 2>&1; then
	for ex in examples/*/; do
		name=$(basename "$ex")
		step "build examples/$name"
		$B build --progress plain -t "example/$name:latest" "$ex"
	done
	step "run examples/hello"
	$B run --rm example/hello:latest
	step "rebuild (cached)"
	time $B build --progress plain -t example/hello:latest examples/hello
	$B images
fi
echo
echo "demo done: store at $BUILDER_ROOT, archives in $out"
