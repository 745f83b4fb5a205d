// The worker of scripts/gpu/launch_checks.sh: init() with whatever backend the launcher chose, one
// all-reduce of the rank + 1 over the world, and one JSON line with what it saw (backend, sum, transports).
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
const { init } = await import(join(root, 'dist/runtime/index.js'));
const dist = await init();
const a = new Float32Array([dist.rank + 1]);
await dist.groups.world.allReduce(a, { op: 'sum' });
const world = (dist.stats().world ?? []).map((s) => `${s.op}/${s.transport}/${s.algorithm}`);
console.log(
  JSON.stringify({ rank: dist.rank, backend: dist.backend, env_backend: process.env.DTRAIN_BACKEND, sum: a[0], world }),
);
await dist.close();
