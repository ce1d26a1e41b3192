#!/usr/bin/env bash
# Queues the shard array (array.sbatch) and, after it, the finalize job
# (finalize.sbatch, --dependency=afterany on the array job).
#
# Usage: jobs/slurm/submit.sh [SPEC] [OUTPUT_DIR]
#   SPEC        default jobs/sharded.yaml
#   OUTPUT_DIR  the spec's output.path, default out/sharded
# Environment:
#   SPECBATCH             the binary (default: target/release/specbatch if
#                         built, else specbatch on PATH); must be reachable
#                         from the compute nodes
#   SPECBATCH_PLAN_FIRST  1: run `specbatch plan SPEC --shards 4` here first,
#                         so a bad spec fails now (exit 2) instead of in every
#                         task; it tokenizes the inputs, so it takes a while on
#                         a large corpus
#
# Runs sbatch from the repository root: the tasks start there, and the spec's
# relative paths resolve against it.
set -euo pipefail
cd "$(dirname "$0")/../.."

spec=${1:-jobs/sharded.yaml}
out=${2:-out/sharded}
if [ -z "${SPECBATCH:-}" ]; then
  if [ -x target/release/specbatch ]; then
    SPECBATCH=$PWD/target/release/specbatch
  else
    SPECBATCH=specbatch
  fi
fi
export SPECBATCH # sbatch passes the submitting environment on (--export=ALL)

mkdir -p out/logs # Slurm does not create the directory of --output

if [ "${SPECBATCH_PLAN_FIRST:-0}" = 1 ]; then
  "$SPECBATCH" plan "$spec" --shards 4
fi

# --parsable prints "jobid" or "jobid;cluster".
array=$(sbatch --parsable jobs/slurm/array.sbatch "$spec")
array=${array%%;*}
final=$(sbatch --parsable --dependency=afterany:"$array" jobs/slurm/finalize.sbatch "$out")
final=${final%%;*}

echo "shards:   array job $array (tasks ${array}_0 .. ${array}_3), logs in out/logs/"
echo "finalize: job $final, after every task of $array has ended"
echo "watch:    squeue -j $array,$final    afterwards: sacct -j $array -X"
