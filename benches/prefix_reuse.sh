#!/usr/bin/env bash
# Prefix-reuse benchmark: generates a shared-document QA job (Austen passages,
# datasets/make_corpus_qa.py) and runs it planned / arrival-order LRU / no
# reuse in one process (benches/prefix_reuse.rs), printing ratios.
# Usage: benches/prefix_reuse.sh [DOCS QUESTIONS MIN_TOKENS MAX_TOKENS]
set -euo pipefail
cd "$(dirname "$0")/.."
docs="${1:-8}" questions="${2:-6}" min="${3:-1000}" max="${4:-2000}"
mkdir -p out/bench
python3 datasets/make_corpus_qa.py --docs "$docs" --questions "$questions" \
  --min-tokens "$min" --max-tokens "$max" --tasks needle:3,vartrack:1 \
  --out out/bench/corpus_qa_bench.parquet
cargo bench --bench prefix_reuse -- benches/corpus_qa_bench.yaml
