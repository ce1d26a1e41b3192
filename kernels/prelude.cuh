// Shared by every kernel file: the CUDA backend compiles each
// `kernels/<family>.cu` as this prelude followed by the file (a #line
// directive keeps NVRTC's messages pointing into the file). No system or
// CUDA headers are included, so NVRTC alone (no toolkit) compiles them.

typedef unsigned char u8;
typedef signed char i8;
typedef unsigned short u16;
typedef unsigned int u32;

#define WARP 32

// -inf without math headers.
#define NEG_INF __int_as_float(0xff800000)

// IEEE half bits -> float, exactly (the hardware conversion).
__device__ __forceinline__ float f16_to_f32(u16 h) {
    float f;
    asm("cvt.f32.f16 %0, %1;" : "=f"(f) : "h"(h));
    return f;
}

// float -> IEEE half bits, round to nearest even (what the CPU KV arena does).
__device__ __forceinline__ u16 f32_to_f16(float f) {
    u16 h;
    asm("cvt.rn.f16.f32 %0, %1;" : "=h"(h) : "f"(f));
    return h;
}

// bfloat16 bits -> float: the high half of an f32.
__device__ __forceinline__ float bf16_to_f32(u16 b) {
    return __uint_as_float(((u32)b) << 16);
}

// Little-endian f16 at an address with only byte alignment (GGUF blocks of
// 20, 22, 34 or 210 bytes put it anywhere).
__device__ __forceinline__ float f16_at(const u8* p) {
    return f16_to_f32((u16)p[0] | ((u16)p[1] << 8));
}

__device__ __forceinline__ float warp_sum(float v) {
    for (int o = WARP / 2; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
    return v;
}

__device__ __forceinline__ float warp_max(float v) {
    for (int o = WARP / 2; o > 0; o >>= 1) v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, o));
    return v;
}
