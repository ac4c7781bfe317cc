#!/usr/bin/env bash
# bench-workloads.sh — times builder on the workloads users compare with
# Buildah 1.28, each beside a reference measured in the same run, on a tmpfs
# and on a journaled ext4 filesystem on a loop device that the script makes
# and removes, and prints a table at the end. Needs root (mounts, RUN steps).
# `make bench` runs it after the Go benchmarks (scripts/bench.sh).
#
# Workloads (names for BENCH_ONLY):
#   unpack  first build on a freshly imported 300 MB base (30,000 small
#           files, 270 MB of larger ones, busybox): `builder import base.tar
#           base:1`, then `FROM base:1 / RUN touch /x` is timed. Reference:
#           tar -xf base.tar && sync. Goal: ratio <= 1.3.
#   copy    COPY of 20,000 small files into a fresh store, then the same
#           build after one file changed (a cache miss for the COPY).
#           References: cp -a of the tree && sync; buildah bud --layers.
#   run     RUN writing 500 MB of /dev/urandom into a fresh store, and the
#           store's growth (du after/before, over 500 MB; goal <= 1.1).
#           References: head -c ... > file && sync; buildah bud --layers.
#   stages  three independent 2 s RUN stages and a final stage copying from
#           them, cold, with the default --jobs and with --jobs 3. Goal:
#           < 2.6 s. References: 2 s (ideal); buildah bud --layers, with and
#           without --jobs 3.
#   export  `builder save --format oci` of the 500 MB image, uncompressed,
#           and with --compression gzip and zstd when `builder save --help`
#           offers it. References, on the layer bytes of that archive: cp,
#           pigz -c, zstd -T0 -c, each && sync. Goals: gzip <= 1.0x pigz,
#           zstd <= 1.5x zstd -T0.
# Peak RSS of builder in unpack, run and export is ru_maxrss as GNU time
# reports it (/usr/bin/time -f %M): the largest resident set of the builder
# process and of the descendants it waited for. Goal: < 100 MB.
#
# Each timed command starts after a sync and runs on a fresh store (or
# Buildah storage root) on the filesystem under test; a run shorter than
# 10 s is repeated (3 runs, the median is shown), a longer one is not. The
# series of one workload take turns, run by run. Wall times are taken on
# CLOCK_MONOTONIC by scripts/bench-helper.pl.
#
# Environment:
#   BUILDER        the binary to measure (default bin/builder)
#   BENCH_ONLY     comma-separated workloads (default unpack,copy,run,stages,export)
#   BENCH_FS       comma-separated filesystems (default tmpfs,ext4)
#   BENCH_SCALE    multiplies every size (default 1; 0.1 for a quick check)
#   BENCH_VERBOSE  1 prints every command, the timed ones marked [timed]
#   BENCH_BUILDAH  the buildah to compare with (default: buildah on PATH), or
#                  none to leave Buildah out
#   BENCH_TMPDIR   parent of the work directory (default $TMPDIR, else /tmp);
#                  it holds the ext4 image, and all of it is removed at exit
set -uo pipefail

here=$(cd "$(dirname "$0")" && pwd)
repo=$(dirname "$here")
helper=$here/bench-helper.pl
BUILDER=${BUILDER:-$repo/bin/builder}
ONLY=${BENCH_ONLY:-unpack,copy,run,stages,export}
FSLIST=${BENCH_FS:-tmpfs,ext4}
SCALE=${BENCH_SCALE:-1}
VERBOSE=${BENCH_VERBOSE:-0}
BUSYBOX=${BUILDER_BUSYBOX:-/bin/busybox}
GNUTIME=/usr/bin/time
LONG_RUN=10 # seconds: a run at least this long is not repeated

die() {
	echo "bench-workloads: $*" >&2
	exit 1
}

started=$(perl -MTime::HiRes=clock_gettime,CLOCK_MONOTONIC -e 'print clock_gettime(CLOCK_MONOTONIC)') ||
	die "perl with Time::HiRes is needed (apt-get install perl)"

[ "$(id -u)" = 0 ] || die "must run as root: it mounts a tmpfs and an ext4 loop device, and RUN steps need namespaces"
case $BUILDER in /*) ;; *) BUILDER=$PWD/$BUILDER ;; esac
[ -x "$BUILDER" ] || die "no builder binary at $BUILDER (make build)"
awk -v s="$SCALE" 'BEGIN { exit !(s + 0 > 0) }' || die "BENCH_SCALE must be a number > 0, not $SCALE"
for w in ${ONLY//,/ }; do
	case $w in unpack | copy | run | stages | export) ;; *) die "unknown workload $w in BENCH_ONLY (unpack, copy, run, stages, export)" ;; esac
done
for fs in ${FSLIST//,/ }; do
	case $fs in tmpfs | ext4) ;; *) die "unknown filesystem $fs in BENCH_FS (tmpfs, ext4)" ;; esac
done

# Tools from Debian packages: installed when missing, as scripts/demo.sh does
# for busybox.
missing=()
[ -x "$GNUTIME" ] || missing+=(time)
command -v pigz >/dev/null || missing+=(pigz)
command -v zstd >/dev/null || missing+=(zstd)
command -v mkfs.ext4 >/dev/null || missing+=(e2fsprogs)
[ -x "$BUSYBOX" ] || missing+=(busybox-static)
if [ ${#missing[@]} -gt 0 ]; then
	echo "installing ${missing[*]} (apt-get)"
	export DEBIAN_FRONTEND=noninteractive
	{ apt-get update -qq && apt-get install -y -qq "${missing[@]}"; } >/dev/null ||
		die "could not install ${missing[*]}"
fi
BUILDAH=${BENCH_BUILDAH:-$(command -v buildah || true)}
NO_BUILDAH="buildah not installed"
if [ "$BUILDAH" = none ]; then
	BUILDAH=
	NO_BUILDAH="buildah left out (BENCH_BUILDAH=none)"
fi

# scaled N prints N times BENCH_SCALE, rounded, at least 1.
scaled() { awk -v n="$1" -v s="$SCALE" 'BEGIN { v = int(n * s + 0.5); printf "%.0f\n", (v < 1 ? 1 : v) }'; }
N_SMALL=$(scaled 30000)         # small files of the unpack base
LARGE_BYTES=$(scaled 270000000) # larger files of the unpack base
N_CTX=$(scaled 20000)           # files of the COPY context
RUN_BYTES=$(scaled 500000000)   # written by the RUN of run and export
# Room on each filesystem: export holds a store (blob and snapshot), a copy
# of it, the archive, the layer and a compressed copy at once.
FS_BYTES=$(awk -v b="$RUN_BYTES" 'BEGIN { printf "%.0f", 2 ^ 30 + 12 * b }')

work=$(mktemp -d "${BENCH_TMPDIR:-${TMPDIR:-/tmp}}/builder-bench.XXXXXX") || die "cannot make a work directory"
logs=$work/logs
mkdir -p "$logs"

# cleanup unmounts whatever is mounted under the work directory (deepest
# first), detaches the loop device of the ext4 image and deletes everything.
cleanup() {
	local m dev
	for m in $(awk -v w="$work" 'index($2, w "/") == 1 { print length($2), $2 }' /proc/self/mounts | sort -rn | cut -d' ' -f2); do
		umount "$m" 2>/dev/null || umount -l "$m" 2>/dev/null || echo "bench-workloads: could not unmount $m" >&2
	done
	if [ -e "$work/ext4.img" ]; then
		for dev in $(losetup -j "$work/ext4.img" 2>/dev/null | cut -d: -f1); do
			losetup -d "$dev" 2>/dev/null || echo "bench-workloads: could not detach $dev" >&2
		done
	fi
	rm -rf --one-file-system "$work"
}
trap cleanup EXIT
trap 'echo "bench-workloads: interrupted" >&2; exit 130' INT
trap 'exit 143' TERM
trap 'exit 129' HUP

qcmd() { printf '%q ' "$@"; }
verbose() { [ "$VERBOSE" = 1 ] && echo "    $*"; return 0; }

# step CMD...: an untimed command; its output is shown only if it fails.
step() {
	verbose "[setup] $(qcmd "$@")"
	if ! "$@" >"$logs/step.log" 2>&1; then
		echo "    setup failed: $(qcmd "$@")"
		tail -n 20 "$logs/step.log" | sed 's/^/      | /'
		return 1
	fi
}

# Results, by series key FS/WORKLOAD/WHO:
declare -A TIMES  # wall seconds of each run, space-separated
declare -A RSS    # largest peak RSS over the runs, KiB
declare -A FAIL   # why the series has no figure
declare -A GROWTH # store growth over the bytes written, per run
declare -A LOG    # the log of the series' last run
declare -A LONG   # rep functions whose first run took LONG_RUN seconds or more
declare -A REPFAIL
CUR=
REP=
NLOG=0
status=0

# measure KEY CMD...: syncs, runs CMD with its output in a log, and records
# its wall time and peak RSS under KEY; on failure records why and returns 1.
measure() {
	local key=$1 log wall rc rss
	shift
	log=$logs/$((++NLOG))-${key//\//-}.log
	LOG[$key]=$log
	sync
	verbose "[timed] $(qcmd "$@")"
	"$helper" time "$work/wall" "$GNUTIME" -f %M -o "$work/rss" "$@" >"$log" 2>&1
	read -r wall rc <"$work/wall"
	rss=$(tail -n 1 "$work/rss" 2>/dev/null)
	if [ "$rc" != 0 ]; then
		FAIL[$key]="FAILED (exit $rc)"
		status=1
		printf '    %-34s FAILED (exit %s): %s\n' "$key" "$rc" "$(qcmd "$@")"
		tail -n 15 "$log" | sed 's/^/      | /'
		return 1
	fi
	TIMES[$key]+="$wall "
	case $rss in '' | *[!0-9]*) ;; *) [ "$rss" -gt "${RSS[$key]:-0}" ] && RSS[$key]=$rss ;; esac
	[ "$REP" = 1 ] && awk -v w="$wall" -v l="$LONG_RUN" 'BEGIN { exit !(w >= l) }' && LONG[$CUR]=1
	printf '    %-34s %8.3f s   peak RSS %6.1f MB\n' "$key" "$wall" "$(awk -v k="${rss:-0}" 'BEGIN { print k / 1024 }')"
}

# reps FN...: calls each FN REP once, then twice more unless its first run
# took LONG_RUN seconds or more, or it failed; the FNs take turns.
reps() {
	local fn
	for fn; do unset "LONG[$fn]" "REPFAIL[$fn]"; done
	for REP in 1 2 3; do
		for fn in "$@"; do
			[ -n "${REPFAIL[$fn]:-}" ] && continue
			[ "$REP" -gt 1 ] && [ -n "${LONG[$fn]:-}" ] && continue
			CUR=$fn
			"$fn" "$REP" || REPFAIL[$fn]=1
		done
	done
}

# fail KEY WHY records that series KEY has no figure.
fail() {
	FAIL[$1]=$2
	status=1
}

# no_cache_hit KEY: the build logged under KEY must not have used the cache
# (a cold build, or a rebuild whose only step was invalidated). A stage's
# FROM shows CACHED when its base is stored: that is no cache hit.
no_cache_hit() {
	if grep -vE '\] FROM ' "${LOG[$1]}" | grep -qE ' CACHED$|Using cache'; then
		fail "$1" "INVALID (a step was a cache hit; see the log)"
		sed 's/^/      | /' "${LOG[$1]}" | tail -n 20
		return 1
	fi
}

du_bytes() { du -s --block-size=1 "$1" | cut -f1; }

# ---- images --------------------------------------------------------------

# The busybox base image's root filesystem, its tar and its import are
# scripts/mkbase.sh's (--rootfs DIR, --tar TAR [DIR], BUILDER REF TAR).
mkbase=$here/mkbase.sh

# The base image's PATH, for Buildah's copy of it (mkbase.sh sets builder's).
PATH_ENV='ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin'

# new_store KEY makes a fresh store $D/store.N with busybox:latest imported
# and sets S to it; a failure is recorded under KEY.
NSTORE=0
new_store() {
	S=$D/store.$((++NSTORE))
	step env BUILDER_ROOT="$S" "$mkbase" "$BUILDER" busybox:latest "$work/busybox.tar" ||
		{ fail "$1" "FAILED (setup: builder import)"; return 1; }
}

# Buildah: its own storage root per run on the filesystem under test, the
# busybox image pulled from a docker-archive that Buildah made itself. BAH
# is the command line for the storage root BR.
set_bah() { BAH=(env "TMPDIR=$D/tmp" "$BUILDAH" --root "$BR" --runroot "$BR.run" --storage-driver overlay); }
new_buildah() {
	BR=$D/buildah.$((++NSTORE))
	set_bah
	step "${BAH[@]}" pull -q "docker-archive:$work/busybox-buildah.tar" ||
		{ fail "$1" "FAILED (setup: buildah pull)"; return 1; }
}
rm_buildah() {
	local m
	"${BAH[@]}" rm -a >/dev/null 2>&1
	for m in $(awk -v w="$BR" '$2 == w || index($2, w "/") == 1 { print length($2), $2 }' /proc/self/mounts | sort -rn | cut -d' ' -f2); do
		umount "$m" 2>/dev/null || umount -l "$m"
	done
	rm -rf --one-file-system "$BR" "$BR.run"
}
BUILDAH_BUD=(bud --isolation chroot --layers --pull=never)

setup_images() {
	echo "== making the busybox base image"
	if ! "$mkbase" --tar "$work/busybox.tar"; then
		die "making the busybox root filesystem"
	fi
	if [ -n "$BUILDAH" ]; then
		local D=$work BR=$work/buildah-seed ctr
		mkdir -p "$D/tmp"
		set_bah
		verbose "[setup] buildah from scratch, add busybox.tar, config, commit, push docker-archive"
		if ctr=$("${BAH[@]}" from scratch 2>"$logs/buildah-seed.log") &&
			"${BAH[@]}" add "$ctr" "$work/busybox.tar" / >>"$logs/buildah-seed.log" 2>&1 &&
			"${BAH[@]}" config --cmd /bin/sh --env "${PATH_ENV#ENV }" "$ctr" >>"$logs/buildah-seed.log" 2>&1 &&
			"${BAH[@]}" commit -q "$ctr" busybox:latest >>"$logs/buildah-seed.log" 2>&1 &&
			"${BAH[@]}" push -q busybox:latest "docker-archive:$work/busybox-buildah.tar:busybox:latest" >>"$logs/buildah-seed.log" 2>&1; then
			rm_buildah
		else
			rm_buildah
			sed 's/^/      | /' "$logs/buildah-seed.log"
			echo "    buildah cannot make the busybox image: its rows are left out"
			BUILDAH_BROKEN=1
		fi
	fi
}
BUILDAH_BROKEN=

# buildah_missing KEY... records why a Buildah series has no figure, and
# returns 0 if so.
buildah_missing() {
	local k why=
	if [ -z "$BUILDAH" ]; then
		why=$NO_BUILDAH
	elif [ -n "$BUILDAH_BROKEN" ]; then
		why="buildah unusable (see above)"
	else
		return 1
	fi
	for k; do FAIL[$k]=$why; done
}

# ---- filesystems ---------------------------------------------------------

declare -A FSDESC
# mount_fs FS mounts a fresh FS at $work/FS and sets MNT.
mount_fs() {
	MNT=$work/$1
	mkdir -p "$MNT"
	case $1 in
	tmpfs)
		step mount -t tmpfs -o "size=$FS_BYTES,mode=0755" tmpfs "$MNT" || return 1
		FSDESC[tmpfs]="tmpfs, size=$((FS_BYTES >> 20)) MiB, mounted at $MNT"
		;;
	ext4)
		step truncate -s "$FS_BYTES" "$work/ext4.img" &&
			step mkfs.ext4 -q -E lazy_itable_init=0,lazy_journal_init=0 "$work/ext4.img" &&
			step mount -o loop "$work/ext4.img" "$MNT" || return 1
		dumpe2fs -h "$work/ext4.img" 2>/dev/null | grep -q has_journal || die "mkfs.ext4 made no journal"
		FSDESC[ext4]="ext4 with a journal (data=ordered), $((FS_BYTES >> 20)) MiB sparse image on $(losetup -j "$work/ext4.img" | cut -d: -f1), mounted at $MNT"
		;;
	esac
	echo "== ${FSDESC[$1]}"
}

unmount_fs() {
	local dev
	sync
	umount "$MNT" || umount -l "$MNT"
	if [ "$1" = ext4 ]; then
		for dev in $(losetup -j "$work/ext4.img" | cut -d: -f1); do losetup -d "$dev"; done
		rm -f "$work/ext4.img"
	fi
	rmdir "$MNT"
}

# workload NAME: D is a fresh directory for it on the filesystem under test.
begin() {
	D=$MNT/$1
	mkdir -p "$D/tmp"
	echo "-- $FS: $1"
}
end() { rm -rf --one-file-system "$D"; }

# ---- 1. unpack -----------------------------------------------------------

wl_unpack() {
	begin unpack
	local k=$FS/unpack
	verbose "[setup] bench-helper.pl base: $N_SMALL small files and $LARGE_BYTES bytes of larger ones, and busybox, into base.tar"
	if ! { "$mkbase" --rootfs "$D/rootfs" && "$helper" base "$D/rootfs" "$N_SMALL" "$LARGE_BYTES" &&
		"$mkbase" --tar "$D/base.tar" "$D/rootfs"; }; then
		fail "$k/builder" "FAILED (making base.tar)"
		fail "$k/ref" "FAILED (making base.tar)"
		end
		return
	fi
	rm -rf "$D/rootfs"
	BASE_MB=$(find "$D/base.tar" -printf '%s' | awk '{ printf "%d", $1 / 1e6 + 0.5 }')
	mkdir -p "$D/ctx"
	printf 'FROM base:1\nRUN touch /x\n' >"$D/ctx/Dockerfile"
	reps unpack_ref unpack_builder
	end
}
unpack_ref() {
	mkdir "$D/ref"
	measure "$FS/unpack/ref" sh -c "tar -xf $(printf %q "$D/base.tar") -C $(printf %q "$D/ref") && sync"
	local rc=$?
	rm -rf "$D/ref"
	return "$rc"
}
unpack_builder() {
	local k=$FS/unpack/builder rc
	S=$D/store.$((++NSTORE))
	step "$BUILDER" import --root "$S" "$D/base.tar" base:1 || { fail "$k" "FAILED (setup: builder import)"; return 1; }
	measure "$k" "$BUILDER" build --root "$S" --progress plain -t first:1 "$D/ctx" && no_cache_hit "$k"
	rc=$?
	rm -rf "$S"
	return "$rc"
}

# ---- 2. copy -------------------------------------------------------------

wl_copy() {
	begin copy
	verbose "[setup] bench-helper.pl context: $N_CTX files"
	mkdir -p "$D/ctx"
	"$helper" context "$D/ctx/files" "$N_CTX" || {
		fail "$FS/copy/builder" "FAILED (making the context)"
		end
		return
	}
	printf 'FROM busybox\nCOPY files/ /app/\n' >"$D/ctx/Dockerfile"
	CHANGED=$(find "$D/ctx/files" -type f | sort | sed -n "$(((N_CTX + 1) / 2))p")
	buildah_missing "$FS/copy/buildah" "$FS/copy/buildah-rerun"
	local fns=(copy_ref copy_builder)
	[ -n "$BUILDAH" ] && [ -z "$BUILDAH_BROKEN" ] && fns+=(copy_buildah)
	reps "${fns[@]}"
	end
}
change_one_file() { printf 'edit %s\n' "$(date +%s.%N)" >>"$CHANGED"; }
copy_ref() {
	measure "$FS/copy/ref" sh -c "cp -a $(printf %q "$D/ctx/files") $(printf %q "$D/ref") && sync"
	local rc=$?
	rm -rf "$D/ref"
	return "$rc"
}
copy_builder() {
	local k=$FS/copy/builder rc=1
	new_store "$k" || return 1
	if measure "$k" "$BUILDER" build --root "$S" --progress plain -t copy:1 "$D/ctx" && no_cache_hit "$k"; then
		verbose "[setup] append a line to $CHANGED"
		change_one_file
		measure "$k-rerun" "$BUILDER" build --root "$S" --progress plain -t copy:1 "$D/ctx" && no_cache_hit "$k-rerun"
		rc=$?
	fi
	rm -rf "$S"
	return "$rc"
}
copy_buildah() {
	local k=$FS/copy/buildah rc=1
	new_buildah "$k" || return 1
	if measure "$k" "${BAH[@]}" "${BUILDAH_BUD[@]}" -t copy:1 "$D/ctx" && no_cache_hit "$k"; then
		verbose "[setup] append a line to $CHANGED"
		change_one_file
		measure "$k-rerun" "${BAH[@]}" "${BUILDAH_BUD[@]}" -t copy:1 "$D/ctx" && no_cache_hit "$k-rerun"
		rc=$?
	fi
	rm_buildah
	return "$rc"
}

# ---- 3. run --------------------------------------------------------------

wl_run() {
	begin run
	mkdir -p "$D/ctx"
	printf 'FROM busybox\nRUN head -c %s /dev/urandom > /big\n' "$RUN_BYTES" >"$D/ctx/Dockerfile"
	buildah_missing "$FS/run/buildah"
	local fns=(run_ref run_builder)
	[ -n "$BUILDAH" ] && [ -z "$BUILDAH_BROKEN" ] && fns+=(run_buildah)
	reps "${fns[@]}"
	end
}
run_ref() {
	measure "$FS/run/ref" sh -c "head -c $RUN_BYTES /dev/urandom > $(printf %q "$D/ref") && sync"
	local rc=$?
	rm -f "$D/ref"
	return "$rc"
}
# growth KEY DIR BEFORE records DIR's growth since BEFORE over RUN_BYTES.
growth() {
	local after
	after=$(du_bytes "$2")
	verbose "[du] $2: $3 bytes before the build, $after after"
	GROWTH[$1]+="$(awk -v a="$after" -v b="$3" -v n="$RUN_BYTES" 'BEGIN { print (a - b) / n }') "
}
run_builder() {
	local k=$FS/run/builder before rc
	new_store "$k" || return 1
	before=$(du_bytes "$S")
	measure "$k" "$BUILDER" build --root "$S" --progress plain -t big:1 "$D/ctx" && no_cache_hit "$k" && growth "$k" "$S" "$before"
	rc=$?
	rm -rf "$S"
	return "$rc"
}
run_buildah() {
	local k=$FS/run/buildah before rc
	new_buildah "$k" || return 1
	before=$(du_bytes "$BR")
	measure "$k" "${BAH[@]}" "${BUILDAH_BUD[@]}" -t big:1 "$D/ctx" && no_cache_hit "$k" && growth "$k" "$BR" "$before"
	rc=$?
	rm_buildah
	return "$rc"
}

# ---- 4. stages -----------------------------------------------------------

wl_stages() {
	begin stages
	mkdir -p "$D/ctx"
	cat >"$D/ctx/Dockerfile" <<-'EOF'
		FROM busybox AS a
		RUN sleep 2 && echo a > /a
		FROM busybox AS b
		RUN sleep 2 && echo b > /b
		FROM busybox AS c
		RUN sleep 2 && echo c > /c
		FROM busybox
		COPY --from=a /a /a
		COPY --from=b /b /b
		COPY --from=c /c /c
	EOF
	buildah_missing "$FS/stages/buildah" "$FS/stages/buildah-j3"
	local fns=(stages_builder stages_builder_j3)
	[ -n "$BUILDAH" ] && [ -z "$BUILDAH_BROKEN" ] && fns+=(stages_buildah stages_buildah_j3)
	reps "${fns[@]}"
	end
}
stages_build() {
	local k=$1 rc
	shift
	new_store "$k" || return 1
	measure "$k" "$BUILDER" build --root "$S" --progress plain "$@" -t stages:1 "$D/ctx" && no_cache_hit "$k"
	rc=$?
	rm -rf "$S"
	return "$rc"
}
stages_builder() { stages_build "$FS/stages/builder"; }
stages_builder_j3() { stages_build "$FS/stages/builder-j3" --jobs 3; }
stages_bud() {
	local k=$1 rc
	shift
	new_buildah "$k" || return 1
	measure "$k" "${BAH[@]}" "${BUILDAH_BUD[@]}" "$@" -t stages:1 "$D/ctx" && no_cache_hit "$k"
	rc=$?
	rm_buildah
	return "$rc"
}
stages_buildah() { stages_bud "$FS/stages/buildah"; }
stages_buildah_j3() { stages_bud "$FS/stages/buildah-j3" --jobs 3; }

# ---- 5. export -----------------------------------------------------------

# COMPRESSION is save's compression flag, if it has one.
COMPRESSION=$("$BUILDER" save --help 2>&1 | grep -o -- '--compression[a-z-]*' | head -n 1)

# layer_types ARCHIVE prints the media types of the layers an OCI archive's
# manifests name.
layer_types() {
	local name
	tar -tvf "$1" | awk '$3 < 65536 && $6 ~ /^blobs\// { print $6 }' | while read -r name; do
		tar -xOf "$1" "$name" | grep -ao '"application/vnd\.oci\.image\.layer[^"]*"'
	done | tr -d '"' | sort -u | paste -sd' '
}

wl_export() {
	begin export
	local k=$FS/export s
	mkdir -p "$D/ctx"
	printf 'FROM busybox\nRUN head -c %s /dev/urandom > /big\n' "$RUN_BYTES" >"$D/ctx/Dockerfile"
	new_store "$k/builder" || {
		FAIL[$k/builder-gzip]=${FAIL[$k/builder]}
		FAIL[$k/builder-zstd]=${FAIL[$k/builder]}
		end
		return
	}
	S0=$S
	step "$BUILDER" build --root "$S0" --progress plain -t export:1 "$D/ctx" || {
		for s in builder builder-gzip builder-zstd; do fail "$k/$s" "FAILED (setup: building the image)"; done
		end
		return
	}
	LAYER=
	reps export_plain
	local fns=()
	if [ -n "$LAYER" ]; then
		fns+=(export_ref_cp export_ref_pigz export_ref_zstd)
	else
		for s in ref-cp ref-pigz ref-zstd; do fail "$k/$s" "no layer (the uncompressed save failed)"; done
	fi
	if [ -n "$COMPRESSION" ]; then
		fns+=(export_gzip export_zstd)
	else
		FAIL[$k/builder-gzip]="not supported by this builder"
		FAIL[$k/builder-zstd]="not supported by this builder"
	fi
	[ ${#fns[@]} -gt 0 ] && reps "${fns[@]}"
	end
}
# export_plain: the first run's archive gives the references their input,
# the layer's bytes.
export_plain() {
	local k=$FS/export/builder name
	measure "$k" "$BUILDER" save --root "$S0" --format oci -o "$D/out.tar" export:1 || return 1
	if [ -z "$LAYER" ]; then
		verbose "[setup] the archive's layers: $(layer_types "$D/out.tar")"
		name=$(tar -tvf "$D/out.tar" | awk '$6 ~ /^blobs\// { print $3, $6 }' | sort -n | tail -n 1 | cut -d' ' -f2)
		step tar -xf "$D/out.tar" -C "$D" "$name" && mv "$D/$name" "$D/layer" && LAYER=$D/layer
		verbose "[setup] reference input: $name, $(find "$LAYER" -printf '%s') bytes"
	fi
	rm -f "$D/out.tar"
}
# export_compressed ALG: each run gets a copy of the store, since a store
# keeps a layer's compressed blob for the next export.
export_compressed() {
	local k=$FS/export/builder-$1 types rc
	S=$D/store.copy
	step cp -a "$S0" "$S" || { fail "$k" "FAILED (setup: copying the store)"; return 1; }
	measure "$k" "$BUILDER" save --root "$S" --format oci "$COMPRESSION" "$1" -o "$D/out.tar" export:1
	rc=$?
	if [ "$rc" = 0 ]; then
		types=$(layer_types "$D/out.tar")
		verbose "[check] layers of the $1 archive: $types; $(find "$D/out.tar" -printf '%s') bytes"
		case $types in *"+$1"*) ;; *) fail "$k" "INVALID (layers are $types)" && rc=1 ;; esac
	fi
	rm -rf "$S" "$D/out.tar"
	return "$rc"
}
export_gzip() { export_compressed gzip; }
export_zstd() { export_compressed zstd; }
export_ref() {
	local k=$1 rc
	measure "$k" sh -c "$2 && sync"
	rc=$?
	rm -f "$D/ref"
	return "$rc"
}
export_ref_cp() { export_ref "$FS/export/ref-cp" "cp $(printf %q "$LAYER") $(printf %q "$D/ref")"; }
export_ref_pigz() { export_ref "$FS/export/ref-pigz" "pigz -c $(printf %q "$LAYER") > $(printf %q "$D/ref")"; }
export_ref_zstd() { export_ref "$FS/export/ref-zstd" "zstd -q -T0 -c $(printf %q "$LAYER") > $(printf %q "$D/ref")"; }

# ---- the table -----------------------------------------------------------

median() { tr ' ' '\n' | grep . | sort -g | awk '{ v[NR] = $1 } END { if (NR) print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }
runs() { echo "${TIMES[$1]:-}" | wc -w; }

# secs KEY prints the series' median wall time, or why there is none.
secs() {
	local n
	if [ -n "${FAIL[$1]:-}" ]; then
		echo "${FAIL[$1]}"
	elif [ -n "${TIMES[$1]:-}" ]; then
		n=$(runs "$1")
		printf '%.2f s%s' "$(echo "${TIMES[$1]}" | median)" "$([ "$n" = 3 ] || echo " ($n run$([ "$n" = 1 ] || echo s))")"
	else
		echo "not measured"
	fi
}
num() { [ -z "${FAIL[$1]:-}" ] && [ -n "${TIMES[$1]:-}" ] && echo "${TIMES[$1]}" | median; }

ROWS=$work/rows
# row FS WORKLOAD FIGURE REFNAME REF RATIO GOAL VERDICT
row() { printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$@" >>"$ROWS"; }
ratio() { [ -n "$1" ] && [ -n "$2" ] && awk -v a="$1" -v b="$2" 'BEGIN { if (b > 0) printf "%.2f", a / b }'; }
# verdict VALUE OP LIMIT
verdict() {
	[ -n "$1" ] || return 0
	awk -v v="$1" -v l="$3" -v op="$2" 'BEGIN { ok = (op == "<") ? v < l : v <= l; print ok ? "meets" : "MISSES" }'
}

# time_row FS LABEL KEY REFNAME REFKEY|=SECONDS [GOALKIND OP LIMIT], where
# GOALKIND is ratio (figure/reference) or abs (the figure itself).
time_row() {
	local fs=$1 label=$2 key=$3 refname=$4 ref=$5 kind=${6:-} op=${7:-} limit=${8:-}
	local fig refv refs r v=
	fig=$(num "$key")
	if [ "${ref:0:1}" = = ]; then
		refv=${ref#=}
		refs=$(printf '%.2f s' "$refv")
	else
		refv=$(num "$ref")
		refs=$(secs "$ref")
	fi
	r=$(ratio "$fig" "$refv")
	case $kind in
	ratio) v=$(verdict "$r" "$op" "$limit") ;;
	abs) v=$(verdict "$fig" "$op" "$limit") ;;
	esac
	local goal=
	[ -n "$kind" ] && goal="$([ "$kind" = ratio ] && echo "ratio ")$op $limit$([ "$kind" = abs ] && echo " s")"
	row "$fs" "$label" "$(secs "$key")" "$refname" "$refs" "${r:--}" "${goal:--}" "${v:-}"
}

rss_row() {
	local fs=$1 label=$2 key=$3 mb='' fig=${FAIL[$3]:-not measured}
	if [ -n "${RSS[$key]:-}" ]; then
		mb=$(awk -v k="${RSS[$key]}" 'BEGIN { printf "%.1f", k / 1024 }')
		fig="$mb MB"
	fi
	row "$fs" "$label" "$fig" "-" "-" "-" "< 100 MB" "$(verdict "$mb" "<" 100)"
}

growth_row() {
	local fs=$1 key=$2 ref=$3 g='' rg='' figs refs r
	[ -n "${GROWTH[$key]:-}" ] && g=$(echo "${GROWTH[$key]}" | median)
	[ -n "${GROWTH[$ref]:-}" ] && rg=$(echo "${GROWTH[$ref]}" | median)
	figs=${g:+$(printf '%.2f x' "$g")}
	refs=${rg:+$(printf '%.2f x' "$rg")}
	r=$(ratio "$g" "$rg")
	row "$fs" "3 store growth / bytes written" "${figs:-${FAIL[$key]:-not measured}}" "buildah storage growth" \
		"${refs:-${FAIL[$ref]:-not measured}}" "${r:--}" "<= 1.1 x" "$(verdict "$g" "<=" 1.1)"
}

only() { case ",$ONLY," in *",$1,"*) return 0 ;; esac; return 1; }

table_rows() {
	local fs=$1 c
	if only unpack; then
		time_row "$fs" "1 first build, $N_SMALL-file base (${BASE_MB:-?} MB tar)" "$fs/unpack/builder" "tar -xf && sync" "$fs/unpack/ref" ratio "<=" 1.3
	fi
	if only copy; then
		time_row "$fs" "2 COPY $N_CTX files, cold" "$fs/copy/builder" "cp -a && sync" "$fs/copy/ref"
		time_row "$fs" "2 COPY $N_CTX files, cold" "$fs/copy/builder" "buildah bud --layers" "$fs/copy/buildah"
		time_row "$fs" "2 COPY re-run, 1 file changed" "$fs/copy/builder-rerun" "cp -a && sync" "$fs/copy/ref"
		time_row "$fs" "2 COPY re-run, 1 file changed" "$fs/copy/builder-rerun" "buildah bud --layers" "$fs/copy/buildah-rerun"
	fi
	if only run; then
		time_row "$fs" "3 RUN writing $RUN_MB MB, cold" "$fs/run/builder" "head -c > file && sync" "$fs/run/ref"
		time_row "$fs" "3 RUN writing $RUN_MB MB, cold" "$fs/run/builder" "buildah bud --layers" "$fs/run/buildah"
		growth_row "$fs" "$fs/run/builder" "$fs/run/buildah"
	fi
	if only stages; then
		time_row "$fs" "4 three 2 s stages, cold" "$fs/stages/builder" "ideal" "=2" abs "<" 2.6
		time_row "$fs" "4 three 2 s stages, cold" "$fs/stages/builder" "buildah bud --layers" "$fs/stages/buildah" abs "<" 2.6
		time_row "$fs" "4 three 2 s stages, --jobs 3" "$fs/stages/builder-j3" "buildah bud --layers --jobs 3" "$fs/stages/buildah-j3" abs "<" 2.6
	fi
	if only export; then
		time_row "$fs" "5 save --format oci, uncompressed" "$fs/export/builder" "cp of the layer && sync" "$fs/export/ref-cp"
		time_row "$fs" "5 save --format oci, gzip" "$fs/export/builder-gzip" "pigz -c && sync" "$fs/export/ref-pigz" ratio "<=" 1.0
		time_row "$fs" "5 save --format oci, zstd" "$fs/export/builder-zstd" "zstd -T0 -c && sync" "$fs/export/ref-zstd" ratio "<=" 1.5
	fi
	if only unpack; then rss_row "$fs" "6 peak RSS: 1 first build" "$fs/unpack/builder"; fi
	if only run; then rss_row "$fs" "6 peak RSS: 3 RUN $RUN_MB MB" "$fs/run/builder"; fi
	if only export; then
		for c in "" -gzip -zstd; do
			rss_row "$fs" "6 peak RSS: 5 save${c:+ ${c#-}}" "$fs/export/builder$c"
		done
	fi
}

print_table() {
	local fs
	for fs in ${FSLIST//,/ }; do
		printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' filesystem workload builder reference "ref. figure" ratio goal verdict >"$ROWS"
		table_rows "$fs"
		echo
		echo "$fs: ${FSDESC[$fs]:-not mounted}"
		awk -F'\t' '
			{ for (i = 2; i <= NF; i++) { cell[NR, i] = $i; if (length($i) > w[i]) w[i] = length($i) } }
			END {
				for (r = 1; r <= NR; r++) {
					line = ""
					for (i = 2; i <= 8; i++) line = line sprintf("%-" w[i] "s  ", cell[r, i])
					sub(/ +$/, "", line)
					print "  " line
				}
			}' "$ROWS"
	done
}

# ---- main ----------------------------------------------------------------

RUN_MB=$(awk -v b="$RUN_BYTES" 'BEGIN { printf "%g", b / 1e6 }')
BASE_MB=
echo "builder workloads: $ONLY on $FSLIST, BENCH_SCALE=$SCALE (base: $N_SMALL small files + $LARGE_BYTES bytes; COPY: $N_CTX files; RUN: $RUN_BYTES bytes)"
echo "binary: $BUILDER; work directory: $work"
load=$(cut -d' ' -f1 /proc/loadavg)
echo "load average (1 min): $load on $(nproc) CPUs"
awk -v l="$load" 'BEGIN { exit !(l >= 1) }' && echo "WARNING: the machine is busy; other processes will skew the figures"
if [ -n "$BUILDAH" ]; then
	echo "buildah: $("$BUILDAH" --version)"
else
	echo "buildah: $NO_BUILDAH (its rows say so)"
fi
if [ -n "$COMPRESSION" ]; then
	echo "builder save compresses with $COMPRESSION"
else
	echo "builder save has no --compression: the gzip and zstd rows say so"
fi
setup_images

for FS in ${FSLIST//,/ }; do
	mount_fs "$FS" || {
		status=1
		continue
	}
	for w in ${ONLY//,/ }; do
		"wl_$w"
	done
	unmount_fs "$FS"
done

echo
echo "== results (median of 3 runs where a run took < ${LONG_RUN} s; ratio = builder / reference)"
print_table
ended=$(perl -MTime::HiRes=clock_gettime,CLOCK_MONOTONIC -e 'print clock_gettime(CLOCK_MONOTONIC)')
echo
echo "Wall times on CLOCK_MONOTONIC, each after a sync; references end with sync, builder commands are timed as run."
echo "Peak RSS: ru_maxrss of the builder process and the descendants it waited for, from GNU time (/usr/bin/time -f %M)."
echo "Load average (1 min) at the end: $(cut -d' ' -f1 /proc/loadavg) (at the start: $load)."
echo "Workloads took $(awk -v a="$started" -v b="$ended" 'BEGIN { printf "%.0f", b - a }') s."
exit $status
