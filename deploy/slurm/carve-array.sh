#!/usr/bin/env bash
# carve-array.sh: one task of a Slurm job array carves one shard of the
# evidence into a case directory all the tasks share. Once the finished
# shards cover the image they are merged, giving exactly what one carve
# of the whole image gives; then run rebuild.sh (submit.sh queues both).
#
#   IMAGE=/evidence/disk.dd CASE=/shared/cases/disk SHARDS=16 \
#     sbatch --array=0-15 deploy/slurm/carve-array.sh
#
# Environment (sbatch passes the submitter's on):
#   IMAGE        the evidence image or device, read-only on every node (required)
#   CASE         the case directory, on storage every node sees with
#                working file locks (NFSv4, CephFS, Lustre mounted -o flock)
#                (required)
#   SHARDS       N, the number of shards; the array must be --array=0-(N-1)
#                (default: the array's task count)
#   CARVE        the carve binary (default: carve on PATH)
#   CARVE_FLAGS  more carve flags, split on spaces (e.g. "--chunk 16M")
#
# A task that fails or is preempted resumes from its last checkpoint
# when run again (sbatch --requeue, or resubmit the array): the other
# shards are not redone.
#SBATCH --job-name=vmdkcarve-carve
#SBATCH --cpus-per-task=2
#SBATCH --output=vmdkcarve-carve-%A_%a.out
set -euo pipefail

: "${IMAGE:?set IMAGE to the evidence image}"
: "${CASE:?set CASE to the shared case directory}"
: "${SLURM_ARRAY_TASK_ID:?run this as a job array: sbatch --array=0-(N-1) $0}"
SHARDS=${SHARDS:-${SLURM_ARRAY_TASK_COUNT:?}}
CARVE=${CARVE:-carve}
read -r -a flags <<<"${CARVE_FLAGS:-}"

# carve --shard auto/N checks the array against N and picks this task's
# shard from SLURM_ARRAY_TASK_ID; one worker per CPU Slurm gave the task.
exec "$CARVE" --shard "auto/$SHARDS" --workers "${SLURM_CPUS_PER_TASK:-0}" --progress plain \
  "${flags[@]}" -o "$CASE" "$IMAGE"
