// Two ranks on ONE GPU through the Node runtime on NCCL. NCCL refuses two ranks of a communicator on one
// device of one host, so each rank claims its own host (NCCL_HOSTID) and they talk over NCCL's socket
// transport on loopback: slow, but real multi-rank NCCL (split groups of two, point to point, the watchdog
// aborting a communicator when a peer stalls, an error when a peer dies) on a machine with a single GPU.
//   node scripts/gpu/node_two_ranks.mjs
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..', '..');

if (process.env.DTRAIN_TWO_RANKS_WORKER) {
  const rank = Number(process.env.RANK);
  process.env.NCCL_HOSTID = `dtrain-gpu-test-host-${rank}`; // read by NCCL at communicator init
  const { init, DeviceBuffer } = await import(join(root, 'dist/runtime/index.js'));
  const say = (o) => console.log(JSON.stringify({ rank, ...o }));
  try {
    const dist = await init();
    const a = DeviceBuffer.from(new Float32Array(1000).fill(rank + 1));
    await dist.groups.data.allReduce(a); // data = world here: a split group of two
    const sum = a.copyTo(new Float32Array(1000));
    const typed = new Float64Array([rank, 10]);
    await dist.groups.world.allReduce(typed, { op: 'max' });
    const gathered = new Int32Array(4);
    await dist.groups.world.allGather(new Int32Array([rank, rank]), gathered);
    const rs = new Float32Array(2);
    await dist.groups.world.reduceScatter(new Float32Array([1, 2, 3, 4]), rs);
    const bc = new Float32Array([rank === 1 ? 42 : 0]);
    await dist.groups.world.broadcast(bc, { root: 1 });
    const p2p = new Float32Array(3).fill(rank === 0 ? 7 : 0);
    if (rank === 0) await dist.groups.world.send(p2p, { peer: 1 });
    else await dist.groups.world.recv(p2p, { peer: 0 });
    await dist.groups.world.barrier();
    say({
      phase: 'ops',
      sum: sum[999],
      typed: [...typed],
      gathered: [...gathered],
      rs: [...rs],
      bc: bc[0],
      p2p: p2p[2],
    });

    // Tags travel in the envelope: matching messages arrive, a mismatch fails the receive naming both sides
    // and leaves the channel in step for the next message.
    const w = dist.groups.world;
    if (rank === 0) {
      await w.send(new Float32Array([1, 2, 3, 4, 5]), { peer: 1, tag: 11 });
      await w.send(DeviceBuffer.from(new Float64Array([6, 7, 8])), { peer: 1, tag: 12 });
      await w.send(new Float32Array(4), { peer: 1, tag: 21 });
      await w.send(new Int32Array([99]), { peer: 1, tag: 22 });
      // Both directions posted at once on one ordered queue: each side posts in the same order.
      const back = new Float32Array(2);
      await Promise.all([w.send(new Float32Array([5, 5]), { peer: 1, tag: 5 }), w.recv(back, { peer: 1, tag: 6 })]);
      say({ phase: 'tags', back: [...back] });
    } else {
      const a11 = new Float32Array(5);
      await w.recv(a11, { peer: 0, tag: 11 });
      const a12 = DeviceBuffer.alloc('float64', 3);
      await w.recv(a12, { peer: 0, tag: 12 });
      const mismatch = await w.recv(new Float32Array(4), { peer: 0, tag: 20 }).then(
        () => null,
        (e) => e.message,
      );
      const a22 = new Int32Array(1);
      await w.recv(a22, { peer: 0, tag: 22 });
      const got = new Float32Array(2);
      await Promise.all([w.recv(got, { peer: 0, tag: 5 }), w.send(new Float32Array([6, 6]), { peer: 0, tag: 6 })]);
      say({
        phase: 'tags',
        a11: [...a11],
        a12: [...a12.copyTo(new Float64Array(3))],
        mismatch,
        a22: a22[0],
        got: [...got],
      });
    }

    // The pipeline executor (tagged sends and receives posted early) on NCCL: 1F1B and interleaved 1F1B.
    const { Pipeline } = await import(join(root, 'dist/runtime/index.js'));
    for (const [kind, v] of [
      ['1f1b', 1],
      ['interleaved-1f1b', 2],
    ]) {
      const m = 4,
        slices = 2 * v;
      const pipe = new Pipeline({
        group: w,
        schedule: { kind, stages: 2, microbatches: m, virtualStages: v },
        activationSize: 8,
        dtype: 'float32',
        forward: (input, mb, chunk) => {
          if (chunk * 2 + rank === slices - 1) return { loss: (input.reduce((s, x) => s + x, 0) * 2) / m };
          return { output: input ? input.map((x) => x * 2) : new Float32Array(8).fill((mb + 1) * 2) };
        },
        backward: (grad) => (grad ? grad.map((x) => x * 2) : new Float32Array(8).fill(2 / m)),
      });
      const r = await pipe.step();
      say({ phase: 'pipeline', kind, loss: r.loss ?? null, executed: r.executed.length });
    }

    // ShardedAdam (ZeRO-2) over the NCCL data group, its typed arrays staged: grads averaged, params equal.
    const { ShardedAdam } = await import(join(root, 'dist/runtime/index.js'));
    const params = new Float32Array(1000).fill(1);
    const opt = new ShardedAdam(params, {
      group: dist.groups.data,
      stage: 2,
      lr: 0.1,
      betas: [0.9, 0.999],
      eps: 1e-8,
      weightDecay: 0,
    });
    await opt.step(new Float32Array(1000).fill(rank + 1));
    say({ phase: 'adam', first: params[0], last: params[999], allEqual: params.every((x) => x === params[0]) });
    if (rank === 1) {
      // Stalls past the collective timeout (rank 0's watchdog must abort the world communicator), then dies
      // without a word (rank 0's next op, on the data communicator, must fail rather than hang).
      await new Promise((r) => setTimeout(r, 13_000));
      process.exit(0);
    }
    for (const [phase, group] of [
      ['stalled-peer', dist.groups.world],
      ['dead-peer', dist.groups.data],
    ]) {
      const t0 = Date.now();
      try {
        await group.allReduce(a);
        say({ phase, error: null });
      } catch (err) {
        say({ phase, error: err.message, code: err.code, ms: Date.now() - t0 });
      }
    }
    const after = await dist.groups.world.allReduce(a).then(
      () => null,
      (err) => err.message,
    );
    say({ phase: 'after-abort', error: after });
    await dist.close().catch(() => {});
  } catch (err) {
    say({ phase: 'failed', error: err.message });
  }
} else {
  const { runLocalJob } = await import(join(root, 'dist/runtime/local-job.js'));
  const out = ['', ''];
  const t0 = Date.now();
  // Two simulated nodes of one rank each: LOCAL_RANK 0 on both, so both use device 0.
  const exits = await runLocalJob({
    nodes: [1, 1],
    argv: [process.execPath, fileURLToPath(import.meta.url)],
    env: {
      DTRAIN_TWO_RANKS_WORKER: '1',
      DTRAIN_BACKEND: 'nccl',
      DTRAIN_COLLECTIVE_TIMEOUT: '10s',
      DTRAIN_RENDEZVOUS_TIMEOUT: '60s',
      NCCL_SOCKET_IFNAME: 'lo',
      NCCL_IB_DISABLE: '1',
      NCCL_NET: 'Socket',
    },
    onStdout: (rank, chunk) => (out[rank] += chunk),
  });
  const lines = out.flatMap((text) =>
    text
      .split('\n')
      .filter((l) => l.startsWith('{'))
      .map((l) => JSON.parse(l)),
  );
  const failures = [];
  const expect = (ok, what) => {
    console.log(`${ok ? 'ok  ' : 'FAIL'}  ${what}`);
    if (!ok) failures.push(what);
  };
  const ops = lines.filter((l) => l.phase === 'ops');
  for (const l of lines.filter((x) => x.phase === 'failed')) expect(false, `rank ${l.rank}: ${l.error}`);
  expect(ops.length === 2, `both ranks finished their ops (${ops.length})`);
  for (const o of ops) {
    expect(o.sum === 3, `rank ${o.rank}: allReduce on a DeviceBuffer over the split data group: ${o.sum}`);
    expect(o.typed[0] === 1 && o.typed[1] === 10, `rank ${o.rank}: allReduce max, staged Float64Array: ${o.typed}`);
    expect(o.gathered.join() === '0,0,1,1', `rank ${o.rank}: allGather: ${o.gathered}`);
    expect(o.rs.join() === (o.rank === 0 ? '2,4' : '6,8'), `rank ${o.rank}: reduceScatter: ${o.rs}`);
    expect(o.bc === 42, `rank ${o.rank}: broadcast from root 1: ${o.bc}`);
    expect(o.p2p === 7, `rank ${o.rank}: send/recv: ${o.p2p}`);
  }
  const tags = Object.fromEntries(lines.filter((l) => l.phase === 'tags').map((l) => [l.rank, l]));
  expect(
    tags[1]?.a11?.join() === '1,2,3,4,5' && tags[1]?.a12?.join() === '6,7,8',
    `tagged send/recv of a typed array and a DeviceBuffer`,
  );
  expect(
    /expected tag 20 with 4 float32 elements from peer 0; it sent tag 21 with 4 float32/.test(tags[1]?.mismatch ?? ''),
    `a tag mismatch fails the receive: ${tags[1]?.mismatch}`,
  );
  expect(tags[1]?.a22 === 99, 'and the channel stays in step for the next message');
  expect(
    tags[0]?.back?.join() === '6,6' && tags[1]?.got?.join() === '5,5',
    'send and recv posted at once in both directions',
  );
  for (const [kind, slices] of [
    ['1f1b', 2],
    ['interleaved-1f1b', 4],
  ]) {
    const last = lines.find((l) => l.phase === 'pipeline' && l.kind === kind && l.rank === 1);
    const expected = 5 * 2 ** slices; // mean over microbatches of 8·(mb+1)·2^slices / 4
    expect(
      last?.loss === expected,
      `Pipeline ${kind}, 2 stages × 4 microbatches over NCCL: loss ${last?.loss} (expected ${expected})`,
    );
  }
  const adam = lines.filter((l) => l.phase === 'adam');
  // First AdamW step: p -= lr · ĝ/(|ĝ| + eps) with ĝ the mean gradient 1.5, so 1 - 0.1 on every element.
  expect(
    adam.length === 2 && adam.every((a) => a.allEqual && Math.abs(a.first - 0.9) < 1e-6 && a.first === adam[0].first),
    `ShardedAdam stage 2 over NCCL: params ${adam.map((a) => a.first).join(', ')} on the two ranks (expected 0.9)`,
  );
  const stalled = lines.find((l) => l.phase === 'stalled-peer');
  expect(
    stalled?.code === 'ETIMEOUT' &&
      stalled.ms >= 9000 &&
      /allReduce on group 'world' \(rank 0 of 2\) failed \(watchdog timeout\)/.test(stalled.error),
    `rank 1 stalls: rank 0's allReduce fails after ${stalled?.ms} ms (${stalled?.code}): ${stalled?.error}`,
  );
  const dead = lines.find((l) => l.phase === 'dead-peer');
  expect(
    dead && dead.error && /allReduce on group 'data' \(rank 0 of 2\) failed/.test(dead.error),
    `rank 1 died: rank 0's next allReduce fails${dead?.ms !== undefined ? ` after ${dead.ms} ms` : ''} ` +
      `(${dead?.code}): ${dead?.error}`,
  );
  const after = lines.find((l) => l.phase === 'after-abort');
  expect(
    after && /aborted/.test(after.error ?? ''),
    `an op on the aborted communicator fails at once: ${after?.error}`,
  );
  expect(
    exits.every((e) => e.code === 0),
    `both processes exited by themselves in ${Date.now() - t0} ms: ${JSON.stringify(exits)}`,
  );
  console.log(`${failures.length} failed`);
  process.exit(failures.length ? 1 : 0);
}
