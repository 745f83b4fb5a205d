/* What the C references of scripts/bench/collectives.mjs share: the clock, the driver's lists, and the samples
 * file every implementation leaves (<dir>/<bytes>.f64, float64 nanoseconds, read by src/runtime/bench-stats.ts). */
#pragma once
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static inline double now_ns(clockid_t clock) {
  struct timespec ts;
  clock_gettime(clock, &ts);
  return (double)ts.tv_sec * 1e9 + (double)ts.tv_nsec;
}

/* "a,b,c" into out (at most max numbers); returns how many */
static inline int parse_list(char* s, long* out, int max) {
  int n = 0;
  for (char* tok = strtok(s, ","); tok && n < max; tok = strtok(NULL, ",")) out[n++] = atol(tok);
  return n;
}

/* 0 when written; else says why on stderr and returns -1 */
static inline int write_samples(const char* dir, long bytes, const double* samples, long n) {
  char path[4096];
  snprintf(path, sizeof path, "%s/%ld.f64", dir, bytes);
  FILE* f = fopen(path, "wb");
  if (!f || fwrite(samples, sizeof(double), (size_t)n, f) != (size_t)n || fclose(f) != 0) {
    perror(path);
    return -1;
  }
  return 0;
}
