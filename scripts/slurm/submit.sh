#!/bin/bash
# Submit a sweep as a Slurm job array (one task per job of the plan) plus the dependent
# merge + report job. Extra arguments go to every `ntlb sweep` task.
#
#   scripts/slurm/submit.sh configs/imagenet-full.toml --data /data --checkpoints /ckpt --device cuda
#
# Environment: NTLB (binary), RESULTS (default: the config's), CACHE (default RESULTS/cache),
# LOGS (default RESULTS/logs), ARRAY_START (first task id, default 0), SBATCH_ARGS (extra sbatch options for the array, e.g. a
# partition or account), MERGE_SBATCH_ARGS.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
NTLB=${NTLB:-target/release/ntlb}
export NTLB
[ $# -ge 1 ] || { echo "usage: $0 CONFIG [ntlb sweep options]" >&2; exit 2; }
CONFIG=$1
shift
dry=$("$NTLB" sweep "$CONFIG" "$@" ${RESULTS:+--results "$RESULTS"} --dry-run)
n=$(printf '%s\n' "$dry" | sed -n 's/^sweep `.*`: \([0-9]*\) jobs in all.*/\1/p')
RESULTS=${RESULTS:-$(printf '%s\n' "$dry" | sed -n 's/^results folder: //p')}
[ -n "$n" ] && [ "$n" -gt 0 ] && [ -n "$RESULTS" ] || { printf '%s\n' "$dry" >&2; echo "cannot read the plan size or results folder" >&2; exit 1; }
CACHE=${CACHE:-$RESULTS/cache}
LOGS=${LOGS:-$RESULTS/logs}
mkdir -p "$LOGS"
# shellcheck disable=SC2086
first=${ARRAY_START:-0}
array=$(sbatch --parsable --array=$first-$((first + n - 1)) -o "$LOGS/sweep-%A_%a.out" ${SBATCH_ARGS:-} \
  "$here/sweep-array.sbatch" "$CONFIG" "$@" --results "$RESULTS" --cache "$CACHE")
array=${array%%;*}
# shellcheck disable=SC2086
merge=$(sbatch --parsable --dependency=afterok:"$array" --kill-on-invalid-dep=yes -o "$LOGS/merge-%j.out" ${MERGE_SBATCH_ARGS:-} \
  "$here/merge-report.sbatch" "$RESULTS")
merge=${merge%%;*}
echo "array job $array ($n tasks), merge + report job $merge; logs in $LOGS"
echo "ARRAY_JOB=$array MERGE_JOB=$merge"
