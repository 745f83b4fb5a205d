// ShardedAdam step time across real ranks, stage 1 against stage 2, started by the launcher:
//   dtrain launch --nproc-per-node 4 -- node scripts/bench/adam-sharded.js [--params 10000000] [--steps 5] [--shm]
// Each step = gradient averaging (all-reduce, or reduce-scatter for stage 2) + the fused kernel on this
// rank's shard + the parameter all-gather. Rank 0 prints one line per stage: median step time and bytes.
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
const { init, ShardedAdam } = await import(join(root, 'dist', 'runtime', 'index.js'));

const args = process.argv.slice(2);
const option = (name, fallback) => (args.includes(`--${name}`) ? args[args.indexOf(`--${name}`) + 1] : fallback);
const n = Number(option('params', '10000000'));
const steps = Number(option('steps', '5'));
const shared = args.includes('--shm'); // bucket buffers from dist.alloc (shared memory)

const dist = await init();
const group = dist.groups.data;
const grads = new Float32Array(n).map((_, i) => Math.sin(i + dist.rank) * 0.01);
const lines = [];
for (const stage of [1, 2]) {
  const params = new Float32Array(n).fill(0.5);
  const opt = new ShardedAdam(params, { group, stage, lr: 1e-3, ...(shared ? { alloc: dist.alloc } : {}) });
  const times = [];
  for (let s = 0; s < steps + 1; s++) {
    const g = grads.slice(); // stage 1 averages in place: every step starts from the local gradients
    await group.barrier();
    const t0 = process.hrtime.bigint();
    await opt.step(g);
    if (s > 0) times.push(Number(process.hrtime.bigint() - t0) / 1e6);
  }
  times.sort((a, b) => a - b);
  const mem = opt.memory();
  lines.push(
    `stage ${stage}: ${n} params on ${group.size} ranks, median step ${times[times.length >> 1].toFixed(1)} ms ` +
      `(min ${times[0].toFixed(1)}), states ${(mem.states / 2 ** 20).toFixed(1)} MiB, grad shard ` +
      `${(mem.gradShard / 2 ** 20).toFixed(1)} MiB, ` +
      `buffers ${(mem.buffers / 2 ** 20).toFixed(1)} MiB per rank${shared ? ' (dist.alloc)' : ''}, kernel ` +
      `${opt.simdPath}`,
  );
}
if (dist.rank === 0) console.log(lines.join('\n'));
await dist.close();
