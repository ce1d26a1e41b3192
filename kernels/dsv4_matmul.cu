// DeepSeek-V4 weight products, Y[i][r] = sum_c W[r][c] * X[i][c], for the
// checkpoint's formats: FP8 E4M3 with one E8M0 scale per 128x128 block,
// FP4 E2M1 (two per byte, low nibble first) with one E8M0 scale per row per
// 32 inputs, bf16 and f32.
//
// Bit-identical to the CPU's `model::dsv4::matrix` order: columns in
// K-blocks of 128; inside a block column c's product (rounded, never fused)
// goes into lane c mod 32 in column order; lanes fold by halving (lane i +=
// lane i + h, h = 16..1, which is exactly a shfl_down tree); block partial
// sums are added to 0 in block order. Decoded weights are exact (a code
// times a power of two), so every rounding happens in the same place.

#define K_BLOCK 128
#define FP8_BLOCK 128
#define FP4_GROUP 32
#define DSV4_WARPS 4

__device__ __forceinline__ float e8m0(u8 b) {
    if (b == 255) return __int_as_float(0x7fc00000);
    if (b == 0) return __int_as_float(1 << 22);
    return __int_as_float(((u32)b) << 23);
}

__device__ __forceinline__ float e4m3(u8 b) {
    u32 mag = b & 0x7f;
    float v;
    if (mag == 0x7f) {
        v = __int_as_float(0x7fc00000);
    } else if ((mag >> 3) == 0) {
        v = __fmul_rn((float)(mag & 7), 0.001953125f);  // m * 2^-9
    } else {
        v = __int_as_float((((mag >> 3) - 7 + 127) << 23) | ((mag & 7) << 20));
    }
    return (b & 0x80) ? -v : v;
}

__device__ __forceinline__ float e2m1(u32 nibble) {
    const float mag[8] = {0.0f, 0.5f, 1.0f, 1.5f, 2.0f, 3.0f, 4.0f, 6.0f};
    float v = mag[nibble & 7];
    return (nibble & 8) ? -v : v;
}

struct Fp8W {
    __device__ static float at(const u8* w, const u8* sc, int cols, int r, int c) {
        int grid_cols = (cols + FP8_BLOCK - 1) / FP8_BLOCK;
        float s = e8m0(sc[(r / FP8_BLOCK) * grid_cols + c / FP8_BLOCK]);
        return __fmul_rn(e4m3(w[(size_t)r * cols + c]), s);
    }
};

struct Fp4W {
    __device__ static float at(const u8* w, const u8* sc, int cols, int r, int c) {
        size_t i = (size_t)r * cols + c;
        u8 byte = w[i / 2];
        u32 nibble = (i & 1) ? (byte >> 4) : (byte & 15);
        return __fmul_rn(e2m1(nibble), e8m0(sc[i / FP4_GROUP]));
    }
};

struct Bf16W {
    __device__ static float at(const u8* w, const u8*, int cols, int r, int c) {
        return bf16_to_f32(((const u16*)w)[(size_t)r * cols + c]);
    }
};

struct F32W {
    __device__ static float at(const u8* w, const u8*, int cols, int r, int c) {
        return ((const float*)w)[(size_t)r * cols + c];
    }
};

// One warp per weight row r; every activation row i in turn.
template <typename F>
__device__ void dsv4_matmul(const u8* __restrict__ w, const u8* __restrict__ sc, int rows, int cols,
                            const float* __restrict__ x, int m, float* __restrict__ y) {
    int r = blockIdx.x * DSV4_WARPS + threadIdx.x / WARP;
    int lane = threadIdx.x % WARP;
    if (r >= rows) return;
    for (int i = 0; i < m; i++) {
        const float* xr = x + (size_t)i * cols;
        float total = 0.0f;
        for (int c0 = 0; c0 < cols; c0 += K_BLOCK) {
            int end = min(c0 + K_BLOCK, cols);
            float acc = 0.0f;
            for (int c = c0 + lane; c < end; c += WARP)
                acc = __fadd_rn(acc, __fmul_rn(F::at(w, sc, cols, r, c), xr[c]));
            for (int h = WARP / 2; h > 0; h >>= 1)
                acc = __fadd_rn(acc, __shfl_down_sync(0xffffffffu, acc, h));
            total = __fadd_rn(total, acc);
        }
        if (lane == 0) y[(size_t)i * rows + r] = total;
    }
}

#define DSV4_MATMUL(NAME, FMT)                                                             \
    extern "C" __global__ void dsv4_matmul_##NAME(const u8* w, const u8* sc, int rows,      \
                                                  int cols, const float* x, int m, float* y) { \
        dsv4_matmul<FMT>(w, sc, rows, cols, x, m, y);                                      \
    }

DSV4_MATMUL(fp8, Fp8W)
DSV4_MATMUL(fp4, Fp4W)
DSV4_MATMUL(bf16, Bf16W)
DSV4_MATMUL(f32, F32W)
