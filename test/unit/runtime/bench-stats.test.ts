import t from 'tap';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { median, opsFor, percentile, readSamples, samplesBytes, summarize } from '../../../src/runtime/bench-stats.js';

t.test('mean, p50 and p99 count every op: one slow op in a hundred doubles the mean', async (t) => {
  const ns = new Float64Array(1000).fill(1000); // 1 µs each
  for (let i = 0; i < 1000; i += 100) ns[i] = 101_000; // every 100th op takes 101 µs
  const s = summarize(ns);
  t.equal(s.ops, 1000);
  t.equal(s.mean_us, 2, '(990 × 1 + 10 × 101) / 1000');
  t.equal(s.p50_us, 1);
  t.equal(s.p99_us, 1, 'the 990th smallest of 1000 (nearest rank)');
  t.equal(s.max_us, 101);
  t.equal(s.best_chunk_us, 2, 'each chunk of 100 holds one slow op');
  ns[501] = 2_000_000;
  t.equal(summarize(ns).p99_us, 101, 'an 11th slow op reaches the 99th percentile');
});

t.test('nearest-rank percentiles and the median', async (t) => {
  const sorted = [1, 2, 3, 4, 5, 6, 7, 8, 9, 10];
  t.equal(percentile(sorted, 0.5), 5);
  t.equal(percentile(sorted, 0.99), 10);
  t.equal(percentile([7], 0.99), 7);
  t.equal(median([3, 1, 2]), 2);
  t.equal(median([4, 1, 3, 2]), 2.5);
});

t.test('small sizes time at least 100k ops; large ones fewer, never under 100', async (t) => {
  t.equal(opsFor(4096), 100_000);
  t.equal(opsFor(65536), 61_035);
  t.equal(opsFor(16 << 20), 238);
  t.equal(opsFor(1 << 30), 100);
});

t.test('samples files round-trip as little-endian float64 nanoseconds', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'dtrain-bench-stats-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const ns = Float64Array.from([1234.5, 1e9, 0.25]);
  writeFileSync(join(dir, 's.f64'), samplesBytes(ns));
  t.same(Array.from(readSamples(join(dir, 's.f64'))), Array.from(ns));
});
