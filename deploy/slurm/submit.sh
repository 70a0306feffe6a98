#!/usr/bin/env bash
# submit.sh: carve IMAGE into CASE as N shards on Slurm, then rebuild.
#
#   deploy/slurm/submit.sh [--wait] IMAGE CASE N
#
# Queues carve-array.sh as a job array of N tasks (one shard each) and
# rebuild.sh behind it (afterok: it runs once every shard succeeded, and
# is cancelled if one failed). Prints both job IDs. With --wait it returns
# only when the rebuild has ended: 0 if it completed, else non-zero (a
# shard failed and cancelled it, or the rebuild itself failed).
#
# Environment:
#   CARVE, CARVE_FLAGS, REBUILD, REBUILD_FLAGS
#                 passed to the jobs (see carve-array.sh and rebuild.sh)
#   SBATCH_FLAGS  more sbatch flags for both jobs, split on spaces
#                 (e.g. "--partition=forensics --account=lab")
#   LOGDIR        where the jobs' output goes (default: the current
#                 directory), as vmdkcarve-carve-JOB_TASK.out and
#                 vmdkcarve-rebuild-JOB.out
set -euo pipefail

usage() {
  echo "usage: $0 [--wait] IMAGE CASE N" >&2
  exit 2
}
wait=()
if [ "${1:-}" = --wait ]; then
  wait=(--wait)
  shift
fi
[ $# -eq 3 ] || usage
[[ $3 =~ ^[1-9][0-9]*$ ]] || { echo "$0: N must be a whole number of 1 or more, not '$3'" >&2; usage; }
[ -r "$1" ] || { echo "$0: cannot read the evidence $1" >&2; exit 1; }

here=$(cd "$(dirname "$0")" && pwd)
# Absolute paths: a job may start in another directory than this one.
IMAGE=$(realpath "$1")
CASE=$(realpath -m "$2")
SHARDS=$3
LOGDIR=$(realpath -m "${LOGDIR:-.}")
mkdir -p "$LOGDIR"
read -r -a extra <<<"${SBATCH_FLAGS:-}"
# The jobs get this environment (sbatch's default --export=ALL), so paths
# with commas, which --export=NAME=VALUE cannot carry, are fine.
export IMAGE CASE SHARDS

carve=$(sbatch --parsable "${extra[@]}" --array="0-$((SHARDS - 1))" \
  --output="$LOGDIR/vmdkcarve-carve-%A_%a.out" "$here/carve-array.sh")
carve=${carve%%;*} # --parsable prints JOBID[;CLUSTER]
echo "carve:   job array $carve, $SHARDS shards of $IMAGE into $CASE"

status=0
rebuild=$(sbatch --parsable "${extra[@]}" "${wait[@]}" --dependency="afterok:$carve" --kill-on-invalid-dep=yes \
  --output="$LOGDIR/vmdkcarve-rebuild-%j.out" "$here/rebuild.sh") || status=$?
rebuild=${rebuild%%;*}
echo "rebuild: job $rebuild, queued to run once every shard of $carve has succeeded"
[ ${#wait[@]} -gt 0 ] || exit "$status"

# sbatch --wait exits 0 for a job that never ran, as the rebuild does when
# a failed shard cancels it: its end state says.
state=$(scontrol show job -o "$rebuild" 2>/dev/null | grep -o 'JobState=[A-Z_]*' | cut -d= -f2) ||
  state=$(sacct -n -X -P -j "$rebuild" -o State 2>/dev/null | head -n 1) || state=
if [ "$status" -eq 0 ] && [ "$state" != COMPLETED ]; then
  status=1
fi
if [ "$status" -ne 0 ]; then
  echo "$0: the rebuild job $rebuild ended ${state:-in a state Slurm no longer knows} (exit status $status): a shard or the rebuild failed; see the jobs' output in $LOGDIR" >&2
fi
exit "$status"
