#!/usr/bin/env bash
# mkbase.sh BUILDER REF — makes a busybox base image offline from Debian's
# busybox-static and imports it into builder's store as REF.
set -euo pipefail
builder=${1:?usage: mkbase.sh BUILDER REF}
ref=${2:-busybox:latest}
bb=${BUILDER_BUSYBOX:-/bin/busybox}
if [ ! -x "$bb" ] || ! file -L "$bb" 2>/dev/null | grep -q static && ! "$bb" --list >/dev/null 2>&1; then
	echo "busybox not found at $bb: apt-get install busybox-static" >&2
	exit 1
fi
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
mkdir -p "$dir"/{bin,etc,tmp,root,proc,sys,dev,var,usr/bin,home/app}
chmod 1777 "$dir/tmp"
cp "$bb" "$dir/bin/busybox"
for a in $("$bb" --list); do
	[ "$a" = busybox ] || ln -sf busybox "$dir/bin/$a"
done
printf 'root:x:0:0:root:/root:/bin/sh\napp:x:1000:1000:app:/home/app:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n' >"$dir/etc/passwd"
printf 'root:x:0:\nwheel:x:10:app\napp:x:1000:\nnogroup:x:65534:\n' >"$dir/etc/group"
chown 1000:1000 "$dir/home/app" 2>/dev/null || true
tar --numeric-owner --sort=name --mtime=@0 -C "$dir" -cf - . |
	"$builder" import -c 'CMD ["/bin/sh"]' -c 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' -m "busybox-static $("$bb" | head -1 | awk '{print $2}')" - "$ref"
