#!/usr/bin/env bash
# Builds llama.cpp (the CPU yardstick and the reference for GGUF outputs) from the
# pinned llama-cpp-python sdist, which vendors the whole llama.cpp tree. Idempotent.
#
# Output: $SPECBATCH_LLAMACPP_DIR (default ~/.cache/specbatch/llama.cpp)/llama_cpp_python-0.3.36/
#   vendor/llama.cpp/build/bin/{llama-batched-bench,llama-cli,llama-simple,libllama.so,...}
# The Python bindings in that folder load that libllama.so (LLAMA_CPP_LIB_PATH), so no
# second build is needed for tests/fixtures/llamacpp/gen_fixture.py.
# Takes about 8 minutes on 2 cores. Nothing of llama.cpp is committed to this repository.
set -euo pipefail
dir="${SPECBATCH_LLAMACPP_DIR:-$HOME/.cache/specbatch/llama.cpp}"
ver=0.3.36
sha=832db0699007f1be95a7e41ef12e88926b02ba836461e36a36372db2760c1a2e
mkdir -p "$dir/sdist"
cd "$dir"
if ! command -v cmake >/dev/null || ! command -v ninja >/dev/null; then
  apt-get update -q && apt-get install -y -q cmake ninja-build
fi
tarball="sdist/llama_cpp_python-$ver.tar.gz"
[ -f "$tarball" ] || python3 -m pip download -q --no-deps --no-binary :all: "llama-cpp-python==$ver" -d sdist
echo "$sha  $tarball" | sha256sum -c --quiet
[ -d "llama_cpp_python-$ver" ] || tar xzf "$tarball"
cd "llama_cpp_python-$ver/vendor/llama.cpp"
[ -f build/build.ninja ] || cmake -B build -G Ninja -DGGML_NATIVE=ON -DLLAMA_CURL=OFF \
  -DCMAKE_BUILD_TYPE=Release -DBUILD_SHARED_LIBS=ON
cmake --build build -j2 --target llama-batched-bench llama-cli llama-simple llama
python3 -m pip install -q numpy typing_extensions diskcache jinja2
echo "llama.cpp binaries in $PWD/build/bin"
