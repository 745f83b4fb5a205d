// The hang diagnosis drawn from what the agents gathered: the collective-timeout message, Python and Node
// stacks, the flight recorders' findings; and how it is printed.
import t from 'tap';
import type { RankDiagnostics } from '../../../src/launch/agent-contract.js';
import { buildHangReport, collectiveTimeoutOf, renderHang, whereFromStack } from '../../../src/launch/hang-report.js';

const base = { host: 'h', pid: 1, recorder: null, recorder_missing: 'none' };
const py = (rank: number, stack: string): RankDiagnostics => ({
  ...base,
  rank,
  language: 'python',
  stack,
  missing: null,
});

const sleeping = `Thread 0x00007f01 (most recent call first):
  File "/usr/lib/python3/dist-packages/torch/utils/data/_utils/worker.py", line 300 in _worker_loop

Current thread 0x00007f02 (most recent call first):
  File "/job/train.py", line 18 in user_function_that_sleeps
  File "/job/train.py", line 28 in <module>`;
const inBarrier = `Current thread 0x00007f03 (most recent call first):
  File "/usr/lib/python3/dist-packages/torch/distributed/distributed_c10d.py", line 3700 in barrier
  File "/usr/lib/python3/dist-packages/torch/distributed/c10d_logger.py", line 72 in wrapper
  File "/job/train.py", line 29 in <module>`;

t.test('the addon timeout message names the op, group and the ranks waited for', async (t) => {
  t.same(
    collectiveTimeoutOf({
      stderr_tail: [
        'Error: allReduce on group world (rank 0): timed out after 5000 ms on group world waiting for rank 1 ' +
          '(collective_timeout; did every rank call the same op?)',
      ],
    }),
    { ms: 5000, op: 'allReduce', group: 'world', waitingFor: [1] },
  );
  t.same(
    collectiveTimeoutOf({
      stderr_tail: [
        'timed out after 300 ms waiting for rank(s) 2, 3 (collective_timeout; did every rank call the same op?)',
      ],
    }),
    { ms: 300, op: null, group: null, waitingFor: [2, 3] },
  );
  t.equal(collectiveTimeoutOf({ stderr_tail: ['Error: timed out after 5 ms waiting for store key x'] }), null);
  t.equal(collectiveTimeoutOf({ stderr_tail: ['ValueError: nope'] }), null);
  // whatever came after the message (a long traceback, exit handlers) may have pushed it out of the tail
  t.same(
    collectiveTimeoutOf({
      stderr_tail: Array.from({ length: 20 }, (_, i) => (i % 2 ? 'Node.js v20' : '')),
      timeout_line:
        'Error: broadcast on group data (rank 2): timed out after 70 ms on group data waiting for rank 0 ' +
        '(collective_timeout)',
    }),
    { ms: 70, op: 'broadcast', group: 'data', waitingFor: [0] },
  );
});

t.test('Python stacks: the main thread (the one under <module>) says where a rank is', async (t) => {
  t.same(whereFromStack(py(1, sleeping)), { busyIn: 'user_function_that_sleeps' });
  t.same(whereFromStack(py(0, inBarrier)), { waitingIn: 'barrier' });
  t.equal(whereFromStack({ ...py(2, ''), stack: null, missing: 'x' }), null);
});

t.test('no progress: the rank outside any collective is named, with who waits where', async (t) => {
  const h = buildHangReport({
    cause: 'no_progress',
    afterMs: 8200,
    ranks: [py(0, inBarrier), py(1, sleeping)],
    unanswered: [],
  });
  t.same(h.diagnosis, [
    'dtrain: hang: rank 1 is in user_function_that_sleeps, outside any collective, while rank 0 waits in barrier ' +
      '(no progress for 8.2s)',
  ]);
  t.same(h.culprits, [1]);
  const lines = renderHang(h);
  t.equal(lines[1], 'dtrain: stack of rank 1 (host h, pid 1, python):');
  t.match(lines.join('\n'), /\| {3}File "\/job\/train.py", line 18 in user_function_that_sleeps/);
  t.notMatch(lines.join('\n'), /stack of rank 0/, 'only the named ranks');
});

t.test('no stacks at all: every rank is named, and why each stack is missing is said', async (t) => {
  const h = buildHangReport({
    cause: 'no_progress',
    afterMs: 10000,
    ranks: [{ ...py(0, ''), stack: null, missing: 'python runs with -I: no sitecustomize' }],
    unanswered: ['node7'],
  });
  t.same(h.diagnosis, ['dtrain: hang: no rank made progress for 10.0s']);
  t.match(renderHang(h), [
    'dtrain: hang: no rank made progress for 10.0s',
    'dtrain: stack of rank 0 (host h, pid 1, python): not captured: python runs with -I: no sitecustomize',
    /no answer within 5.0s from node7/,
  ]);
});

t.test("the recorders' findings win when there are some", async (t) => {
  const h = buildHangReport({
    cause: 'collective_timeout',
    afterMs: 5000,
    ranks: [py(0, inBarrier)],
    unanswered: [],
    fromRecorders: {
      lines: ['dtrain: hang: rank 1 never entered allReduce seq 3 of group world (ranks 0, 2 waiting 5.0s)'],
      ranks: [1],
    },
  });
  t.same(h.culprits, [1]);
  t.match(renderHang(h), [
    /never entered allReduce seq 3/,
    'dtrain: stack of rank 1: not gathered (its node did not answer)',
  ]);
});
