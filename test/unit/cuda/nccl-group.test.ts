// NcclGroup's argument checks and error text (pure logic): every check runs before any device memory or
// NCCL call, so a misuse fails the same way with or without a GPU.
import t from 'tap';
import { NcclGroup, ncclFailure } from '../../../src/runtime/nccl/group.js';
import { ncclIdKey } from '../../../src/runtime/nccl/start.js';
import type { NcclNative } from '../../../src/runtime/nccl/native.js';

// Nothing may reach the bindings in these tests: any call is a failure.
const unreachable = new Proxy(
  {},
  {
    get: (_, name) => () => {
      throw new Error(`unexpected native call ${String(name)}`);
    },
  },
) as NcclNative;
const group = new NcclGroup(unreachable, 'data', [4, 5, 6, 7], 1, 1, 0);

t.test('argument checks name the op', async (t) => {
  await t.rejects(group.allReduce(new Uint16Array(4)), /allReduce: a Uint16Array needs \{ dtype: 'bfloat16' \}/);
  await t.rejects(group.allReduce(new Float32Array(4), { op: 'median' as never }), /allReduce: unknown op 'median'/);
  await t.rejects(
    group.reduceScatter(new Float32Array(8), new Float32Array(4)),
    /reduceScatter: input has 8 elements, expected output length 4 × group size 4/,
  );
  await t.rejects(group.reduceScatter(new Float32Array(16), new Float64Array(4)), /same type/);
  await t.rejects(
    group.allGather(new Int32Array(2), new Int32Array(4)),
    /allGather: output has 4 elements, expected input length 2 × group size 4/,
  );
  await t.rejects(
    group.broadcast(new Float32Array(2), { root: 4 }),
    /broadcast: root 4 is not a rank of this group \(0\.\.3\)/,
  );
  await t.rejects(group.send(new Float32Array(2), { peer: -1 }), /send: peer -1/);
  await t.rejects(group.recv(new Float32Array(2), { peer: 0, tag: -3 }), /recv: tag -3 is not a non-negative integer/);
  await t.rejects(
    group.send(new Float32Array(2), { peer: 1 }),
    /send: peer 1 is this rank; the nccl backend has no send to self/,
  );
  t.same(group.stats(), [], 'nothing ran');
});

t.test('failures name the op, the group and the reason', async (t) => {
  const timeout = ncclFailure(
    "allReduce on group 'data' (rank 1 of 4)",
    Object.assign(
      new Error('all_reduce timed out after 300000 ms (a peer is dead or did not join); communicator aborted'),
      { code: 'ETIMEOUT' },
    ),
  );
  t.equal(
    timeout.message,
    "allReduce on group 'data' (rank 1 of 4) failed (watchdog timeout): all_reduce timed out after 300000 " +
      'ms (a peer is dead or did not join); communicator aborted',
  );
  t.equal(timeout.code, 'ETIMEOUT');
  t.match(
    ncclFailure('x', Object.assign(new Error('all_reduce: remote process exited'), { code: 'ENCCL' })).message,
    /failed \(NCCL error\): all_reduce: remote/,
  );
  t.equal(ncclFailure('x', new Error('odd')).code, 'EUNKNOWN');
});

t.test('unique id keys tell apart groups of the same name', async (t) => {
  t.not(ncclIdKey('data', [0, 2]), ncclIdKey('data', [1, 3]));
  t.equal(ncclIdKey('data', [0, 2]), ncclIdKey('data', [0, 2]));
  t.match(ncclIdKey('group0', [0, 1]), /^nccl\/group0\/[0-9a-f]{16}$/);
});
