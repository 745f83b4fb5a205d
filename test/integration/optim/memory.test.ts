/**
 * The 1/N memory shape measured, not only reported: real worker processes (one per rank) build and step a
 * 100M-parameter fp32 ShardedAdam; each reports process.memoryUsage() deltas around building it and around
 * stepping it. States (m, v) must be 8Ψ/N bytes; stage 2's reduced-gradient shard 4Ψ/N; the rest is the
 * bucket buffers, bounded by bucketBytes. DTRAIN_OPTIM_MEMORY_PARAMS overrides Ψ for a quick run.
 */
import t from 'tap';
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { runWorkers } from '../../helpers/collectives-harness.js';

const worker = fileURLToPath(new URL('../../fixtures/optim/zero-worker.mjs', import.meta.url));
const built = existsSync(fileURLToPath(new URL('../../../dist/runtime/index.js', import.meta.url)));
if (!built && process.env.DTRAIN_REQUIRE_INTEGRATION)
  throw new Error('dist/ is not built: run npx tsc -p . (required under CI)');
const psi = Number(process.env.DTRAIN_OPTIM_MEMORY_PARAMS ?? 100_000_000);
const bucketBytes = 4 << 20;
const MiB = 1 << 20;

interface Report {
  rank: number;
  world: number;
  stateBytes: number;
  memory: { states: number; gradShard: number; buffers: number };
  built: { arrayBuffers: number; rss: number };
  stepped: { arrayBuffers: number; rss: number };
}

t.test(
  `states and stage-2 gradients take 1/N of the memory, measured per process (Ψ = ${psi})`,
  { skip: built ? false : 'dist/ not built' },
  async (t) => {
    const byWorld = new Map<number, Report[]>();
    for (const world of [1, 2, 4]) {
      const results = await runWorkers({
        nodes: [world],
        script: worker,
        args: [JSON.stringify({ mode: 'memory', n: psi, stage: 2, bucketBytes })],
        env: { NODE_OPTIONS: '--expose-gc' },
        timeoutMs: 280_000,
      });
      const bad = results.filter((r) => r.code !== 0);
      if (bad.length) {
        t.fail(
          `world ${world}: rank ${bad[0].rank} exited ${bad[0].code} ${bad[0].signal}: ${bad[0].stderr.slice(-1500)}`,
        );
        return;
      }
      const reports = results.map((r) => r.report as Report);
      byWorld.set(world, reports);
      for (const r of reports) {
        const shard = Math.ceil(psi / world / 16) * 16;
        const states = 8 * Math.min(shard, psi - r.rank * shard);
        t.equal(r.stateBytes, states, `world ${world} rank ${r.rank}: stateBytes = 8Ψ/N`);
        // building allocates exactly m and v
        t.ok(
          Math.abs(r.built.arrayBuffers - states) <= 0.01 * states + MiB,
          `world ${world} rank ${r.rank}: building took ${(r.built.arrayBuffers / MiB).toFixed(1)} MiB of ` +
            `ArrayBuffers for ${(states / MiB).toFixed(1)} MiB of states`,
        );
        // stepping adds the stage-2 gradient shard (4Ψ/N) and the bucket buffers, nothing of size Ψ
        const extra = r.stepped.arrayBuffers - r.built.arrayBuffers;
        const expected = r.memory.gradShard + r.memory.buffers;
        t.equal(r.memory.gradShard, 4 * shard, 'gradShard is 4Ψ/N');
        t.ok(
          r.memory.buffers <= 3 * bucketBytes,
          `bucket buffers ${(r.memory.buffers / MiB).toFixed(1)} MiB are bounded by bucketBytes`,
        );
        t.ok(
          Math.abs(extra - expected) <= 0.02 * expected + 2 * MiB,
          `world ${world} rank ${r.rank}: stepping added ${(extra / MiB).toFixed(1)} MiB of ArrayBuffers, ` +
            `expected ${(expected / MiB).toFixed(1)}`,
        );
        // RSS: m, v and the gradient shard are touched by the steps; allow the transport's own buffers on top
        const touched = states + r.memory.gradShard + r.memory.buffers;
        t.ok(
          r.stepped.rss >= 0.9 * touched && r.stepped.rss <= touched + 96 * MiB,
          `world ${world} rank ${r.rank}: RSS grew ${(r.stepped.rss / MiB).toFixed(0)} MiB for ` +
            `${(touched / MiB).toFixed(0)} MiB of optimizer memory`,
        );
      }
    }
    const one = byWorld.get(1)![0];
    for (const world of [2, 4]) {
      for (const r of byWorld.get(world)!) {
        const ratioStates = one.built.arrayBuffers / r.built.arrayBuffers;
        const ratioGrads = one.memory.gradShard / r.memory.gradShard;
        // RSS also holds the bucket buffers and the transport's own, which do not shrink with N
        const rssShare = r.stepped.rss - r.memory.buffers;
        t.ok(
          Math.abs(ratioStates - world) < 0.05 * world,
          `world ${world}: measured states are 1/${ratioStates.toFixed(2)} of world 1's`,
        );
        t.ok(
          Math.abs(ratioGrads - world) < 0.05 * world,
          `world ${world}: gradient shard is 1/${ratioGrads.toFixed(2)} of world 1's`,
        );
        t.ok(
          rssShare <= one.stepped.rss / world + 64 * MiB,
          `world ${world}: RSS growth less bucket buffers is ${(rssShare / MiB).toFixed(0)} MiB, world 1's ` +
            `/ ${world} is ${(one.stepped.rss / world / MiB).toFixed(0)} MiB`,
        );
      }
    }
    t.comment(
      JSON.stringify(
        [...byWorld.entries()].map(([w, rs]) => ({
          world: w,
          built: rs.map((r) => r.built),
          stepped: rs.map((r) => r.stepped),
        })),
      ),
    );
  },
);
