#!/usr/bin/env bash
# Writes the models the GPU checks run into DIR, on the GPU machine itself:
# real checkpoints cannot travel there (it fetches nothing and receives at
# most 64 MiB), so both are random-weight models at real shapes.
#   DIR/qwen2.5-1.5b-synth.gguf  Qwen2.5-Coder-1.5B Q4_K_M shape, all 28 layers (1.1 GB)
#   DIR/dsv4-medium/             DeepSeek-V4-Flash structure, reduced (2.5 GB)
# Needs the prebuilt ./target/release/specbatch and python3 with numpy.
# Deterministic; an existing output is kept.
#
# Usage: scripts/make_gpu_models.sh DIR
set -euo pipefail
if [ $# -ne 1 ]; then
  echo "usage: $0 DIR" >&2
  exit 2
fi
dir="$1"
cd "$(dirname "$0")/.."
bin=./target/release/specbatch
[ -x "$bin" ] || { echo "$bin not found: build it (cargo build --release) and carry it" >&2; exit 1; }
mkdir -p "$dir"

qwen="$dir/qwen2.5-1.5b-synth.gguf"
if [ ! -f "$qwen" ]; then
  "$bin" synth-model --shape qwen2.5-1.5b --out "$qwen.partial"
  mv "$qwen.partial" "$qwen"
fi

dsv4="$dir/dsv4-medium"
if [ ! -f "$dsv4/config.json" ]; then
  rm -rf "$dsv4.partial"
  python3 tools/dsv4/make_checkpoint.py --preset medium --out "$dsv4.partial"
  rm -rf "$dsv4" && mv "$dsv4.partial" "$dsv4"
fi
"$bin" inspect "$qwen" | head -4
"$bin" inspect "$dsv4" | head -4
