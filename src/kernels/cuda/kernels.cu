// tomtat's own CUDA kernels (built to PTX by build.rs with the `cuda` feature; see
// src/kernels/cuda.rs). Each one replaces a chain of candle ops whose launches, parameter uploads
// and passes over memory dominated a decoding step on an H100 (3.3 ms/step whether 8 or 64 rows).
// Arithmetic is f32 whatever the storage type.
#include <cuda_fp16.h>
#include <cuda_bf16.h>
#include <stdint.h>

__device__ __forceinline__ float ld(const float* p, size_t i) { return p[i]; }
__device__ __forceinline__ float ld(const __half* p, size_t i) { return __half2float(p[i]); }
__device__ __forceinline__ float ld(const __nv_bfloat16* p, size_t i) { return __bfloat162float(p[i]); }
__device__ __forceinline__ void st(float* p, size_t i, float v) { p[i] = v; }
__device__ __forceinline__ void st(__half* p, size_t i, float v) { p[i] = __float2half(v); }
__device__ __forceinline__ void st(__nv_bfloat16* p, size_t i, float v) { p[i] = __float2bfloat16(v); }

// ---------------------------------------------------------------------------------------------
// y = act(x + b) for a contiguous [rows, n] x and [n] bias. act: 0 none, 1 GELU (erf), 2 ReLU,
// 3 SiLU. Grid: x over columns (each thread keeps its bias value), y over rows.
template <typename T>
__device__ void bias_act(const T* x, const T* b, T* y, uint32_t rows, uint32_t n, int act) {
    const uint32_t c = blockIdx.x * blockDim.x + threadIdx.x;
    if (c >= n) return;
    const float bc = ld(b, c);
    for (uint32_t r = blockIdx.y; r < rows; r += gridDim.y) {
        const size_t i = (size_t)r * n + c;
        float v = ld(x, i) + bc;
        if (act == 1) {
            v = 0.5f * v * (1.0f + erff(v * 0.70710678118654752440f));
        } else if (act == 2) {
            v = fmaxf(v, 0.0f);
        } else if (act == 3) {
            v = v / (1.0f + expf(-v));
        }
        st(y, i, v);
    }
}

#define BIAS_ACT(NAME, T)                                                                     \
    extern "C" __global__ void NAME(const T* x, const T* b, T* y, uint32_t rows, uint32_t n,   \
                                    int act) {                                                \
        bias_act<T>(x, b, y, rows, n, act);                                                   \
    }
BIAS_ACT(tt_bias_act_f32, float)
BIAS_ACT(tt_bias_act_f16, __half)
BIAS_ACT(tt_bias_act_bf16, __nv_bfloat16)

// ---------------------------------------------------------------------------------------------
// Block-wide reductions (blockDim a multiple of 32, at most 1024); `red` holds 32 floats.
__device__ __forceinline__ float block_max(float v, float* red) {
    for (int o = 16; o > 0; o >>= 1) v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, o));
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
    __syncthreads();
    if (lane == 0) red[warp] = v;
    __syncthreads();
    v = lane < (int)(blockDim.x >> 5) ? red[lane] : -INFINITY;
    for (int o = 16; o > 0; o >>= 1) v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, o));
    return v;
}

__device__ __forceinline__ float block_sum(float v, float* red) {
    for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
    __syncthreads();
    if (lane == 0) red[warp] = v;
    __syncthreads();
    v = lane < (int)(blockDim.x >> 5) ? red[lane] : 0.0f;
    for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
    return v;
}

// ---------------------------------------------------------------------------------------------
// Attention of ONE query position per (row, head), as a decoding step has: one block per
// (R consecutive rows = blockIdx.x, head = blockIdx.y), softmax in f32, heads written merged.
//   q:   row r at r * q_row, heads * dh wide (the query projection as it comes out, no head
//        split; q_row = 3 * heads * dh when it is the first third of a fused QKV projection)
//   k/v: element (row r, head h, key j, dim d) at (r / group) * s_src + h * s_head + j * s_key + d
//        (self-attention cache [max_len, rows, heads, dh]: group 1, s_src = heads * dh,
//        s_head = dh, s_key = rows * heads * dh; cross K/V [sources, heads, s, dh]: s_src =
//        heads * s * dh, s_head = s * dh, s_key = dh, `group` beams per source)
//   bias (nullable): additive, element (r / group, h, j) at (r / group) * b_src + h * b_head + j
//   out: [rows, heads * dh]
// R > 1 (R divides group): the block's R rows are beams of one source, so each key and value
// is read once for all of them instead of once per beam.
// Shared memory: R * keys + 32 + R * blockDim floats. dh <= 256.
template <typename T, int R>
__device__ void attend_one(const T* q, uint64_t q_row, const T* k, const T* v, const T* bias,
                           T* out, uint32_t keys, uint32_t dh, uint32_t group, uint64_t s_src,
                           uint64_t s_head, uint64_t s_key, uint64_t b_src, uint64_t b_head) {
    extern __shared__ float sm[];
    float* scores = sm;
    float* red = sm + R * keys;
    float* part = red + 32;
    const uint32_t r0 = blockIdx.x * R, h = blockIdx.y, heads = gridDim.y;
    const uint32_t src = r0 / group;
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, nwarps = blockDim.x >> 5;
    const size_t base = (size_t)src * s_src + (size_t)h * s_head;
    float qv[R][8];
#pragma unroll
    for (int i = 0; i < R; i++) {
        const size_t qo = (size_t)(r0 + i) * q_row + (size_t)h * dh;
#pragma unroll
        for (int t = 0; t < 8; t++) {
            const uint32_t d = lane + 32 * t;
            qv[i][t] = d < dh ? ld(q, qo + d) : 0.0f;
        }
    }
    // scores: one warp per key, lanes over the head dimension
    for (uint32_t j = warp; j < keys; j += nwarps) {
        const size_t ko = base + (size_t)j * s_key;
        float kk[8];
#pragma unroll
        for (int t = 0; t < 8; t++) {
            const uint32_t d = lane + 32 * t;
            kk[t] = d < dh ? ld(k, ko + d) : 0.0f;
        }
        const float bj = bias ? ld(bias, (size_t)src * b_src + (size_t)h * b_head + j) : 0.0f;
#pragma unroll
        for (int i = 0; i < R; i++) {
            float acc = 0.0f;
#pragma unroll
            for (int t = 0; t < 8; t++) acc += qv[i][t] * kk[t];
            for (int o = 16; o > 0; o >>= 1) acc += __shfl_xor_sync(0xffffffffu, acc, o);
            if (lane == 0) scores[i * keys + j] = bias ? acc + bj : acc;
        }
    }
    __syncthreads();
    float sum[R];
#pragma unroll
    for (int i = 0; i < R; i++) {
        float* sc = scores + i * keys;
        float m = -INFINITY;
        for (uint32_t j = threadIdx.x; j < keys; j += blockDim.x) m = fmaxf(m, sc[j]);
        m = block_max(m, red);
        float s = 0.0f;
        for (uint32_t j = threadIdx.x; j < keys; j += blockDim.x) {
            const float e = expf(sc[j] - m);
            sc[j] = e;
            s += e;
        }
        sum[i] = block_sum(s, red);  // its __syncthreads also publish the exponentials
    }
    // weighted values: `groups` sets of dh threads, each over every groups-th key
    const uint32_t groups = dh <= blockDim.x ? blockDim.x / dh : 1;
    const uint32_t d = threadIdx.x % dh, g = threadIdx.x / dh;
    if (g < groups) {
        float acc[R];
#pragma unroll
        for (int i = 0; i < R; i++) acc[i] = 0.0f;
        for (uint32_t j = g; j < keys; j += groups) {
            const float vv = ld(v, base + (size_t)j * s_key + d);
#pragma unroll
            for (int i = 0; i < R; i++) acc[i] += scores[i * keys + j] * vv;
        }
#pragma unroll
        for (int i = 0; i < R; i++) part[i * blockDim.x + threadIdx.x] = acc[i];
    }
    __syncthreads();
    if (threadIdx.x < dh) {
#pragma unroll
        for (int i = 0; i < R; i++) {
            float tot = 0.0f;
            for (uint32_t gg = 0; gg < groups; gg++) tot += part[i * blockDim.x + gg * dh + threadIdx.x];
            st(out, ((size_t)(r0 + i) * heads + h) * dh + threadIdx.x, tot / sum[i]);
        }
    }
}

#define ATTEND_ONE(NAME, T, R)                                                                \
    extern "C" __global__ void NAME(const T* q, uint64_t q_row, const T* k, const T* v,      \
                                    const T* bias, T* out, uint32_t keys, uint32_t dh,         \
                                    uint32_t group, uint64_t s_src, uint64_t s_head,           \
                                    uint64_t s_key, uint64_t b_src, uint64_t b_head) {         \
        attend_one<T, R>(q, q_row, k, v, bias, out, keys, dh, group, s_src, s_head, s_key,    \
                         b_src, b_head);                                                      \
    }
// tt_attend_one_r{R}_{f32,f16,bf16}
#define ATTEND_ONE_DTYPES(R)                                                                  \
    ATTEND_ONE(tt_attend_one_r##R##_f32, float, R)                                            \
    ATTEND_ONE(tt_attend_one_r##R##_f16, __half, R)                                           \
    ATTEND_ONE(tt_attend_one_r##R##_bf16, __nv_bfloat16, R)
ATTEND_ONE_DTYPES(1)
ATTEND_ONE_DTYPES(2)
ATTEND_ONE_DTYPES(4)
ATTEND_ONE_DTYPES(8)

// ---------------------------------------------------------------------------------------------
// Rows of width n from a strided source into a contiguous destination block:
// dst[r * n + c] = src[r * src_row + c]. A decoding step's keys (or values), a third of each
// row of the fused QKV projection, written into the cache at its position.
template <typename T>
__device__ void copy_rows(const T* src, T* dst, uint32_t rows, uint32_t n, uint64_t src_row) {
    const uint32_t c = blockIdx.x * blockDim.x + threadIdx.x;
    if (c >= n) return;
    for (uint32_t r = blockIdx.y; r < rows; r += gridDim.y) dst[(size_t)r * n + c] = src[(size_t)r * src_row + c];
}

#define COPY_ROWS(NAME, T)                                                                    \
    extern "C" __global__ void NAME(const T* src, T* dst, uint32_t rows, uint32_t n,           \
                                    uint64_t src_row) {                                       \
        copy_rows<T>(src, dst, rows, n, src_row);                                             \
    }
COPY_ROWS(tt_copy_rows_f32, float)
COPY_ROWS(tt_copy_rows_f16, __half)
COPY_ROWS(tt_copy_rows_bf16, __nv_bfloat16)

// ---------------------------------------------------------------------------------------------
// Post-norm residual: out = LayerNorm(a + b) * w + beta over rows of d (one block per row).
// The sum is rounded to T first, as the separate add would store it; mean and centred
// variance in f32, two passes (as torch). Shared memory: d floats.
template <typename T>
__device__ __forceinline__ float round_to(float v) {
    T t;
    st(&t, 0, v);
    return ld(&t, 0);
}

template <typename T>
__device__ void add_layernorm(const T* a, const T* b, const T* w, const T* beta, T* out,
                              uint32_t d, float eps) {
    extern __shared__ float row[];
    __shared__ float red[32];
    const size_t base = (size_t)blockIdx.x * d;
    float s = 0.0f;
    for (uint32_t i = threadIdx.x; i < d; i += blockDim.x) {
        const float v = round_to<T>(ld(a, base + i) + ld(b, base + i));
        row[i] = v;
        s += v;
    }
    const float mean = block_sum(s, red) / (float)d;
    float q = 0.0f;
    for (uint32_t i = threadIdx.x; i < d; i += blockDim.x) {
        const float c = row[i] - mean;
        q += c * c;
    }
    const float var = block_sum(q, red) / (float)d;
    const float inv = 1.0f / sqrtf(var + eps);
    for (uint32_t i = threadIdx.x; i < d; i += blockDim.x) {
        st(out, base + i, (row[i] - mean) * inv * ld(w, i) + ld(beta, i));
    }
}

#define ADD_LN(NAME, T)                                                                       \
    extern "C" __global__ void NAME(const T* a, const T* b, const T* w, const T* beta, T* out, \
                                    uint32_t d, float eps) {                                  \
        add_layernorm<T>(a, b, w, beta, out, d, eps);                                         \
    }
ADD_LN(tt_add_layernorm_f32, float)
ADD_LN(tt_add_layernorm_f16, __half)
ADD_LN(tt_add_layernorm_bf16, __nv_bfloat16)

// ---------------------------------------------------------------------------------------------
// Candidate selection: per row r of f32 scores [rows, vocab], the N best of
//   v_i = (s[r, i] + mask[i]) + add[r]      (mask, add nullable: + 0)
// ranked by value descending, then index ascending (the host's order). One block per row.
// out row (2 * n + 1 u32): n value bit patterns, n indices (UINT32_MAX: fewer than n values),
// then a flag: 1 when the row's raw scores hold NaN or +inf (the host then decides).
__device__ __forceinline__ bool better(float a, uint32_t ia, float b, uint32_t ib) {
    return a > b || (a == b && ia < ib);
}

template <int N>
__device__ void topk(const float* s, const float* mask, const float* add, uint32_t* out,
                     uint32_t vocab, uint32_t n) {
    __shared__ float rv[32];
    __shared__ uint32_t ri[32];
    const uint32_t r = blockIdx.x;
    const float* row = s + (size_t)r * vocab;
    const float a = add ? add[r] : 0.0f;
    float val[N];
    uint32_t idx[N];
#pragma unroll
    for (int k = 0; k < N; k++) {
        val[k] = -INFINITY;
        idx[k] = 0xffffffffu;
    }
    int bad = 0;
    for (uint32_t i = threadIdx.x; i < vocab; i += blockDim.x) {
        const float raw = row[i];
        bad |= isnan(raw) || raw == INFINITY;
        float x = raw;
        if (mask) x = x + mask[i];
        x = x + a;
        if (better(x, i, val[N - 1], idx[N - 1])) {
            val[N - 1] = x;
            idx[N - 1] = i;
#pragma unroll
            for (int k = N - 1; k > 0; k--) {
                if (better(val[k], idx[k], val[k - 1], idx[k - 1])) {
                    const float tv = val[k];
                    val[k] = val[k - 1];
                    val[k - 1] = tv;
                    const uint32_t ti = idx[k];
                    idx[k] = idx[k - 1];
                    idx[k - 1] = ti;
                }
            }
        }
    }
    bad = __syncthreads_or(bad);
    uint32_t* o = out + (size_t)r * (2 * n + 1);
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, nwarps = blockDim.x >> 5;
    for (uint32_t k = 0; k < n; k++) {
        // the best head of all threads' sorted lists
        float bv = val[0];
        uint32_t bi = idx[0];
        for (int off = 16; off > 0; off >>= 1) {
            const float ov = __shfl_xor_sync(0xffffffffu, bv, off);
            const uint32_t oi = __shfl_xor_sync(0xffffffffu, bi, off);
            if (better(ov, oi, bv, bi)) {
                bv = ov;
                bi = oi;
            }
        }
        if (lane == 0) {
            rv[warp] = bv;
            ri[warp] = bi;
        }
        __syncthreads();
        bv = lane < nwarps ? rv[lane] : -INFINITY;
        bi = lane < nwarps ? ri[lane] : 0xffffffffu;
        for (int off = 16; off > 0; off >>= 1) {
            const float ov = __shfl_xor_sync(0xffffffffu, bv, off);
            const uint32_t oi = __shfl_xor_sync(0xffffffffu, bi, off);
            if (better(ov, oi, bv, bi)) {
                bv = ov;
                bi = oi;
            }
        }
        __syncthreads();  // rv/ri are rewritten next round
        if (threadIdx.x == 0) {
            o[k] = __float_as_uint(bv);
            o[n + k] = bi;
        }
        // the owner (indices are unique; the UINT32_MAX filler never wins over a real entry)
        if (idx[0] == bi && bi != 0xffffffffu) {
#pragma unroll
            for (int j = 0; j < N - 1; j++) {
                val[j] = val[j + 1];
                idx[j] = idx[j + 1];
            }
            val[N - 1] = -INFINITY;
            idx[N - 1] = 0xffffffffu;
        }
    }
    if (threadIdx.x == 0) o[2 * n] = bad ? 1u : 0u;
}

#define TOPK(NAME, N)                                                                         \
    extern "C" __global__ void NAME(const float* s, const float* mask, const float* add,       \
                                    uint32_t* out, uint32_t vocab, uint32_t n) {              \
        topk<N>(s, mask, add, out, vocab, n);                                                 \
    }
TOPK(tt_topk_1, 1)
TOPK(tt_topk_4, 4)
TOPK(tt_topk_8, 8)
TOPK(tt_topk_16, 16)
