/* Mahalanobis distances from blocked triangular precision factors, in fp16 or fp32.
 *
 * Scoring must read every position's factor L_p (d x d lower triangular) for every image; at
 * d=100 on a 64x64 grid that is 165 MB as dense fp32. This kernel reads the factors in a blocked
 * layout (rows in blocks of 8, each block stored column by column up to its last non-zero
 * column: ~58% of dense) and optionally in fp16 with fp32 arithmetic (~29% of dense), and does
 * the centring, z = L (x - mu), |z| and the per-position scale in one pass. The images of a batch
 * (up to a chunk of them, see chunk_images) share one read of each factor.
 *
 * Plain C with no Python headers: it is loaded with ctypes (see kernel.py), which releases the
 * GIL during the call, so Python threads can run disjoint position ranges in parallel.
 *
 * Layout of one position's factor (S = ei_block_elems(d) elements):
 *   for r0 = 0, 8, 16, ... < d:  nc = min(r0 + 8, d) columns, each 8 values (rows r0..r0+7,
 *   zero where the row is past d or above the diagonal), i.e. element [j*8 + r] = L[r0+r, j].
 * The distance is  out[b, p] = scale[p] * |F_p (x[b, :, p] - mean[p])|  where F_p = L_p / scale[p].
 */

#include <math.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define ROWS 8
#define GROUP 8 /* at most this many images per pass over one factor (it stays in cache between passes) */
/* Positions whose embeddings are gathered at once (two cache lines of each row of x), and the most
 * bytes their gathered embeddings take (this sets how many images share one read of the factors).
 * 32 / 1 MiB measured best at B = 1, 8 and 56 against 8, 16 and 64 on the benchmark VM. */
#ifndef PT
#define PT 32
#endif
#ifndef YBUF_BYTES
#define YBUF_BYTES (1024 * 1024)
#endif
/* Software prefetch of the factor stream, PF_BYTES ahead. Hardware prefetchers stop at 4 KiB page
 * ends; with a cold cache (as after an inference) this took the batch-1 kernel on the benchmark VM
 * from ~4.7-7 ms to ~3.4 ms (a BLAS gemv reads the same bytes in ~1.5 ms). */
#ifndef PF_BYTES
#define PF_BYTES 4096
#endif
#ifndef PF_LOC
#define PF_LOC 3
#endif
#define PREFETCH(p) __builtin_prefetch((const char *)(p) + PF_BYTES, 0, PF_LOC)

#if defined(__x86_64__) || defined(__i386__)
#define EI_X86 1
#include <immintrin.h>
#endif

#if defined(__aarch64__)
typedef __fp16 ei_half;
static inline float half_to_float(uint16_t h) {
    ei_half v;
    memcpy(&v, &h, 2);
    return (float)v;
}
#else
static inline float half_to_float(uint16_t h) {
    uint32_t sign = (uint32_t)(h & 0x8000u) << 16;
    uint32_t exp = (h >> 10) & 0x1fu;
    uint32_t man = h & 0x3ffu;
    uint32_t bits;
    if (exp == 0) {
        if (man == 0) {
            bits = sign;
        } else { /* subnormal: normalise */
            exp = 127 - 15 + 1;
            while (!(man & 0x400u)) {
                man <<= 1;
                exp--;
            }
            man &= 0x3ffu;
            bits = sign | (exp << 23) | (man << 13);
        }
    } else if (exp == 31) {
        bits = sign | 0x7f800000u | (man << 13);
    } else {
        bits = sign | ((exp + 127 - 15) << 23) | (man << 13);
    }
    float f;
    memcpy(&f, &bits, 4);
    return f;
}
#endif

size_t ei_block_elems(int d) {
    size_t s = 0;
    for (int r0 = 0; r0 < d; r0 += ROWS) s += (size_t)ROWS * (size_t)(r0 + ROWS < d ? r0 + ROWS : d);
    return s;
}

/* Images handled per gather: as many as fit YBUF_BYTES for PT positions, a multiple of GROUP. */
static int chunk_images(int B, int d) {
    int bc = (int)(YBUF_BYTES / ((size_t)PT * (size_t)d * sizeof(float)));
    bc -= bc % GROUP;
    if (bc < GROUP) bc = GROUP;
    return B < bc ? B : bc;
}

/* Size of the next group of images: GROUP, then 4, then what is left (each has its own block code). */
static inline int group_size(int left) { return left >= GROUP ? GROUP : left >= 4 ? 4 : left; }

/* Centred embeddings of PT neighbouring positions for images b0..b0+nb-1, laid out for the blocks:
 * position q's images come in groups (group_size); a group of n images starting at g0 is
 * y[q*bc*d + g0*d + j*n + g] = x[b0+g0+g, j, p+q] - mean[p+q, j]  (column j of every image together).
 * x is (B, d, P): reading one position's d values directly would touch d*B cache lines (and pages)
 * P floats apart for every position (at B=56, d=100 that was 5.2 ms per image of CPU; now 1.7-2.5).
 * Here each row of x is read as whole cache lines (PT floats), the next tile's prefetched, in two
 * passes whose inner loops are contiguous: the rows minus the (transposed) means into t, then t's
 * transpose into y. t: PT*d*(bc + 1) floats. */
static void gather(const float *restrict x, const float *restrict mean, int b0, int nb, int bc, int d, int P,
                   int p, int np, int pnext, float *restrict y, float *restrict t) {
    float *restrict mt = t;                       /* mt[j*PT + q] = mean[p+q, j] */
    float *restrict rows = t + (size_t)PT * d;    /* rows[(g*d + j)*PT + q] */
    for (int q = 0; q < PT; ++q)
        for (int j = 0; j < d; ++j) mt[j * PT + q] = q < np ? mean[(size_t)(p + q) * d + j] : 0.0f;
    for (int g = 0; g < nb; ++g) {
        for (int j = 0; j < d; ++j) {
            const float *restrict src = x + ((size_t)(b0 + g) * d + j) * P;
            float *restrict dst = rows + ((size_t)g * d + j) * PT;
            const float *restrict m = mt + (size_t)j * PT;
            if (pnext < P) {
                __builtin_prefetch(src + pnext, 0, 3);
                __builtin_prefetch(src + pnext + 16, 0, 3);
            }
            if (np == PT) {
                for (int q = 0; q < PT; ++q) dst[q] = src[p + q] - m[q];
            } else {
                for (int q = 0; q < np; ++q) dst[q] = src[p + q] - m[q];
            }
        }
    }
    for (int q = 0; q < np; ++q) {
        float *restrict yq = y + (size_t)q * bc * d;
        for (int g0 = 0, n; g0 < nb; g0 += n) {
            n = group_size(nb - g0);
            float *restrict yg = yq + (size_t)g0 * d;
            for (int g = 0; g < n; ++g) {
                const float *restrict r = rows + (size_t)(g0 + g) * d * PT + q;
                for (int j = 0; j < d; ++j) yg[j * n + g] = r[(size_t)j * PT];
            }
        }
    }
}

/* The same layout for one position read directly from x: faster when few rows of x are read (B*d
 * small enough for their pages to stay in the TLB, e.g. one image at d=100). */
static void centre(const float *restrict x, const float *restrict mean, int b0, int nb, int d, int P, int p,
                   float *restrict y) {
    const float *mu = mean + (size_t)p * d;
    for (int g0 = 0, n; g0 < nb; g0 += n) {
        n = group_size(nb - g0);
        float *restrict yg = y + (size_t)g0 * d;
        for (int g = 0; g < n; ++g) {
            const float *xb = x + (size_t)(b0 + g0 + g) * d * P + p;
            for (int j = 0; j < d; ++j) yg[j * n + g] = xb[(size_t)j * P] - mu[j];
        }
    }
}
#define DIRECT_ROWS 512 /* B*d up to this: centre, else gather */

/* The loop both code paths share: chunks of images, tiles of PT positions, groups of images, row
 * blocks. BLOCK(f, nc, y, n, m2) adds |(rows of one block) . y_g|^2 of each image g < n of a group
 * (y[j*n + g], see gather) to m2[g]. */
#define DRIVER(ATTR, NAME, T, BLOCK)                                                               \
    ATTR static void NAME(const T *F, size_t S, const float *scale, const float *mean,            \
                          const float *x, int B, int d, int P, int p0, int p1, float *out,         \
                          float *y, int bc) {                                                      \
        for (int b0 = 0; b0 < B; b0 += bc) {                                                       \
            int nb = B - b0 < bc ? B - b0 : bc;                                                    \
            for (int pt = p0; pt < p1; pt += PT) {                                                 \
                int np = p1 - pt < PT ? p1 - pt : PT;                                              \
                int direct = nb * d <= DIRECT_ROWS;                                                \
                if (!direct)                                                                       \
                    gather(x, mean, b0, nb, bc, d, P, pt, np, pt + PT < p1 ? pt + PT : P, y,       \
                           y + (size_t)PT * bc * d);                                               \
                for (int q = 0; q < np; ++q) {                                                     \
                    int p = pt + q;                                                                \
                    const float *yq = y + (direct ? 0 : (size_t)q * bc * d);                       \
                    if (direct) centre(x, mean, b0, nb, d, P, p, y);                               \
                    float s = scale ? scale[p] : 1.0f;                                             \
                    for (int g0 = 0, n; g0 < nb; g0 += n) {                                        \
                        n = group_size(nb - g0);                                                   \
                        float m2[GROUP] = {0};                                                     \
                        const T *f = F + (size_t)p * S;                                            \
                        const float *yg = yq + (size_t)g0 * d;                                     \
                        for (int r0 = 0; r0 < d; r0 += ROWS) {                                     \
                            int nc = r0 + ROWS < d ? r0 + ROWS : d;                                \
                            BLOCK(f, nc, yg, n, m2);                                               \
                            f += (size_t)nc * ROWS;                                                \
                        }                                                                          \
                        for (int g = 0; g < n; ++g)                                                \
                            out[(size_t)(b0 + g0 + g) * P + p] = sqrtf(m2[g]) * s;                 \
                    }                                                                              \
                }                                                                                  \
            }                                                                                      \
        }                                                                                          \
    }

/* ---------------------------------------------------------------- portable C ---------------- */

#define GENERIC_BLOCK(LOAD, T)                                                                     \
    static inline void generic_block_##T(const T *f, int nc, const float *y, int nb, float *m2) { \
        float acc[GROUP][ROWS];                                                                    \
        memset(acc, 0, sizeof acc);                                                                \
        for (int j = 0; j < nc; ++j) {                                                             \
            if (((j * ROWS * sizeof(T)) & 63) == 0) PREFETCH(f + j * ROWS);                        \
            float w[ROWS];                                                                         \
            for (int r = 0; r < ROWS; ++r) w[r] = LOAD(f[j * ROWS + r]);                           \
            for (int g = 0; g < nb; ++g) {                                                         \
                float yj = y[j * nb + g];                                                          \
                for (int r = 0; r < ROWS; ++r) acc[g][r] += w[r] * yj;                             \
            }                                                                                      \
        }                                                                                          \
        for (int g = 0; g < nb; ++g)                                                               \
            for (int r = 0; r < ROWS; ++r) m2[g] += acc[g][r] * acc[g][r];                         \
    }                                                                                              \
    DRIVER(, generic_##T, T, generic_block_##T)

#define LOAD_F32(v) (v)
#define LOAD_F16(v) half_to_float(v)
typedef uint16_t u16;
GENERIC_BLOCK(LOAD_F32, float)
GENERIC_BLOCK(LOAD_F16, u16)

/* ---------------------------------------------------------------- x86 AVX2 + FMA + F16C ----- */
#ifdef EI_X86
#define AVX2 __attribute__((target("avx2,fma,f16c")))

AVX2 static inline __m256 load8_f32(const float *p) { return _mm256_loadu_ps(p); }
AVX2 static inline __m256 load8_f16(const uint16_t *p) {
    return _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)p));
}
AVX2 static inline float hsum8(__m256 v) {
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
}

/* One row block for a group of NB images (y[j*NB + g]): U independent accumulators per image
 * hide the FMA latency (NB*U chains of FMAs in flight). */
#define AVX2_BLOCK(T, NB, U)                                                                       \
    AVX2 static inline __attribute__((always_inline)) void block_##T##_##NB(                     \
        const T *f, int nc, const float *y, float *m2) {                                          \
        __m256 acc[NB][U];                                                                         \
        for (int g = 0; g < NB; ++g)                                                               \
            for (int u = 0; u < U; ++u) acc[g][u] = _mm256_setzero_ps();                           \
        int j = 0;                                                                                 \
        for (; j + U <= nc; j += U) {                                                              \
            PREFETCH(f + (size_t)j * ROWS);                                                        \
            if (U * ROWS * sizeof(T) > 64) PREFETCH((const char *)(f + (size_t)j * ROWS) + 64);    \
            for (int u = 0; u < U; ++u) {                                                          \
                __m256 w = load8_##T(f + (size_t)(j + u) * ROWS);                                  \
                const float *yj = y + (size_t)(j + u) * NB;                                        \
                for (int g = 0; g < NB; ++g)                                                       \
                    acc[g][u] = _mm256_fmadd_ps(w, _mm256_broadcast_ss(yj + g), acc[g][u]);        \
            }                                                                                      \
        }                                                                                          \
        for (; j < nc; ++j) {                                                                      \
            __m256 w = load8_##T(f + (size_t)j * ROWS);                                            \
            const float *yj = y + (size_t)j * NB;                                                  \
            for (int g = 0; g < NB; ++g)                                                           \
                acc[g][0] = _mm256_fmadd_ps(w, _mm256_broadcast_ss(yj + g), acc[g][0]);            \
        }                                                                                          \
        for (int g = 0; g < NB; ++g) {                                                             \
            __m256 a = acc[g][0];                                                                  \
            for (int u = 1; u < U; ++u) a = _mm256_add_ps(a, acc[g][u]);                           \
            m2[g] += hsum8(_mm256_mul_ps(a, a));                                                   \
        }                                                                                          \
    }

#define AVX2_KERNEL(T)                                                                             \
    AVX2_BLOCK(T, 1, 4)                                                                            \
    AVX2_BLOCK(T, 2, 2)                                                                            \
    AVX2_BLOCK(T, 3, 2)                                                                            \
    AVX2_BLOCK(T, 4, 2)                                                                            \
    AVX2_BLOCK(T, 8, 1)                                                                            \
    AVX2 static inline __attribute__((always_inline)) void avx2_block_##T(                       \
        const T *f, int nc, const float *y, int nb, float *m2) {                                  \
        switch (nb) {                                                                              \
        case 1: block_##T##_1(f, nc, y, m2); break;                                                \
        case 2: block_##T##_2(f, nc, y, m2); break;                                                \
        case 3: block_##T##_3(f, nc, y, m2); break;                                                \
        case 4: block_##T##_4(f, nc, y, m2); break;                                                \
        default: block_##T##_8(f, nc, y, m2); break;                                               \
        }                                                                                          \
    }                                                                                              \
    DRIVER(AVX2, avx2_##T, T, avx2_block_##T)

typedef uint16_t f16;
typedef float f32;
AVX2_KERNEL(f32)
AVX2_KERNEL(f16)

static int have_avx2(void) {
    __builtin_cpu_init();
    return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") && __builtin_cpu_supports("f16c");
}
#endif

/* ---------------------------------------------------------------- entry points -------------- */

/* This source's version, bumped with every change to what the kernel does or how fast (kernel.py's
 * KERNEL_VERSION must match; a library without ei_version is version 1): an editable install whose
 * library was built from an older source still gives the same distances, but `info` says to rebuild. */
#define EI_VERSION 2
int ei_version(void) { return EI_VERSION; }

/* Which code path runs: 2 = x86 AVX2/FMA/F16C, 1 = portable C with native fp16 (aarch64),
 * 0 = portable C (fp16 converted in software: correct but slow; prefer fp32 there). */
int ei_isa(void) {
#ifdef EI_X86
    if (have_avx2()) return 2;
#endif
#if defined(__aarch64__)
    return 1;
#else
    return 0;
#endif
}

/* out[b, p] for p in [p0, p1). factor: P * S elements (fp16 bits if is_f16, else fp32).
 * scale: P floats or NULL. mean: (P, d). x: (B, d, P). out: (B, P). force_generic: tests.
 * Returns 0, or -1 if the work buffer could not be allocated. */
int ei_mahalanobis(const void *factor, int is_f16, const float *scale, const float *mean, const float *x,
                   int B, int d, int P, int p0, int p1, float *out, int force_generic) {
    size_t S = ei_block_elems(d);
    int bc = chunk_images(B, d);
    float *y = (float *)malloc(sizeof(float) * (size_t)PT * (size_t)d * (2 * (size_t)bc + 1)); /* y, t */
    if (!y) return -1;
#ifdef EI_X86
    if (!force_generic && have_avx2()) {
        if (is_f16)
            avx2_f16((const uint16_t *)factor, S, scale, mean, x, B, d, P, p0, p1, out, y, bc);
        else
            avx2_f32((const float *)factor, S, scale, mean, x, B, d, P, p0, p1, out, y, bc);
        free(y);
        return 0;
    }
#endif
    (void)force_generic;
    if (is_f16)
        generic_u16((const uint16_t *)factor, S, scale, mean, x, B, d, P, p0, p1, out, y, bc);
    else
        generic_float((const float *)factor, S, scale, mean, x, B, d, P, p0, p1, out, y, bc);
    free(y);
    return 0;
}
