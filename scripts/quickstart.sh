#!/usr/bin/env bash
# The main job on a fresh machine: fetch the default model (pinned, sha256-checked),
# build, and run jobs/quickstart.yaml on datasets/quickstart.parquet.
# Extra arguments go to `specbatch run` (e.g. --output DIR).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/fetch_models.sh smollm2
cargo build --release --quiet
exec target/release/specbatch run jobs/quickstart.yaml "$@"
