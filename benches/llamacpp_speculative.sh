#!/usr/bin/env bash
# llama.cpp's own speculative decoding on the pair and prompts of benches/speculation.rs
# (Qwen2.5-Coder 1.5B target, 0.5B draft, the `code` tasks, greedy, ChatML), for the same
# table: per prompt, llama-speculative's decode tok/s and draft acceptance, then their means.
# Compare with `cargo bench --bench speculation -- --model ... --draft ... --prompts code --rows 1`.
#
# Usage: benches/llamacpp_speculative.sh [N_DRAFT] (default 5, the bench's γ)
# Needs llama.cpp built by scripts/build_llamacpp.sh (which builds llama-speculative too);
# an older build adds it with: cmake --build "$bin/.." --target llama-speculative
set -euo pipefail
cd "$(dirname "$0")/.."
bin="${SPECBATCH_LLAMACPP_DIR:-$HOME/.cache/specbatch/llama.cpp}/llama_cpp_python-0.3.36/vendor/llama.cpp/build/bin"
[ -x "$bin/llama-speculative" ] || { echo "llama-speculative not built (see the header)" >&2; exit 1; }
n_draft="${1:-5}"
target=models/qwen2.5-coder-1.5b-instruct-q4_k_m.gguf
draft=models/qwen2.5-coder-0.5b-instruct-q4_k_m.gguf
# The bench's CODE_TASKS, in order.
tasks=$(sed -n '/^const CODE_TASKS/,/^];/p' benches/speculation.rs | grep -o '"[^"]*"' | tr -d '"')
echo "prompt,decoded_tokens,tok_s,accept_pct"
while IFS= read -r task; do
  prompt=$(printf '<|im_start|>user\n%s<|im_end|>\n<|im_start|>assistant\n' "$task")
  out=$("$bin/llama-speculative" -m "$target" -md "$draft" -p "$prompt" -n 96 --spec-draft-n-max "$n_draft" \
    --temp 0 -t 2 -c 2048 -s 1 2>&1 || true)
  decoded=$(grep -o 'decoded *[0-9]* tokens in *[0-9.]* seconds, speed: *[0-9.]* t/s' <<<"$out" | tail -1)
  accept=$(grep -o 'accept *= *[0-9.]*%' <<<"$out" | grep -o '[0-9.]*' | tail -1)
  echo "\"${task:0:40}\",$(awk '{print $2","$8}' <<<"$decoded"),${accept:-NA}"
done <<<"$tasks"
