import t from 'tap';
import { flatBuckets, partition, shardBuckets, shardRange } from '../../../src/runtime/optim/partition.js';
import { Segments } from '../../../src/runtime/optim/segments.js';

t.test('shards are equal, aligned, padded, and cover the parameters exactly once', async (t) => {
  for (const numel of [1, 15, 16, 17, 1000, 1001, 4099]) {
    for (const world of [1, 2, 3, 4, 7]) {
      const p = partition(numel, world);
      t.equal(p.shardSize % 16, 0);
      t.ok(p.paddedNumel >= numel && p.paddedNumel - numel < world * 16 + p.shardSize);
      let at = 0;
      for (let r = 0; r < world; r++) {
        const s = shardRange(p, r);
        t.equal(s.start, at, `numel ${numel} world ${world} rank ${r} starts where the previous ended`);
        t.ok(s.end - s.start <= p.shardSize);
        at = s.end;
      }
      t.equal(at, numel);
    }
  }
});

t.test('bad sizes are rejected', async (t) => {
  t.throws(() => partition(0, 2), RangeError);
  t.throws(() => partition(10, 0), RangeError);
});

t.test('buckets bound the bytes one collective moves', async (t) => {
  const p = partition(10_000, 4);
  const b = shardBuckets(p, 4, 4 * 4 * 160);
  t.equal(b[0].end, 160);
  t.equal(b.at(-1)!.end, p.shardSize);
  for (const x of b) t.ok((x.end - x.start) * 4 * 4 <= 4 * 4 * 160);
  t.same(flatBuckets(100, 4, 64), [
    { start: 0, end: 16 },
    { start: 16, end: 32 },
    { start: 32, end: 48 },
    { start: 48, end: 64 },
    { start: 64, end: 80 },
    { start: 80, end: 96 },
    { start: 96, end: 100 },
  ]);
  // a bucket smaller than one aligned chunk still makes progress
  t.equal(shardBuckets(p, 4, 1)[0].end, 16);
});

t.test('segments map flat ranges onto the arrays without copying', async (t) => {
  const a = new Float32Array([0, 1, 2]);
  const b = new Float32Array([3, 4]);
  const c = new Float32Array([5, 6, 7, 8]);
  const s = new Segments([a, b, c]);
  t.equal(s.numel, 9);
  t.same(
    s.pieces({ start: 2, end: 6 }).map((p) => [p.index, p.local.start, p.local.end]),
    [
      [0, 2, 3],
      [1, 0, 2],
      [2, 0, 1],
    ],
  );
  t.equal(s.contiguous({ start: 5, end: 8 })!.buffer, c.buffer);
  t.equal(s.contiguous({ start: 2, end: 4 }), undefined);
  const out = new Float32Array(5);
  s.copyOut({ start: 2, end: 7 }, out, 0);
  t.same([...out], [2, 3, 4, 5, 6]);
  s.copyIn({ start: 1, end: 4 }, new Float32Array([9, 10, 11, 12]), 1);
  t.same([...a, ...b], [0, 10, 11, 12, 4]);
});
