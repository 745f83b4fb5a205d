// The OpenBLAS side of scripts/bench/gemm.mjs: times `ops` cblas_sgemm calls of one shape (row-major, the
// same operands and flags as dtrain's gemm) after `warmup` untimed ones, writes each call's nanoseconds as
// little-endian float64 to `out`, and prints {"cpu_s":..,"wall_s":..,"config":..} for the timed calls.
// Run with OPENBLAS_NUM_THREADS=1.
//   gemm-openblas M N K TRANS_A TRANS_B ACCUMULATE OPS WARMUP OUT
#include <cblas.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/resource.h>
#include <time.h>

static double now_ns(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return t.tv_sec * 1e9 + t.tv_nsec;
}

static double cpu_s(void) {
  struct rusage u;
  getrusage(RUSAGE_SELF, &u);
  return u.ru_utime.tv_sec + u.ru_stime.tv_sec + (u.ru_utime.tv_usec + u.ru_stime.tv_usec) / 1e6;
}

int main(int argc, char** argv) {
  if (argc != 10) {
    fprintf(stderr, "usage: gemm-openblas M N K TRANS_A TRANS_B ACCUMULATE OPS WARMUP OUT\n");
    return 2;
  }
  const int m = atoi(argv[1]), n = atoi(argv[2]), k = atoi(argv[3]);
  const int ta = atoi(argv[4]), tb = atoi(argv[5]), acc = atoi(argv[6]);
  const int ops = atoi(argv[7]), warmup = atoi(argv[8]);
  float* a = malloc(sizeof(float) * (size_t)m * k);
  float* b = malloc(sizeof(float) * (size_t)k * n);
  float* c = calloc((size_t)m * n, sizeof(float));
  double* samples = malloc(sizeof(double) * (size_t)ops);
  for (size_t i = 0; i < (size_t)m * k; i++) a[i] = (float)((i % 17) * 0.01 - 0.08);
  for (size_t i = 0; i < (size_t)k * n; i++) b[i] = (float)((i % 13) * 0.01 - 0.06);
  const float beta = acc ? 1.0f : 0.0f;
  const int lda = ta ? m : k, ldb = tb ? k : n;
  double cpu0 = cpu_s(), wall0 = now_ns();
  for (int i = 0; i < warmup + ops; i++) {
    if (i == warmup) cpu0 = cpu_s(), wall0 = now_ns();
    const double t0 = now_ns();
    cblas_sgemm(CblasRowMajor, ta ? CblasTrans : CblasNoTrans, tb ? CblasTrans : CblasNoTrans, m, n, k, 1.0f, a, lda, b,
                ldb, beta, c, n);
    if (i >= warmup) samples[i - warmup] = now_ns() - t0;
  }
  printf("{\"cpu_s\":%.6f,\"wall_s\":%.6f,\"config\":\"%s\",\"threads\":%d}\n", cpu_s() - cpu0,
         (now_ns() - wall0) / 1e9, openblas_get_config(), openblas_get_num_threads());
  FILE* f = fopen(argv[9], "wb");
  if (!f || fwrite(samples, sizeof(double), (size_t)ops, f) != (size_t)ops) {
    perror(argv[9]);
    return 1;
  }
  fclose(f);
  return 0;
}
