#!/usr/bin/env bash
# Builds llama.cpp -- specbatch's CPU yardstick and the reference for GGUF outputs -- from
# the pinned llama-cpp-python sdist, which vendors the whole llama.cpp tree. Nothing of
# llama.cpp is committed to this repository; everything lands in a cache folder.
#
# Output, under $SPECBATCH_LLAMACPP_DIR (default ~/.cache/specbatch/llama.cpp):
#   llama_cpp_python-0.3.36/vendor/llama.cpp/build/bin/
#       llama-batched-bench, llama-bench, llama-cli, llama-simple, llama-speculative, libllama.so, libggml*.so
#   venv/   a Python venv (system site-packages visible) in which `import llama_cpp` works:
#       the sdist's pure-Python package is put on the path by a .pth file and finds the
#       libllama.so above through a `lib` symlink, so the bindings need no second build.
#
# Idempotent: every step is skipped when its output exists (the CMake build itself is
# incremental). About 8 minutes on 2 cores the first time.
set -euo pipefail

dir="${SPECBATCH_LLAMACPP_DIR:-$HOME/.cache/specbatch/llama.cpp}"
ver=0.3.36
sdist_sha256=832db0699007f1be95a7e41ef12e88926b02ba836461e36a36372db2760c1a2e
# The vendored llama.cpp commit, from the sdist's CHANGELOG ("update llama.cpp to
# ggml-org/llama.cpp@0c1e57098"); the sdist has no .git, so the build would say "unknown".
llama_commit=0c1e57098
jobs="${SPECBATCH_LLAMACPP_JOBS:-2}"

if ! command -v cmake >/dev/null || ! command -v ninja >/dev/null; then
  apt-get update -q && apt-get install -y -q cmake ninja-build
fi

mkdir -p "$dir/sdist"
cd "$dir"
tarball="sdist/llama_cpp_python-$ver.tar.gz"
if [ ! -f "$tarball" ]; then
  python3 -m pip download -q --no-deps --no-binary :all: "llama-cpp-python==$ver" -d sdist
fi
echo "$sdist_sha256  $tarball" | sha256sum -c --quiet
src="$dir/llama_cpp_python-$ver"
[ -d "$src" ] || tar xzf "$tarball"

cd "$src/vendor/llama.cpp"
# GGML_NATIVE compiles for every extension the CPU reports. Where that includes AMX, ggml's
# AMX matmuls die with SIGILL on their first tile instruction in a VM that reports AMX
# without granting its tile state (a 2-vCPU Sapphire Rapids guest, 2026-11-30), so there the
# build names the CPU's other extensions instead.
isa=(-DGGML_NATIVE=ON)
if grep -qw amx_int8 /proc/cpuinfo; then
  isa=(-DGGML_NATIVE=OFF)
  for pair in avx:AVX avx2:AVX2 fma:FMA f16c:F16C bmi2:BMI2 avx_vnni:AVX_VNNI avx512f:AVX512 \
    avx512_vnni:AVX512_VNNI avx512vbmi:AVX512_VBMI avx512_bf16:AVX512_BF16; do
    grep -qw "${pair%%:*}" /proc/cpuinfo && isa+=("-DGGML_${pair##*:}=ON")
  done
fi
if [ ! -f build/build.ninja ]; then
  cmake -B build -G Ninja -DCMAKE_BUILD_TYPE=Release "${isa[@]}" -DLLAMA_CURL=OFF \
    -DBUILD_SHARED_LIBS=ON -DLLAMA_BUILD_COMMIT="$llama_commit"
fi
start=$(date +%s)
cmake --build build -j"$jobs" --target llama llama-batched-bench llama-bench llama-cli llama-simple \
  llama-speculative
echo "build step took $(( $(date +%s) - start )) s"
bin="$PWD/build/bin"

# Python bindings without a second build: the package's loader looks for lib<name>.so in
# llama_cpp/lib/ (or $LLAMA_CPP_LIB_PATH), so point that folder at the CMake output.
[ -e "$src/llama_cpp/lib" ] || ln -s "$bin" "$src/llama_cpp/lib"
venv="$dir/venv"
if [ ! -x "$venv/bin/python" ]; then
  python3 -m venv --system-site-packages "$venv"
fi
site=$("$venv/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')
echo "$src" > "$site/llama_cpp_python_sdist.pth"
if ! "$venv/bin/python" -c 'import numpy, typing_extensions, diskcache, jinja2' 2>/dev/null; then
  "$venv/bin/python" -m pip install -q numpy typing_extensions diskcache jinja2
fi
"$venv/bin/python" -c 'import llama_cpp; print("llama_cpp", llama_cpp.__version__, "loads", llama_cpp.llama_cpp._lib._name)'

echo "llama.cpp binaries in $bin"
echo "Python with the bindings: $venv/bin/python"
