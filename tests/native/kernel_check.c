/* Stand-alone check of edge/padim/_mahal.c, for any target a C compiler (or a cross compiler and
 * qemu) can build and run: random factors in the blocked layout, fp32 and fp16, every code path
 * this CPU has, against a double-precision reference. Prints one line and exits 0 on success.
 * Built and run by tests/test_mahal_kernel.py (natively; for aarch64 when a cross gcc and qemu exist). */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

size_t ei_block_elems(int d);
int ei_isa(void);
int ei_mahalanobis(const void *factor, int is_f16, const float *scale, const float *mean, const float *x, int B,
                   int d, int P, int p0, int p1, float *out, int force_generic);

static double rnd(unsigned *s) { *s = *s * 1103515245u + 12345u; return ((*s >> 8) & 0xffff) / 65536.0 - 0.5; }

int main(void) {
    unsigned seed = 7;
    int fails = 0;
    const int ds[] = {1, 5, 8, 13, 100};
    for (int di = 0; di < 5; ++di) {
        int d = ds[di], P = 5, B = 6;
        size_t S = ei_block_elems(d);
        double *L = calloc((size_t)P * d * d, sizeof(double));
        float *blk = calloc((size_t)P * S, sizeof(float));
        _Float16 *blk16 = calloc((size_t)P * S, sizeof(_Float16));
        float *scale = malloc(sizeof(float) * P), *mean = malloc(sizeof(float) * P * d);
        float *x = malloc(sizeof(float) * B * d * P), *out = malloc(sizeof(float) * B * P);
        double *ref = malloc(sizeof(double) * B * P);
        for (int p = 0; p < P; ++p) {
            for (int i = 0; i < d; ++i)
                for (int j = 0; j <= i; ++j) L[((size_t)p * d + i) * d + j] = (i == j ? 2.0 : 0.0) + rnd(&seed);
            for (int j = 0; j < d; ++j) mean[p * d + j] = (float)rnd(&seed);
            double mx = 0;
            size_t k = 0;
            for (int r0 = 0; r0 < d; r0 += 8) {
                int nc = r0 + 8 < d ? r0 + 8 : d;
                for (int j = 0; j < nc; ++j)
                    for (int r = 0; r < 8; ++r, ++k) {
                        int row = r0 + r;
                        double v = (row < d && j <= row) ? L[((size_t)p * d + row) * d + j] : 0.0;
                        blk[(size_t)p * S + k] = (float)v;
                        if (fabs(v) > mx) mx = fabs(v);
                    }
            }
            scale[p] = (float)mx;
            for (size_t e = 0; e < S; ++e) blk16[(size_t)p * S + e] = (_Float16)(blk[(size_t)p * S + e] / mx);
        }
        for (int i = 0; i < B * d * P; ++i) x[i] = (float)rnd(&seed) * 3;
        for (int b = 0; b < B; ++b)
            for (int p = 0; p < P; ++p) {
                double m2 = 0;
                for (int i = 0; i < d; ++i) {
                    double z = 0;
                    for (int j = 0; j <= i; ++j)
                        z += L[((size_t)p * d + i) * d + j] * ((double)x[((size_t)b * d + j) * P + p] - mean[p * d + j]);
                    m2 += z * z;
                }
                ref[b * P + p] = sqrt(m2);
            }
        for (int gen = 0; gen < 2; ++gen)
            for (int f16 = 0; f16 < 2; ++f16) {
                memset(out, 0, sizeof(float) * B * P);
                ei_mahalanobis(f16 ? (const void *)blk16 : (const void *)blk, f16, f16 ? scale : NULL, mean, x, B, d,
                               P, 0, P, out, gen);
                double worst = 0;
                for (int i = 0; i < B * P; ++i) {
                    double e = fabs(out[i] - ref[i]) / ref[i];
                    if (e > worst) worst = e;
                }
                double tol = f16 ? 3e-3 : 3e-5;
                if (!(worst <= tol)) {
                    printf("FAIL d=%d generic=%d fp16=%d worst relative error %.3g > %.3g\n", d, gen, f16, worst, tol);
                    fails++;
                }
            }
        free(L); free(blk); free(blk16); free(scale); free(mean); free(x); free(out); free(ref);
    }
    if (!fails) printf("ok isa=%d\n", ei_isa());
    return fails ? 1 : 0;
}
