// What recording one collective in the flight recorder costs, on one thread: an inline op (claimed started,
// then ended) and a queued one (claimed, started, ended), into a mapped file as a launched rank does. Built
// and run by scripts/bench/flight-recorder.js; prints per-op ns over batches (mean, p50, p99) beside a
// reference loop doing the same work without recording, and the target (<= 50 ns per op).
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

#include "collectives/flight_recorder.h"

namespace {

uint64_t nowNs() {
  timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return uint64_t(ts.tv_sec) * 1000000000ull + uint64_t(ts.tv_nsec);
}

volatile uint64_t sink;

template <typename F>
std::vector<double> perOpNs(int batches, int perBatch, F&& op) {
  std::vector<double> out;
  for (int b = 0; b < batches; ++b) {
    uint64_t t0 = nowNs();
    for (int i = 0; i < perBatch; ++i) op(i);
    out.push_back(double(nowNs() - t0) / perBatch);
  }
  return out;
}

void report(const char* what, std::vector<double> v) {
  std::sort(v.begin(), v.end());
  double sum = 0;
  for (double x : v) sum += x;
  std::printf("%-34s mean %6.1f ns  p50 %6.1f ns  p99 %6.1f ns\n", what, sum / v.size(), v[v.size() / 2],
              v[std::min(v.size() - 1, v.size() * 99 / 100)]);
}

}  // namespace

int main(int argc, char** argv) {
  std::string path = argc > 1 ? argv[1] : "";
  int batches = argc > 2 ? std::atoi(argv[2]) : 2000;
  const int perBatch = 1000;
  dtrain::FlightRecorder recorder(path, 0);
  dtrain::FlightRing ring = recorder.addGroup("world", {0, 1, 2, 3}, 0);
  uint64_t counter = 0;
  // warm the pages and caches
  for (int i = 0; i < 100000; ++i) ring.end(ring.begin(1, 0, 1024, 4096, 0, true), false);
  report("reference (no recording)", perOpNs(batches, perBatch, [&](int i) { sink = ++counter + uint64_t(i); }));
  report("inline op: begin(started) + end",
         perOpNs(batches, perBatch, [&](int i) { ring.end(ring.begin(1, 0, uint64_t(i), 4096, 0, true), false); }));
  report("queued op: begin + start + end", perOpNs(batches, perBatch, [&](int i) {
           uint64_t seq = ring.begin(1, 0, uint64_t(i), 4096, 0, false);
           ring.start(seq);
           ring.end(seq, false);
         }));
  std::printf("target: <= 50 ns per op (%s)\n", path.empty() ? "anonymous memory" : "mapped file");
  return 0;
}
