// Rotary position embedding, in place on rows of `n_heads * head_dim`.
// `freqs` holds the per-pair frequencies the host computed exactly as the
// CPU backend does (plain or YaRN-scaled), so the angle pos * f is the
// same f32 product on both. One thread per (token, head, pair).
// neox != 0 pairs (i, i + half) ("rotate half"); else (2i, 2i + 1).

extern "C" __global__ void rope(float* __restrict__ x, const u32* __restrict__ pos,
                                const float* __restrict__ freqs, int n_tokens, int n_heads,
                                int head_dim, int half, int neox) {
    int idx = blockIdx.x * blockDim.x + threadIdx.x;
    int total = n_tokens * n_heads * half;
    if (idx >= total) return;
    int i = idx % half;
    int head = (idx / half) % n_heads;
    int t = idx / (half * n_heads);
    float s, c;
    sincosf((float)pos[t] * freqs[i], &s, &c);
    float* h = x + ((size_t)t * n_heads + head) * head_dim;
    int a = neox ? i : 2 * i;
    int b = neox ? i + half : 2 * i + 1;
    float x0 = h[a], x1 = h[b];
    h[a] = x0 * c - x1 * s;
    h[b] = x0 * s + x1 * c;
}
