// RMSNorm: out[r] = x[r] / sqrt(mean(x[r]^2) + eps) * w, one block per row.

#define NORM_THREADS 256

extern "C" __global__ void rms_norm(const float* __restrict__ x, const float* __restrict__ w,
                                    float eps, int d, float* __restrict__ out) {
    __shared__ float partial[NORM_THREADS / WARP];
    const float* xr = x + (size_t)blockIdx.x * d;
    float* orow = out + (size_t)blockIdx.x * d;
    float ss = 0.0f;
    for (int i = threadIdx.x; i < d; i += blockDim.x) ss += xr[i] * xr[i];
    ss = warp_sum(ss);
    if (threadIdx.x % WARP == 0) partial[threadIdx.x / WARP] = ss;
    __syncthreads();
    if (threadIdx.x < WARP) {
        float v = threadIdx.x < blockDim.x / WARP ? partial[threadIdx.x] : 0.0f;
        v = warp_sum(v);
        if (threadIdx.x == 0) partial[0] = v;
    }
    __syncthreads();
    float scale = 1.0f / sqrtf(partial[0] / (float)d + eps);
    for (int i = threadIdx.x; i < d; i += blockDim.x) orow[i] = xr[i] * scale * w[i];
}
