// Element-wise steps of a decoder layer. One thread per element.

// x[r][i] += b[i] for every row r of `cols` values.
extern "C" __global__ void add_bias(float* __restrict__ x, const float* __restrict__ b, int cols,
                                    int total) {
    int i = blockIdx.x * blockDim.x + threadIdx.x;
    if (i < total) x[i] += b[i % cols];
}

// x += y (the residual stream).
extern "C" __global__ void add_into(float* __restrict__ x, const float* __restrict__ y, int total) {
    int i = blockIdx.x * blockDim.x + threadIdx.x;
    if (i < total) x[i] += y[i];
}

// gate = silu(gate) * up, with silu(g) = g / (1 + exp(-g)) as on the CPU.
extern "C" __global__ void silu_mul(float* __restrict__ gate, const float* __restrict__ up,
                                    int total) {
    int i = blockIdx.x * blockDim.x + threadIdx.x;
    if (i < total) {
        float g = gate[i];
        gate[i] = g / (1.0f + expf(-g)) * up[i];
    }
}

// out[j] = x[rows[j]] for rows of `cols` values (the rows that need logits).
extern "C" __global__ void select_rows(const float* __restrict__ x, const u32* __restrict__ rows,
                                       int cols, int total, float* __restrict__ out) {
    int i = blockIdx.x * blockDim.x + threadIdx.x;
    if (i < total) out[i] = x[(size_t)rows[i / cols] * cols + i % cols];
}
