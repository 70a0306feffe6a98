#!/usr/bin/env bash
# Times carve on a generated image against `cat IMAGE >/dev/null` on the same
# file. Usage: scripts/bench.sh [SIZE] (default 2G). The image lives in a
# temp dir (or $BENCH_DIR) and is removed afterwards unless $KEEP is set.
# Both are timed with a warm page cache (each file is read once first), so
# the figure compares CPU cost per byte, not the disk.
set -euo pipefail
cd "$(dirname "$0")/.."
size=${1:-2G}
work=${BENCH_DIR:-$(mktemp -d -t vmdkcarve-bench.XXXXXX)}
[ -n "${KEEP:-}" ] || trap 'rm -rf "$work"' EXIT
mkdir -p "$work/bin"
go build -o "$work/bin/" ./cmd/carve ./cmd/corpus
"$work/bin/corpus" -o "$work/evidence" --scenario bench --size "$size" >/dev/null
img=$work/evidence/image.dd
bytes=$(stat -c %s "$img")
cat "$img" >/dev/null

seconds() { local s e; s=$(date +%s.%N); "$@" >/dev/null 2>&1; e=$(date +%s.%N); echo "$e - $s" | bc -l; }
mbps() { echo "scale=0; $bytes / $1 / 1000000" | bc -l; }

t_cat=$(seconds sh -c "cat '$img' >/dev/null")
t_carve_nohash=$(seconds "$work/bin/carve" --progress none --hash none -o "$work/case-nohash" "$img")
t_carve=$(seconds "$work/bin/carve" --progress none -o "$work/case" "$img")
printf 'image                %s bytes, %s CPUs\n' "$bytes" "$(nproc)"
printf 'cat >/dev/null       %6.2f s  %6s MB/s\n' "$t_cat" "$(mbps "$t_cat")"
printf 'carve --hash none    %6.2f s  %6s MB/s  (%.2fx cat)\n' "$t_carve_nohash" "$(mbps "$t_carve_nohash")" "$(echo "$t_cat / $t_carve_nohash" | bc -l)"
printf 'carve (sha256)       %6.2f s  %6s MB/s  (%.2fx cat)\n' "$t_carve" "$(mbps "$t_carve")" "$(echo "$t_cat / $t_carve" | bc -l)"
