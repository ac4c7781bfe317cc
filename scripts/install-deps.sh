#!/usr/bin/env bash
# Installs the Debian packages builder's tests and demo use. Idempotent.
set -euo pipefail
pkgs=(busybox-static skopeo umoci runc pigz zstd xz-utils bzip2 docker-registry apache2-utils slirp4netns passt iproute2 uidmap)
missing=()
for p in "${pkgs[@]}"; do
	dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0
if [ "$(id -u)" != 0 ]; then
	echo "install as root: apt-get install -y ${missing[*]}" >&2
	exit 1
fi
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq "${missing[@]}"
