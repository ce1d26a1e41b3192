#!/usr/bin/env bash
# The GPU check, run on the device machine from the repository root with
# gpu-bundle/ carried (scripts/gpu_bundle.sh builds it here). Sized for a
# few minutes on one H200:
#   1. every kernel against its CPU reference, and the GPU executor against
#      the CPU executor on a random model (the library's ignored tests);
#   2. a Qwen2.5-1.5B-shaped random model written on the spot, one greedy
#      job on cuda:0 and on the CPU, outputs compared row by row;
#   3. a benchmark table: tokens per second at 1, 16, 64 and 256 rows on
#      the GPU, and at 1 and 16 rows on the CPU in the same script, plus
#      the fraction of HBM bandwidth single-row decode reaches and of dense
#      bf16 peak the largest prefill reaches.
# Everything it prints is the report; it stops at the first failure.
set -euo pipefail
cd "$(dirname "$0")/../.."
bundle=gpu-bundle
[ -x "$bundle/specbatch" ] || { echo "no $bundle/: run scripts/gpu_bundle.sh and carry it" >&2; exit 1; }
work=${GPU_CHECK_DIR:-/tmp/specbatch-gpu}
mkdir -p "$work" target/release
cp "$bundle/specbatch" target/release/specbatch

# NVRTC: the toolkit's, else the pip wheel's.
for d in /usr/local/cuda/lib64 $(python3 -c 'import nvidia.cu13, os; print(os.path.join(nvidia.cu13.__path__[0], "lib"))' 2>/dev/null || true); do
  [ -d "$d" ] && export LD_LIBRARY_PATH="$d${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
done
export XDG_CACHE_HOME="$work/cache"

echo "== machine"
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader
nproc

echo "== 1. kernels and executor against the CPU"
"$bundle/specbatch-lib-tests" --ignored --test-threads=1 --nocapture backend::cuda

echo "== 2. Qwen2.5-1.5B-shaped job, GPU against CPU"
model="$work/qwen2.5-1.5b-synth.gguf"
[ -f "$model" ] || target/release/specbatch synth-model --shape qwen2.5-1.5b --out "$model"
for dev in cuda cpu; do
  spec="$work/job-$dev.yaml"
  devices=$([ $dev = cuda ] && echo "[cuda:0]" || echo "[cpu]")
  sed -e "s#@MODEL@#$model#" -e "s#@DEVICES@#$devices#" -e "s#@OUT@#$work/out-$dev#" \
    tests/gpu/qwen_synth_job.yaml >"$spec"
  rm -rf "$work/out-$dev"
  start=$(date +%s%N)
  target/release/specbatch run "$spec"
  echo "$dev job: $(( ($(date +%s%N) - start) / 1000000 )) ms"
done
python3 tests/gpu/compare_outputs.py "$work/out-cuda" "$work/out-cpu"

echo "== 3. benchmark"
target/release/specbatch bench --model "$model" --device cuda:0 --concurrency 1,16,64,256 \
  --prompt-tokens 128 --gen-tokens 64 | tee "$work/bench-gpu.csv"
target/release/specbatch bench --model "$model" --device cpu --concurrency 1,16 \
  --prompt-tokens 128 --gen-tokens 16 | tee "$work/bench-cpu.csv"
params=$(target/release/specbatch inspect "$model" | awk '/^parameters/ {print $2}')
python3 - "$work/bench-gpu.csv" "$model" "$params" <<'PY'
import csv, os, sys
rows = list(csv.DictReader(open(sys.argv[1])))
weights, params = os.path.getsize(sys.argv[2]), int(sys.argv[3])
hbm, bf16 = 4.8e12, 989e12  # H200 HBM3e bytes/s; dense bf16 FLOP/s
one = next(r for r in rows if r["concurrency"] == "1")
tps = float(one["gen_tok_per_s"])
print(f"single-row decode: {tps:.1f} tok/s x {weights/1e9:.2f} GB of weights per token = "
      f"{tps*weights/1e9:.0f} GB/s, {100*tps*weights/hbm:.1f}% of HBM peak")
big = max(rows, key=lambda r: int(r["concurrency"]))
pre = float(big["prefill_tok_per_s"])
print(f"prefill at {big['concurrency']} rows: {pre:.0f} tok/s x 2 x {params/1e9:.2f} G parameters = "
      f"{pre*2*params/1e12:.1f} TFLOP/s, {100*pre*2*params/bf16:.2f}% of dense bf16 peak")
PY
