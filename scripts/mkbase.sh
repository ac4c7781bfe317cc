#!/usr/bin/env bash
# mkbase.sh BUILDER REF [TAR] — makes a busybox base image offline from
# Debian's busybox-static and imports it into builder's store ($BUILDER_ROOT,
# as for any builder command) as REF; with TAR, the root filesystem
# written there by --tar.
# mkbase.sh --rootfs DIR — only makes that root filesystem, in DIR.
# mkbase.sh --tar TAR [DIR] — only writes the root filesystem (DIR, made by
# --rootfs and maybe added to; else a fresh one) to TAR, reproducibly.
set -euo pipefail
bb=${BUILDER_BUSYBOX:-/bin/busybox}
if [ ! -x "$bb" ] || ! file -L "$bb" 2>/dev/null | grep -q static && ! "$bb" --list >/dev/null 2>&1; then
	echo "busybox not found at $bb: apt-get install busybox-static" >&2
	exit 1
fi

# rootfs DIR makes the base image's root filesystem in DIR.
rootfs() {
	local dir=$1 a
	mkdir -p "$dir"/{bin,etc,tmp,root,proc,sys,dev,var,usr/bin,home/app}
	chmod 1777 "$dir/tmp"
	cp "$bb" "$dir/bin/busybox"
	for a in $("$bb" --list); do
		[ "$a" = busybox ] || ln -sf busybox "$dir/bin/$a"
	done
	printf 'root:x:0:0:root:/root:/bin/sh\napp:x:1000:1000:app:/home/app:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n' >"$dir/etc/passwd"
	printf 'root:x:0:\nwheel:x:10:app\napp:x:1000:\nnogroup:x:65534:\n' >"$dir/etc/group"
	chown 1000:1000 "$dir/home/app" 2>/dev/null || true
}

# tar_dir DIR writes DIR to stdout as a reproducible tar.
tar_dir() { tar --numeric-owner --sort=name --mtime=@0 -C "$1" -cf - .; }

# fresh_tar writes a fresh root filesystem to stdout as a tar.
fresh_tar() {
	tmp=$(mktemp -d)
	trap 'rm -rf "$tmp"' EXIT
	rootfs "$tmp"
	tar_dir "$tmp"
}

case ${1:-} in
--rootfs)
	rootfs "${2:?usage: mkbase.sh --rootfs DIR}"
	exit
	;;
--tar)
	out=${2:?usage: mkbase.sh --tar TAR [DIR]}
	if [ -n "${3:-}" ]; then
		tar_dir "$3" >"$out"
	else
		fresh_tar >"$out"
	fi
	exit
	;;
esac

builder=${1:?usage: mkbase.sh BUILDER REF [TAR]}
ref=${2:-busybox:latest}
# import SRC imports the tar SRC (- for stdin) as ref.
import() {
	"$builder" import -c 'CMD ["/bin/sh"]' -c 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' -m "busybox-static $("$bb" | head -1 | awk '{print $2}')" "$1" "$ref"
}
if [ -n "${3:-}" ]; then
	import "$3"
else
	fresh_tar | import -
fi
