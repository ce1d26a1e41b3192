#!/usr/bin/env bash
# Speed yardstick: specbatch vs llama.cpp on the same GGUF files and the same workload
# (llama-batched-bench's: N sequences of 128 prompt tokens, 64 generated tokens each),
# run back to back in one script and reported as ratios (absolute numbers on shared
# 2-core machines are noise; ratios from the same run are not).
#
# Usage: benches/compare_llamacpp.sh [MODEL.gguf ...]
#   default models: SmolLM2-135M and Qwen2.5-Coder-1.5B (scripts/fetch_models.sh smollm2 qwen-1.5b)
# Needs llama.cpp built by scripts/build_llamacpp.sh ($SPECBATCH_LLAMACPP_DIR).
set -euo pipefail
cd "$(dirname "$0")/.."
bin="${SPECBATCH_LLAMACPP_DIR:-$HOME/.cache/specbatch/llama.cpp}/llama_cpp_python-0.3.36/vendor/llama.cpp/build/bin"
[ -x "$bin/llama-batched-bench" ] || { echo "llama.cpp not built: run scripts/build_llamacpp.sh" >&2; exit 1; }
npl="${NPL:-1,8,32}"
[ $# -gt 0 ] || set -- models/smollm2-135m-instruct-q4_1.gguf models/qwen2.5-coder-1.5b-instruct-q4_k_m.gguf
cargo build --release --quiet
tmp="$(mktemp -d)"
for model in "$@"; do
  name="$(basename "$model" .gguf)"
  target/release/specbatch bench --model "$model" --concurrency "$npl" --prompt-tokens 128 --gen-tokens 64 \
    --threads 2 > "$tmp/$name.specbatch.csv"
  "$bin/llama-batched-bench" -m "$model" -c 8192 -b 2048 -ub 512 -npp 128 -ntg 64 -npl "$npl" -t 2 \
    --output-format jsonl 2>/dev/null | grep '^{' > "$tmp/$name.llamacpp.jsonl"
done
python3 - "$tmp" "$@" <<'PY'
import csv, json, os, sys
tmp, models = sys.argv[1], sys.argv[2:]
print(f"{'model':<40} {'rows':>4} {'gen tok/s':>10} {'llama.cpp':>10} {'ratio':>6}   {'prefill':>8} {'llama.cpp':>10} {'ratio':>6}")
for m in models:
    name = os.path.basename(m)[:-5]
    ours = {int(r["concurrency"]): r for r in csv.DictReader(open(f"{tmp}/{name}.specbatch.csv"))}
    theirs = {j["pl"]: j for j in map(json.loads, open(f"{tmp}/{name}.llamacpp.jsonl"))}
    for n in sorted(ours):
        o, t = ours[n], theirs[n]
        g, tg = float(o["gen_tok_per_s"]), t["speed_tg"]
        p, tp = float(o["prefill_tok_per_s"]), t["speed_pp"]
        print(f"{name:<40} {n:>4} {g:>10.1f} {tg:>10.1f} {g/tg:>6.2f}   {p:>8.1f} {tp:>10.1f} {p/tp:>6.2f}")
PY
rm -rf "$tmp"
