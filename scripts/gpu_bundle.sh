#!/usr/bin/env bash
# Builds, on this machine, what tests/gpu/check.sh runs on the GPU machine:
# the release binary and the library's test binary (which holds the ignored
# GPU tests), stripped, in gpu-bundle/ (git-ignored; about 35 MB). The GPU
# machine has no Rust toolchain and fetches nothing, so the bundle travels:
# name gpu-bundle in the device tool's `carry`.
#
# Usage: scripts/gpu_bundle.sh
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release
lib_tests=$(cargo test --release --lib --no-run --message-format=json 2>/dev/null |
  python3 -c 'import json, sys
for line in sys.stdin:
    m = json.loads(line)
    if m.get("reason") == "compiler-artifact" and m.get("executable") and m["target"]["kind"] == ["lib"]:
        print(m["executable"])')
rm -rf gpu-bundle && mkdir gpu-bundle
cp target/release/specbatch gpu-bundle/specbatch
cp "$lib_tests" gpu-bundle/specbatch-lib-tests
strip gpu-bundle/specbatch gpu-bundle/specbatch-lib-tests
du -sh gpu-bundle
