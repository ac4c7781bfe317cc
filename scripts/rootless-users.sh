#!/usr/bin/env bash
# rootless-users.sh — creates the users the rootless tests build as (run as
# root; idempotent): builder-rootless, with 65536 subordinate uids and gids
# in /etc/subuid and /etc/subgid, and builder-single, with none.
set -euo pipefail
if [ "$(id -u)" != 0 ]; then
	echo "rootless-users.sh: run as root" >&2
	exit 1
fi
touch /etc/subuid /etc/subgid
if ! id builder-rootless >/dev/null 2>&1; then
	useradd --create-home --shell /bin/sh -K SUB_UID_COUNT=0 -K SUB_GID_COUNT=0 builder-rootless
fi
if ! id builder-single >/dev/null 2>&1; then
	useradd --create-home --shell /bin/sh -K SUB_UID_COUNT=0 -K SUB_GID_COUNT=0 builder-single
fi
# One range for builder-rootless, past every range already given out.
for f in /etc/subuid /etc/subgid; do
	sed -i '/^builder-single:/d' "$f"
	if ! grep -q '^builder-rootless:' "$f"; then
		start=$(awk -F: 'BEGIN { m = 100000 } { if ($2 + $3 > m) m = $2 + $3 } END { print m }' "$f")
		echo "builder-rootless:$start:65536" >>"$f"
	fi
done
# Both NATs need /dev/net/tun openable by the user: udev's usual mode.
if [ -c /dev/net/tun ]; then
	chmod 0666 /dev/net/tun
fi
