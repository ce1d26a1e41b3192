// Weights in their stored GGUF block formats: decoding and the matrix
// product with f32 activations, Y[m][n] = sum_k W[n][k] * X[m][k].
//
// Each format has a `dequant8` that decodes 8 consecutive values of a row
// (every block size is a multiple of 8); the product and the row gather
// (embedding lookup) are generic over it. Activations stay f32 (the CPU
// backend quantizes them to ggml's 8-bit formats instead), so results
// agree with the CPU to rounding, not bit for bit.

// --- Decoders: values [8g, 8g + 8) of a row starting at `row`. ---

struct F32Fmt {
    static const int BLOCK = 1, BYTES = 4;
    __device__ static void dequant8(const u8* row, int g, float* out) {
        const float* r = (const float*)row + 8 * g;
        for (int i = 0; i < 8; i++) out[i] = r[i];
    }
};

struct F16Fmt {
    static const int BLOCK = 1, BYTES = 2;
    __device__ static void dequant8(const u8* row, int g, float* out) {
        const u16* r = (const u16*)row + 8 * g;
        for (int i = 0; i < 8; i++) out[i] = f16_to_f32(r[i]);
    }
};

struct BF16Fmt {
    static const int BLOCK = 1, BYTES = 2;
    __device__ static void dequant8(const u8* row, int g, float* out) {
        const u16* r = (const u16*)row + 8 * g;
        for (int i = 0; i < 8; i++) out[i] = bf16_to_f32(r[i]);
    }
};

// 32 values: f16 d, 32 x i8.
struct Q8_0Fmt {
    static const int BLOCK = 32, BYTES = 34;
    __device__ static void dequant8(const u8* row, int g, float* out) {
        const u8* b = row + (8 * g / BLOCK) * BYTES;
        int v0 = 8 * g % BLOCK;
        float d = f16_at(b);
        for (int i = 0; i < 8; i++) out[i] = d * (float)(i8)b[2 + v0 + i];
    }
};

// 32 values: f16 d, f16 m, 16 bytes of nibbles (value v: byte v % 16, low
// nibble for v < 16).
struct Q4_1Fmt {
    static const int BLOCK = 32, BYTES = 20;
    __device__ static void dequant8(const u8* row, int g, float* out) {
        const u8* b = row + (8 * g / BLOCK) * BYTES;
        int v0 = 8 * g % BLOCK;
        float d = f16_at(b), m = f16_at(b + 2);
        for (int i = 0; i < 8; i++) {
            int v = v0 + i;
            u8 byte = b[4 + v % 16];
            int q = v < 16 ? (byte & 15) : (byte >> 4);
            out[i] = (float)q * d + m;
        }
    }
};

// 32 values: f16 d, 32 high bits, 16 bytes of low nibbles; value - 16.
struct Q5_0Fmt {
    static const int BLOCK = 32, BYTES = 22;
    __device__ static void dequant8(const u8* row, int g, float* out) {
        const u8* b = row + (8 * g / BLOCK) * BYTES;
        int v0 = 8 * g % BLOCK;
        float d = f16_at(b);
        u32 qh = (u32)b[2] | ((u32)b[3] << 8) | ((u32)b[4] << 16) | ((u32)b[5] << 24);
        for (int i = 0; i < 8; i++) {
            int v = v0 + i;
            u8 byte = b[6 + v % 16];
            int q = (v < 16 ? (byte & 15) : (byte >> 4)) | (((qh >> v) & 1) << 4);
            out[i] = (float)(q - 16) * d;
        }
    }
};

// 256 values: f16 d, f16 dmin, 12 bytes of packed 6-bit (scale, min) for
// eight sub-blocks of 32, 128 bytes of nibbles.
struct Q4KFmt {
    static const int BLOCK = 256, BYTES = 144;
    __device__ static void dequant8(const u8* row, int g, float* out) {
        const u8* b = row + (8 * g / BLOCK) * BYTES;
        int v0 = 8 * g % BLOCK;
        int j = v0 / 32;
        const u8* s = b + 4;
        int sc, mn;
        if (j < 4) {
            sc = s[j] & 63;
            mn = s[j + 4] & 63;
        } else {
            sc = (s[j + 4] & 15) | ((s[j - 4] >> 6) << 4);
            mn = (s[j + 4] >> 4) | ((s[j] >> 6) << 4);
        }
        float scale = f16_at(b) * (float)sc, min = f16_at(b + 2) * (float)mn;
        for (int i = 0; i < 8; i++) {
            int v = v0 + i;
            u8 byte = b[16 + 32 * (v / 64) + v % 32];
            int q = (v % 64) < 32 ? (byte & 15) : (byte >> 4);
            out[i] = scale * (float)q - min;
        }
    }
};

// 256 values: 128 bytes of low nibbles, 64 bytes of 2-bit highs, 16 i8
// scales (one per 16 values), f16 d; value - 32.
struct Q6KFmt {
    static const int BLOCK = 256, BYTES = 210;
    __device__ static void dequant8(const u8* row, int g, float* out) {
        const u8* b = row + (8 * g / BLOCK) * BYTES;
        int v0 = 8 * g % BLOCK;
        float ds = f16_at(b + 208) * (float)(i8)b[192 + v0 / 16];
        for (int i = 0; i < 8; i++) {
            int v = v0 + i;
            int h = v / 128, q4 = (v % 128) / 32, l = v % 32;
            u8 lo = b[64 * h + l + 32 * (q4 % 2)];
            int low = q4 < 2 ? (lo & 15) : (lo >> 4);
            int high = (b[128 + 32 * h + l] >> (2 * q4)) & 3;
            out[i] = ds * (float)((low | (high << 4)) - 32);
        }
    }
};

// --- Matrix product: one warp per output row n, activation rows in tiles
// of M_TILE so each decoded weight group serves M_TILE rows from registers
// (a verify step of up to 8 tokens reads the weights once). ---

#define M_TILE 8
#define MMV_WARPS 4

template <typename F>
__device__ void mmv(const u8* __restrict__ w, int n_rows, int k, const float* __restrict__ x, int m,
                    float* __restrict__ y) {
    int n = blockIdx.x * MMV_WARPS + threadIdx.x / WARP;
    int lane = threadIdx.x % WARP;
    if (n >= n_rows) return;
    const u8* row = w + (size_t)n * (k / F::BLOCK) * F::BYTES;
    int groups = k / 8;
    for (int m0 = 0; m0 < m; m0 += M_TILE) {
        int mt = min(M_TILE, m - m0);
        float acc[M_TILE];
        for (int i = 0; i < M_TILE; i++) acc[i] = 0.0f;
        for (int g = lane; g < groups; g += WARP) {
            float wv[8];
            F::dequant8(row, g, wv);
            for (int i = 0; i < M_TILE; i++) {
                if (i < mt) {
                    const float* xr = x + (size_t)(m0 + i) * k + 8 * g;
                    float s = 0.0f;
                    for (int e = 0; e < 8; e++) s += wv[e] * xr[e];
                    acc[i] += s;
                }
            }
        }
        for (int i = 0; i < M_TILE; i++) {
            float s = warp_sum(acc[i]);
            if (lane == 0 && i < mt) y[(size_t)(m0 + i) * n_rows + n] = s;
        }
    }
}

// Rows `ids[t]` of W decoded into out[t] (the embedding lookup). One block
// per output row.
template <typename F>
__device__ void gather_rows(const u8* __restrict__ w, int k, const u32* __restrict__ ids,
                            float* __restrict__ out) {
    int t = blockIdx.x;
    const u8* row = w + (size_t)ids[t] * (k / F::BLOCK) * F::BYTES;
    for (int g = threadIdx.x; g < k / 8; g += blockDim.x) {
        float v[8];
        F::dequant8(row, g, v);
        for (int e = 0; e < 8; e++) out[(size_t)t * k + 8 * g + e] = v[e];
    }
}

#define QUANT_KERNELS(NAME, FMT)                                                              \
    extern "C" __global__ void mmv_##NAME(const u8* w, int n_rows, int k, const float* x,     \
                                          int m, float* y) {                                  \
        mmv<FMT>(w, n_rows, k, x, m, y);                                                      \
    }                                                                                         \
    extern "C" __global__ void gather_rows_##NAME(const u8* w, int k, const u32* ids,         \
                                                  float* out) {                               \
        gather_rows<FMT>(w, k, ids, out);                                                     \
    }

QUANT_KERNELS(f32, F32Fmt)
QUANT_KERNELS(f16, F16Fmt)
QUANT_KERNELS(bf16, BF16Fmt)
QUANT_KERNELS(q8_0, Q8_0Fmt)
QUANT_KERNELS(q4_1, Q4_1Fmt)
QUANT_KERNELS(q5_0, Q5_0Fmt)
QUANT_KERNELS(q4_k, Q4KFmt)
QUANT_KERNELS(q6_k, Q6KFmt)
