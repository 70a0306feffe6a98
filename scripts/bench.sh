#!/usr/bin/env bash
# Times carve and rebuild on a generated image, side by side in one run
# with the baselines they are judged against: `cat IMAGE >/dev/null` (the
# cost of reading) and a plain Go hash pass over the same file
# (internal/benchtools/hashpass, the cost of hashing alone).
#
# Usage: scripts/bench.sh [SIZE]      (default 2G)
#   SPARSE=256G scripts/bench.sh 512M  also carves a SPARSE-byte sparse file
#                                      holding the image at 40% of it
#   NOPHOTOREC=1 leaves PhotoRec out (minutes of CPU on a few GiB)
# The image lives in a temp dir (or $BENCH_DIR) and is removed afterwards
# unless $KEEP is set. Everything is timed with a warm page cache (each
# file is read once first), so the figures compare CPU cost per byte, not
# the disk. On a shared machine, REPEAT=N times each command N times and
# keeps the fastest run; the CPU seconds (user + sys) of the main lines say
# what the wall seconds cannot while others run.
set -euo pipefail
cd "$(dirname "$0")/.."
size=${1:-2G}
work=${BENCH_DIR:-$(mktemp -d -t vmdkcarve-bench.XXXXXX)}
[ -n "${KEEP:-}" ] || trap 'rm -rf "$work"' EXIT
mkdir -p "$work/bin"
go build -o "$work/bin/" ./cmd/carve ./cmd/rebuild ./cmd/corpus ./internal/benchtools/hashpass
b=$work/bin
"$b/corpus" -o "$work/evidence" --scenario bench --size "$size" >/dev/null
img=$work/evidence/image.dd
bytes=$(stat -c %s "$img")
cat "$img" >/dev/null

# seconds CMD...: wall seconds of the fastest of $REPEAT runs (default 1),
# with $CLEAN (paths) removed before each; that run's RSS in KiB in
# $work/rss and its CPU seconds in $work/cpu.
seconds() {
  local s e t best="" rss u sy
  for _ in $(seq "${REPEAT:-1}"); do
    # shellcheck disable=SC2086 # CLEAN is a list of paths
    [ -z "${CLEAN:-}" ] || rm -rf $CLEAN
    # What the last run and the removal left for the disk is written now,
    # not during the next run.
    sync
    s=$(date +%s.%N)
    /usr/bin/time -f '%M %U %S' -o "$work/time" "$@" >/dev/null 2>&1
    e=$(date +%s.%N)
    t=$(echo "$e - $s" | bc -l)
    if [ -z "$best" ] || [ "$(echo "$t < $best" | bc -l)" = 1 ]; then
      best=$t
      read -r rss u sy < <(tail -1 "$work/time")
      echo "$rss" >"$work/rss"
      echo "$u + $sy" | bc -l >"$work/cpu"
    fi
  done
  echo "$best"
}
cpu() { cat "$work/cpu"; }
mbps() { echo "scale=0; $bytes / $1 / 1000000" | bc -l; }
ratio() { echo "$1 / $2" | bc -l; }

t_cat=$(seconds sh -c "cat '$img' >/dev/null"); c_cat=$(cpu)
t_sha=$(seconds "$b/hashpass" -hash sha256 "$img")
t_all=$(seconds "$b/hashpass" -hash md5,sha1,sha256 "$img")
t_none=$(CLEAN=$work/c0 seconds "$b/carve" --progress none --hash none -o "$work/c0" "$img"); rss_none=$(cat "$work/rss"); c_none=$(cpu)
t_carve=$(CLEAN=$work/c1 seconds "$b/carve" --progress none -o "$work/c1" "$img"); c_carve=$(cpu)
t_carve_all=$(CLEAN=$work/c2 seconds "$b/carve" --progress none --hash md5,sha1,sha256 -o "$work/c2" "$img")
# Each rebuild is of the case as carve left it: what an earlier one wrote
# is removed first (a --force rebuild also pays for deleting the disks it
# replaces, as the kernel frees their blocks).
c1=$work/c1
t_rebuild=$(CLEAN="$c1/disks $c1/plans $c1/report.dfxml $c1/report.html $c1/findings.json" seconds "$b/rebuild" --force "$c1"); rss_rebuild=$(cat "$work/rss"); c_rebuild=$(cpu)

t_photorec=""
if [ -z "${NOPHOTOREC:-}" ] && command -v photorec >/dev/null; then
  # PhotoRec (Debian testdisk), VMDK files only, over the whole image;
  # once (minutes of CPU), whatever REPEAT says.
  rm -rf "$work/pr"; mkdir -p "$work/pr"
  t_photorec=$(cd "$work/pr" && REPEAT=1 seconds photorec /log /d "$work/pr/out" /cmd "$img" partition_none,fileopt,everything,disable,vmdk,enable,search)
fi

printf 'image                          %s bytes, %s CPUs\n' "$bytes" "$(nproc)"
printf 'cat >/dev/null                 %6.2f s  %6s MB/s  %.2f CPU-s\n' "$t_cat" "$(mbps "$t_cat")" "$c_cat"
printf 'Go SHA-256 pass                %6.2f s  %6s MB/s\n' "$t_sha" "$(mbps "$t_sha")"
printf 'Go MD5+SHA-1+SHA-256 pass      %6.2f s  %6s MB/s\n' "$t_all" "$(mbps "$t_all")"
printf 'carve --hash none              %6.2f s  %6s MB/s  %.2fx cat, %s KiB RSS, %.2f CPU-s\n' "$t_none" "$(mbps "$t_none")" "$(ratio "$t_cat" "$t_none")" "$rss_none" "$c_none"
printf 'carve (sha256)                 %6.2f s  %6s MB/s  %.2fx the SHA-256 pass, %.2f CPU-s\n' "$t_carve" "$(mbps "$t_carve")" "$(ratio "$t_carve" "$t_sha")" "$c_carve"
printf 'carve --hash md5,sha1,sha256   %6.2f s  %6s MB/s  %.2fx the three-hash pass\n' "$t_carve_all" "$(mbps "$t_carve_all")" "$(ratio "$t_carve_all" "$t_all")"
printf 'rebuild                        %6.2f s  %.2fx carve (sha256), %.2fx carve --hash none, %s KiB RSS, %.2f CPU-s\n' "$t_rebuild" "$(ratio "$t_rebuild" "$t_carve")" "$(ratio "$t_rebuild" "$t_none")" "$rss_rebuild" "$c_rebuild"
# What rebuild cannot do without: the SHA-256 of the disks it writes (its
# report records them), on one core, as a plain pass over those files.
out_bytes=$(cat "$c1"/disks/*.vmdk | wc -c)
t_outsha=$(seconds sh -c "cat '$c1'/disks/*.vmdk | '$b/hashpass' -hash sha256 /dev/stdin")
printf '  SHA-256 pass over its output  %6.2f s  (%s bytes of disks written: %.2fx carve)\n' "$t_outsha" "$out_bytes" "$(ratio "$t_outsha" "$t_carve")"
# And what the disk itself asks: writing those bytes durably, as rebuild
# does (past the page cache, then fsync), with dd.
t_outwrite=$(CLEAN=$work/outwrite seconds sh -c "cat '$c1'/disks/*.vmdk | dd of='$work/outwrite' bs=4M iflag=fullblock oflag=direct conv=fsync status=none")
rm -f "$work/outwrite"
printf '  writing its output (dd, O_DIRECT, fsync) %6.2f s  (%.2fx carve)\n' "$t_outwrite" "$(ratio "$t_outwrite" "$t_carve")"

if [ -n "$t_photorec" ]; then
  printf 'photorec (vmdk only)           %6.2f s  %6s MB/s  %.2fx cat\n' "$t_photorec" "$(mbps "$t_photorec")" "$(ratio "$t_cat" "$t_photorec")"
fi

if [ -n "${SPARSE:-}" ]; then
  sp=$work/sparse.dd
  truncate -s "$SPARSE" "$sp"
  at=$(( $(stat -c %s "$sp") / 10 * 4 / 1048576 ))
  dd if="$img" of="$sp" bs=1M seek="$at" conv=notrunc,sparse status=none
  t_sparse=$(CLEAN=$work/cs seconds "$b/carve" --progress none --hash none -o "$work/cs" "$sp"); rss_sparse=$(cat "$work/rss")
  printf 'sparse %s (%s of data)  carve --hash none %6.2f s, %s KiB RSS, case %s\n' "$SPARSE" "$(du -h "$sp" | cut -f1)" "$t_sparse" "$rss_sparse" "$(du -sh "$work/cs" | cut -f1)"
fi

# E01 input: the same image as an EWF-E01 set (ewfacquire, deflate fast),
# made once and kept beside it (reused while $BENCH_DIR is kept), carved
# with --hash none next to the raw carve above.
if command -v ewfacquire >/dev/null; then
  e01=$work/e01-$bytes/image
  if [ ! -e "$e01.E01" ]; then
    mkdir -p "$work/e01-$bytes"
    ewfacquire -u -q -t "$e01" -c deflate:fast -f encase6 "$img" >/dev/null
  fi
  cat "$e01".E* >/dev/null
  t_e01=$(CLEAN=$work/ce seconds "$b/carve" --progress none --hash none -o "$work/ce" "$e01.E01"); rss_e01=$(cat "$work/rss")
  printf 'carve --hash none of an E01    %6.2f s  %6s MB/s  %.2fx the raw carve, %s KiB RSS (%s in %s segments)\n' "$t_e01" "$(mbps "$t_e01")" "$(ratio "$t_none" "$t_e01")" "$rss_e01" "$(du -ch "$e01".E* | tail -1 | cut -f1)" "$(ls "$e01".E* | wc -l)"
fi
