// Causal attention over the paged KV cache.
//
// Cache layout (one allocation each for K and V): [layer][block][slot][kv_dim]
// f16 bits, rounded to nearest even as the CPU arena stores them. The host
// gives each token of the step its cache slot (block * block_size + pos %
// block_size), its position, and where its sequence's block table starts in
// one flattened table.

// Writes the step's K and V rows (f32, `kv_dim` each) into their slots.
extern "C" __global__ void kv_store(const float* __restrict__ k, const float* __restrict__ v,
                                    const u32* __restrict__ slots, int n_tokens, int kv_dim,
                                    size_t layer_offset, u16* __restrict__ k_cache,
                                    u16* __restrict__ v_cache) {
    int i = blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= n_tokens * kv_dim) return;
    int t = i / kv_dim, e = i % kv_dim;
    size_t dst = layer_offset + (size_t)slots[t] * kv_dim + e;
    k_cache[dst] = f32_to_f16(k[i]);
    v_cache[dst] = f32_to_f16(v[i]);
}

#define MAX_HEAD_DIM 256

// One warp per (token, query head): scores over positions 0..=pos in order
// with an online softmax (running max and sum), lanes splitting the head's
// dims. Query head h reads KV head h / (n_heads / n_kv_heads).
extern "C" __global__ void paged_attention(
    const float* __restrict__ q, const u16* __restrict__ k_cache, const u16* __restrict__ v_cache,
    size_t layer_offset, const u32* __restrict__ block_tables, const u32* __restrict__ table_start,
    const u32* __restrict__ pos, int n_tokens, int n_heads, int n_kv_heads, int head_dim,
    int block_size, float scale, float* __restrict__ out) {
    int warp = blockIdx.x * (blockDim.x / WARP) + threadIdx.x / WARP;
    int lane = threadIdx.x % WARP;
    if (warp >= n_tokens * n_heads) return;
    int t = warp / n_heads, h = warp % n_heads;
    int kvh = h / (n_heads / n_kv_heads);
    int kv_dim = n_kv_heads * head_dim;
    const int per_lane = MAX_HEAD_DIM / WARP;
    float qv[per_lane], acc[per_lane];
    const float* qrow = q + ((size_t)t * n_heads + h) * head_dim;
    for (int j = 0; j < per_lane; j++) {
        int d = lane + WARP * j;
        qv[j] = d < head_dim ? qrow[d] : 0.0f;
        acc[j] = 0.0f;
    }
    const u32* table = block_tables + table_start[t];
    float run_max = NEG_INF, run_sum = 0.0f;
    for (u32 p = 0; p <= pos[t]; p++) {
        size_t base = layer_offset +
                      ((size_t)table[p / block_size] * block_size + p % block_size) * kv_dim +
                      (size_t)kvh * head_dim;
        float s = 0.0f;
        for (int j = 0; j < per_lane; j++) {
            int d = lane + WARP * j;
            if (d < head_dim) s += qv[j] * f16_to_f32(k_cache[base + d]);
        }
        s = warp_sum(s) * scale;
        float new_max = fmaxf(run_max, s);
        float correction = expf(run_max - new_max);
        float weight = expf(s - new_max);
        run_sum = run_sum * correction + weight;
        for (int j = 0; j < per_lane; j++) {
            int d = lane + WARP * j;
            float vv = d < head_dim ? f16_to_f32(v_cache[base + d]) : 0.0f;
            acc[j] = acc[j] * correction + weight * vv;
        }
        run_max = new_max;
    }
    float* orow = out + ((size_t)t * n_heads + h) * head_dim;
    for (int j = 0; j < per_lane; j++) {
        int d = lane + WARP * j;
        if (d < head_dim) orow[d] = acc[j] / run_sum;
    }
}
