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
    say({ phase: 'ops', sum: sum[999], typed: [...typed], gathered: [...gathered], rs: [...rs], bc: bc[0], p2p: p2p[2] });
    if (rank === 1) {
      // Stalls past the collective timeout (rank 0's watchdog must abort the world communicator), then dies
      // without a word (rank 0's next op, on the data communicator, must fail rather than hang).
      await new Promise((r) => setTimeout(r, 13_000));
      process.exit(0);
    }
    for (const [phase, group] of [['stalled-peer', dist.groups.world], ['dead-peer', dist.groups.data]]) {
      const t0 = Date.now();
      try {
        await group.allReduce(a);
        say({ phase, error: null });
      } catch (err) {
        say({ phase, error: err.message, code: err.code, ms: Date.now() - t0 });
      }
    }
    const after = await dist.groups.world.allReduce(a).then(() => null, (err) => err.message);
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
      DTRAIN_TWO_RANKS_WORKER: '1', DTRAIN_BACKEND: 'nccl', DTRAIN_COLLECTIVE_TIMEOUT: '10s', DTRAIN_RENDEZVOUS_TIMEOUT: '60s',
      NCCL_SOCKET_IFNAME: 'lo', NCCL_IB_DISABLE: '1', NCCL_NET: 'Socket',
    },
    onStdout: (rank, chunk) => (out[rank] += chunk),
  });
  const lines = out.flatMap((text) => text.split('\n').filter((l) => l.startsWith('{')).map((l) => JSON.parse(l)));
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
  const stalled = lines.find((l) => l.phase === 'stalled-peer');
  expect(stalled?.code === 'ETIMEOUT' && stalled.ms >= 9000 && /allReduce on group 'world' \(rank 0 of 2\) failed \(watchdog timeout\)/.test(stalled.error),
    `rank 1 stalls: rank 0's allReduce fails after ${stalled?.ms} ms (${stalled?.code}): ${stalled?.error}`);
  const dead = lines.find((l) => l.phase === 'dead-peer');
  expect(dead && dead.error && /allReduce on group 'data' \(rank 0 of 2\) failed/.test(dead.error),
    `rank 1 died: rank 0's next allReduce fails${dead?.ms !== undefined ? ` after ${dead.ms} ms` : ''} (${dead?.code}): ${dead?.error}`);
  const after = lines.find((l) => l.phase === 'after-abort');
  expect(after && /aborted/.test(after.error ?? ''), `an op on the aborted communicator fails at once: ${after?.error}`);
  expect(exits.every((e) => e.code === 0), `both processes exited by themselves in ${Date.now() - t0} ms: ${JSON.stringify(exits)}`);
  console.log(`${failures.length} failed`);
  process.exit(failures.length ? 1 : 0);
}
