/**
 * Gradient reduction overlapped with the backward, in real processes over the real transports: the same params
 * bit for bit as the plain step for several bucket sizes (the gradients are exact on the 2^-12 grid, so the fp32
 * sums agree in any order and any bucketing), the first bucket's collective starts before the backward's last
 * layer ends, and a checkpoint saved with overlap is the one saved without it and resumes the same.
 */
import t, { type Test } from 'tap';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { runWorkers, type WorkerResult } from '../../helpers/collectives-harness.js';

const worker = fileURLToPath(new URL('../../fixtures/optim/overlap-worker.mjs', import.meta.url));
const work = mkdtempSync(join(tmpdir(), 'dtrain-overlap-'));
t.teardown(() => rmSync(work, { recursive: true, force: true }));

const built = existsSync(fileURLToPath(new URL('../../../dist/runtime/index.js', import.meta.url)));
const skip = built ? false : 'dist/ not built (npm run build:ts)';
if (!built && process.env.DTRAIN_REQUIRE_INTEGRATION)
  throw new Error('dist/ is not built: run npm run build:ts (required under CI)');

// 80 KB, 280 KB, 280 KB and 120 KB of fp32 gradients
const LAYERS = [20_000, 70_000, 70_000, 30_001];
const SMALL = 16 * 1024; // smaller than every layer (and small enough to run inline when nothing is queued)
const MEDIUM = 300 * 1024; // on the progress thread; layers share buckets and buckets cross layers
const WHOLE = 25 << 20; // the default: one bucket for the whole model

interface Run {
  results: WorkerResult[];
  params: Float32Array[];
}

async function run(nodes: number[], job: Record<string, unknown>): Promise<Run> {
  const out = join(work, `out-${Math.random().toString(36).slice(2)}`);
  mkdirSync(out);
  const results = await runWorkers({
    nodes,
    script: worker,
    args: [JSON.stringify({ layers: LAYERS, steps: 3, ...job, out })],
    timeoutMs: 120_000,
  });
  for (const r of results)
    if (r.code !== 0) throw new Error(`rank ${r.rank} exited ${r.code}: ${r.stderr.slice(-2000)}`);
  const params = results.map((r) => new Float32Array(readFileSync(join(out, `rank${r.rank}.bin`)).buffer));
  return { results, params };
}

function sameBits(t: Test, got: Float32Array[], want: Float32Array[], what: string): void {
  t.ok(
    got.length === want.length && got.every((g, i) => Buffer.from(g.buffer).equals(Buffer.from(want[i].buffer))),
    what,
  );
}

for (const [nodes, label] of [
  [[1, 1], 'world 2 over tcp'],
  [[2, 1], 'world 3, hierarchical'],
] as const) {
  for (const stage of [1, 2]) {
    t.test(`${label}, stage ${stage}: overlap gives bitwise the params of the plain step`, { skip }, async (t) => {
      const plain = await run([...nodes], { stage, bucketBytes: WHOLE, overlap: false });
      for (const bucketBytes of [SMALL, MEDIUM, WHOLE]) {
        const got = await run([...nodes], { stage, bucketBytes, overlap: true });
        sameBits(t, got.params, plain.params, `${bucketBytes} B buckets: every rank's params`);
      }
    });
  }
}

t.test('the first bucket starts before the backward ends; dist.stats() shows the overlap', { skip }, async (t) => {
  for (const stage of [1, 2]) {
    const { results } = await run([1, 1], { stage, bucketBytes: MEDIUM, overlap: true });
    for (const r of results) {
      const { layerEnds, timeline, stats } = r.report as {
        layerEnds: number[];
        timeline: Array<{ postedAt: number; settledAt: number }>;
        stats: Record<string, Array<{ op: string; overlap?: Record<string, number> }>>;
      };
      // the backward runs the layers last first: layerEnds[0] is its end
      t.ok(timeline.length > 1, `stage ${stage} rank ${r.rank}: ${timeline.length} buckets`);
      t.ok(
        timeline[0].postedAt < layerEnds[0] && timeline[0].postedAt >= layerEnds[LAYERS.length - 1],
        `stage ${stage} rank ${r.rank}: the first bucket was posted after the last layer's backward, ` +
          'before the first layer’s',
      );
      const op = stage === 1 ? 'allReduce' : 'reduceScatter';
      const entry = stats.data.find((s) => s.op === op && s.overlap);
      t.ok(entry, `stage ${stage} rank ${r.rank}: dist.stats().data has ${op}'s overlap`);
      t.equal(entry?.overlap?.reductions, 3, 'one reduction a step');
      t.ok((entry?.overlap?.overlappedMs ?? 0) > 0, `overlapped ${entry?.overlap?.overlappedMs} ms`);
      t.ok((entry?.overlap?.inFlightMs ?? 0) >= (entry?.overlap?.overlappedMs ?? 0), 'in flight ≥ overlapped');
    }
  }
});

/** The rank files of the checkpoint `latest` names (the manifest holds only what they hash to). */
function shardFiles(dir: string): Map<string, Buffer> {
  const gen = join(dir, readFileSync(join(dir, 'latest'), 'utf8').trim());
  return new Map(
    readdirSync(gen)
      .filter((f) => f.endsWith('.bin'))
      .map((f) => [f, readFileSync(join(gen, f))]),
  );
}

t.test('a checkpoint saved with overlap is the plain one, and resumes to the same params', { skip }, async (t) => {
  for (const stage of [1, 2]) {
    const withOverlap = join(work, `ckpt-overlap-${stage}`);
    const plainDir = join(work, `ckpt-plain-${stage}`);
    const straight = await run([1, 1], {
      stage,
      bucketBytes: MEDIUM,
      overlap: true,
      steps: 4,
      save: { dir: withOverlap, at: 2 },
    });
    await run([1, 1], { stage, bucketBytes: WHOLE, overlap: false, steps: 2, save: { dir: plainDir, at: 2 } });
    const a = shardFiles(withOverlap);
    const b = shardFiles(plainDir);
    t.same([...a.keys()], [...b.keys()], `stage ${stage}: the same files`);
    t.ok(
      [...a].every(([f, bytes]) => b.get(f)?.equals(bytes)),
      `stage ${stage}: byte for byte the same shards`,
    );
    const resumed = await run([1, 1], { stage, bucketBytes: MEDIUM, overlap: true, steps: 4, load: withOverlap });
    sameBits(t, resumed.params, straight.params, `stage ${stage}: resumed at 2, the params of the straight run`);
  }
});
