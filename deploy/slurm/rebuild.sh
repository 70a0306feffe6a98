#!/usr/bin/env bash
# rebuild.sh: the Slurm job that rebuilds the disks of a case once every
# shard of carve-array.sh has finished. Queue it behind the array:
#
#   CASE=/shared/cases/disk sbatch --dependency=afterok:ARRAY_JOB_ID \
#     --kill-on-invalid-dep=yes deploy/slurm/rebuild.sh
#
# Environment:
#   CASE           the case directory the array carved into (required)
#   REBUILD        the rebuild binary (default: rebuild on PATH)
#   REBUILD_FLAGS  more rebuild flags, split on spaces (e.g. "--format raw")
#
# rebuild exits 3 when it finished but recovered nothing: the job then
# shows as failed, which is what a lab wants to notice.
#SBATCH --job-name=vmdkcarve-rebuild
#SBATCH --cpus-per-task=2
#SBATCH --output=vmdkcarve-rebuild-%j.out
set -euo pipefail

: "${CASE:?set CASE to the case directory}"
REBUILD=${REBUILD:-rebuild}
read -r -a flags <<<"${REBUILD_FLAGS:-}"

exec "$REBUILD" --progress plain "${flags[@]}" "$CASE"
