// The Node runtime on NCCL, on one GPU: init() with DTRAIN_BACKEND=nccl (world size 1, the standard groups
// split from world), every collective on typed arrays (staged) and on DeviceBuffers against host results,
// the event loop staying free during a large op, a custom group, close(), and the process exiting by itself;
// the fused AdamW kernel through Node (deviceAdamwStep) against the CPU optimizer kernel.
// Then a world of 2 whose rank 1 never joins: rank 0's init must fail after the rendezvous timeout, naming
// the group, and exit. Run by scripts/gpu/run.sh when `node` and a built dist/ are present:
//   node scripts/gpu/node_runtime.mjs
import { spawnSync } from 'node:child_process';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
const failures = [];
function expect(ok, what) {
  console.log(`${ok ? 'ok  ' : 'FAIL'}  ${what}`);
  if (!ok) failures.push(what);
}

async function worldOfOne() {
  Object.assign(process.env, {
    DTRAIN_BACKEND: 'nccl',
    RANK: '0',
    WORLD_SIZE: '1',
    LOCAL_RANK: '0',
    DTRAIN_COLLECTIVE_TIMEOUT: '60s',
  });
  const { init, DeviceBuffer } = await import(join(root, 'dist/runtime/index.js'));
  const t0 = performance.now();
  const dist = await init();
  expect(
    dist.backend === 'nccl',
    `init() on nccl in ${(performance.now() - t0).toFixed(0)} ms (device ${dist.device})`,
  );
  const n = 1 << 20;
  const host = Float32Array.from({ length: n }, (_, i) => (i % 97) - 48);

  for (const op of ['sum', 'avg', 'max', 'min', 'prod']) {
    const a = host.slice();
    await dist.groups.world.allReduce(a, { op });
    expect(
      a.every((x, i) => x === host[i]),
      `allReduce ${op} on a typed array (staged), world of 1`,
    );
  }
  const bf = new Uint16Array(1000).fill(0x3f80); // 1.0 in bf16
  await dist.groups.data.allReduce(bf, { dtype: 'bfloat16' });
  expect(
    bf.every((x) => x === 0x3f80),
    'allReduce on a bf16 Uint16Array through the split data group',
  );

  const d = DeviceBuffer.from(host);
  await dist.groups.world.allReduce(d, { op: 'sum' });
  await dist.groups.tensor.broadcast(d, { root: 0 });
  const back = d.copyTo(new Float32Array(n));
  expect(
    back.every((x, i) => x === host[i]),
    'allReduce + broadcast on a DeviceBuffer',
  );
  const gathered = DeviceBuffer.alloc('float32', n);
  await dist.groups.pipeline.allGather(d, gathered);
  const scattered = DeviceBuffer.alloc('float32', n);
  await dist.groups.world.reduceScatter(gathered, scattered, { op: 'sum' });
  expect(
    scattered.copyTo(new Float32Array(n)).every((x, i) => x === host[i]),
    'allGather then reduceScatter on DeviceBuffers',
  );
  // Staged ops with both staging buffers, issued without waiting and growing: outgrown staging buffers
  // must outlive the queued ops that still use them.
  const sizes = [10, 1000, 100000, 3000000];
  const pending = sizes.map(async (k) => {
    const src = Float64Array.from({ length: k }, (_, i) => i * 0.5);
    const bc = src.slice();
    await dist.groups.world.broadcast(bc, { root: 0 });
    const ag = new Float64Array(k);
    await dist.groups.world.allGather(src, ag);
    const rs = new Float64Array(k);
    await dist.groups.world.reduceScatter(src, rs, { op: 'max' });
    return [bc, ag, rs].every((a) => a.every((x, i) => x === src[i]));
  });
  expect(
    (await Promise.all(pending)).every(Boolean),
    `staged broadcast, allGather, reduceScatter, ${sizes.length} sizes in flight at once`,
  );
  const i64 = new BigInt64Array([1n, -2n, 3n]);
  await dist.groups.world.allReduce(i64, { op: 'max' });
  expect(i64[1] === -2n, 'allReduce on a BigInt64Array');
  await dist.groups.world.barrier();
  expect(true, 'barrier');

  // The JS thread stays free while a large staged op runs on the communicator's thread.
  const big = new Float32Array(64 << 20).fill(1); // 256 MiB
  let ticks = 0;
  const timer = setInterval(() => ticks++, 1);
  const t1 = performance.now();
  await dist.groups.world.allReduce(big);
  const ms = performance.now() - t1;
  clearInterval(timer);
  expect(
    ticks >= 3 && big[12345] === 1,
    `256 MiB staged allReduce took ${ms.toFixed(1)} ms; the event loop ran ${ticks} timer ticks meanwhile`,
  );

  const dev = DeviceBuffer.alloc('float32', 64 << 20).fill(1);
  const iters = 20;
  const t2 = performance.now();
  for (let i = 0; i < iters; i++) await dist.groups.world.allReduce(dev);
  expect(
    true,
    `256 MiB DeviceBuffer allReduce, world of 1: ${((performance.now() - t2) / iters).toFixed(3)} ms per op ` +
      `(promise round trip included)`,
  );
  const small = DeviceBuffer.alloc('float32', 1024).fill(1);
  const t3 = performance.now();
  for (let i = 0; i < 1000; i++) await dist.groups.world.allReduce(small);
  expect(
    true,
    `4 KiB DeviceBuffer allReduce latency through the communicator thread: ` +
      `${(((performance.now() - t3) / 1000) * 1000).toFixed(1)} µs per op`,
  );

  const own = await dist.newGroup([0]);
  const c = new Float64Array([2.5]);
  await own.allReduce(c);
  expect(c[0] === 2.5, 'newGroup([0]) initialised on its own unique id');

  const stats = dist.stats();
  const world = stats.world ?? [];
  expect(
    world.some((s) => s.transport === 'nccl' && s.algorithm === 'nccl-staged') &&
      world.some((s) => s.algorithm === 'nccl'),
    `stats report transport nccl (world: ${world.map((s) => `${s.op}/${s.algorithm}×${s.count}`).join(', ')})`,
  );
  for (const b of [d, gathered, scattered, dev, small]) b.free();
  let threw = '';
  await dist.groups.world.allReduce(d).catch((e) => (threw = e.message));
  expect(/after free/.test(threw), `a freed DeviceBuffer is refused: ${threw}`);
  await dist.close();
  expect(true, 'close()');
}

async function adamwAgainstCpu() {
  // The GPU kernel from Node against the CPU kernel of the optimizer, same inputs, five steps (clipping on 3).
  const { DeviceBuffer } = await import(join(root, 'dist/runtime/index.js'));
  const { deviceAdamwStep } = await import(join(root, 'dist/runtime/device/adamw.js'));
  const { optimNative } = await import(join(root, 'dist/runtime/optim/native.js'));
  const n = (1 << 20) + 3;
  let seed = 7;
  const rand = () => ((seed = (seed * 1103515245 + 12345) % 2 ** 31) / 2 ** 31) * 2 - 1;
  const p = Float32Array.from({ length: n }, rand);
  const hp = { lr: 1e-3, beta1: 0.9, beta2: 0.999, eps: 1e-8, weightDecay: 0.01 };
  const cpu = { p: p.slice(), m: new Float32Array(n), v: new Float32Array(n) };
  const gpu = {
    p: DeviceBuffer.from(p),
    m: DeviceBuffer.alloc('float32', n).fill(0),
    v: DeviceBuffer.alloc('float32', n).fill(0),
    g: DeviceBuffer.alloc('float32', n),
  };
  for (let step = 1; step <= 5; step++) {
    const g = Float32Array.from({ length: n }, rand);
    const gradScale = step === 3 ? 0.5 : 1;
    optimNative().adamwStep({
      param: cpu.p,
      paramType: 'float32',
      grad: g,
      gradType: 'float32',
      m: cpu.m,
      v: cpu.v,
      ...hp,
      step,
      gradScale,
    });
    gpu.g.copyFrom(g);
    deviceAdamwStep({ param: gpu.p, grad: gpu.g, m: gpu.m, v: gpu.v, ...hp, step, gradScale });
  }
  const out = gpu.p.copyTo(new Float32Array(n));
  let worst = 0;
  for (let i = 0; i < n; i++) worst = Math.max(worst, Math.abs(out[i] - cpu.p[i]) / (Math.abs(cpu.p[i]) + 1e-3));
  expect(
    worst < 1e-6,
    `deviceAdamwStep (GPU) vs the CPU kernel (${optimNative().adamwSimd()}), fp32, 5 steps: max diff ` +
      `relative to |p| + lr ${worst.toExponential(2)}`,
  );
  for (const b of Object.values(gpu)) b.free();
}

function initTimeout() {
  // A world of 2 on one GPU whose rank 1 exits at once: rank 0 publishes the id and waits in ncclCommInitRank.
  const script = `
    const { runLocalJob } = await import(${JSON.stringify(join(root, 'dist/runtime/local-job.js'))});
    const t0 = Date.now();
    const exits = await runLocalJob({ nodes: [2], argv: [process.execPath, '-e', process.env.WORKER],
      env: { DTRAIN_BACKEND: 'nccl', DTRAIN_RENDEZVOUS_TIMEOUT: '3s' }, onStdout: (r, c) => process.stdout.write(c) });
    console.log(JSON.stringify({ exits, ms: Date.now() - t0 }));`;
  const worker = `
    if (process.env.RANK === '1') process.exit(0);
    const { init } = await import(${JSON.stringify(join(root, 'dist/runtime/index.js'))});
    try { await init(); console.log(JSON.stringify({ ok: true })); }
    catch (e) { console.log(JSON.stringify({ ok: false, message: e.message })); }`;
  const r = spawnSync(process.execPath, ['--input-type=module', '-e', script], {
    env: { ...process.env, WORKER: `(async () => { ${worker} })()` },
    encoding: 'utf8',
    timeout: 60_000,
  });
  const lines = r.stdout
    .trim()
    .split('\n')
    .filter(Boolean)
    .map((l) => JSON.parse(l));
  const rank0 = lines.find((l) => 'ok' in l);
  const done = lines.find((l) => 'exits' in l);
  expect(
    rank0 && !rank0.ok && /NCCL init of group 'world' .* did not complete within 3s/.test(rank0.message),
    `rank 1 never joins: rank 0 fails in init: ${rank0?.message ?? r.stderr.slice(-300)}`,
  );
  expect(done && done.ms < 20_000, `and the job ends by itself (${done?.ms} ms, exits ${JSON.stringify(done?.exits)})`);
}

await worldOfOne();
await adamwAgainstCpu();
initTimeout();
console.log(`${failures.length} failed`);
process.exit(failures.length ? 1 : 0);
