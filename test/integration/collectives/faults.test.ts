/**
 * Failure, never a hang: ranks that disagree on op, size or dtype all get an error naming the op and the
 * mismatch; a dead peer makes the others fail promptly naming it; a missing peer times out
 * (DTRAIN_COLLECTIVE_TIMEOUT); and a group that failed refuses further ops. Over shared memory (one node)
 * and TCP (two nodes).
 */
import t from 'tap';
import { fixture, runWorkers } from '../../helpers/collectives-harness.js';

const layouts: Array<[string, number[]]> = [
  ['shm', [2]],
  ['tcp', [1, 1]],
];

for (const [transport, nodes] of layouts) {
  t.test(`${transport}: size mismatch is named on every rank`, async (t) => {
    const res = await runWorkers({ nodes, script: fixture('faults.mjs'), env: { COLL_SCENARIO: 'size-mismatch' } });
    for (const r of res) {
      t.equal(r.code, 0, r.stderr);
      t.match(
        r.report.error,
        /allReduce mismatch \(size\) on group world: rank 0 called allReduce\(float32 x 16, sum.*rank 1 called allReduce\(float32 x 17/,
      );
      t.match(r.report.second, /refused: an earlier op failed/);
    }
  });

  t.test(`${transport}: op and dtype mismatches are named on every rank`, async (t) => {
    const ops = await runWorkers({ nodes, script: fixture('faults.mjs'), env: { COLL_SCENARIO: 'op-mismatch' } });
    for (const r of ops)
      t.match(
        r.report.error,
        /mismatch \(op\).*rank 0 called broadcast\(float32 x 16, root 0.*rank 1 called allReduce/,
      );
    const types = await runWorkers({ nodes, script: fixture('faults.mjs'), env: { COLL_SCENARIO: 'dtype-mismatch' } });
    for (const r of types)
      t.match(
        r.report.error,
        /allReduce mismatch \(dtype\).*rank 0 called allReduce\(int32 x 16.*rank 1 called allReduce\(float32 x 16/,
      );
  });

  t.test(`${transport}: a dead peer fails the op promptly, naming the rank`, async (t) => {
    const res = await runWorkers({ nodes, script: fixture('faults.mjs'), env: { COLL_SCENARIO: 'dead-peer' } });
    t.equal(res[1].code, 9);
    const survivor = res[0].report;
    t.match(survivor.error, /rank 1 (died|closed its connection)/);
    t.ok(survivor.elapsedMs < 5000, `failed after ${survivor.elapsedMs} ms, long before the 300 s timeout`);
  });

  t.test(`${transport}: a peer that never calls the op times out (DTRAIN_COLLECTIVE_TIMEOUT)`, async (t) => {
    const res = await runWorkers({
      nodes,
      script: fixture('faults.mjs'),
      env: { COLL_SCENARIO: 'timeout', DTRAIN_COLLECTIVE_TIMEOUT: '1s' },
    });
    const waiting = res[0].report;
    t.match(waiting.error, /timed out after 1000 ms .*rank.* 1/);
    t.ok(waiting.elapsedMs >= 900 && waiting.elapsedMs < 3000, `timed out after ${waiting.elapsedMs} ms`);
  });

  t.test(`${transport}: a peer that closed its runtime (still alive) fails the op promptly, naming it`, async (t) => {
    const res = await runWorkers({ nodes, script: fixture('faults.mjs'), env: { COLL_SCENARIO: 'closed-peer' } });
    const survivor = res[0].report;
    t.match(
      survivor.error,
      transport === 'shm' ? /rank 1 closed group world \(dist\.close\(\)\)/ : /rank 1 closed its connection/,
    );
    t.ok(survivor.elapsedMs < 2500, `failed after ${survivor.elapsedMs} ms, while the peer process still ran`);
  });

  t.test(`${transport}: dist.close() while a large all-reduce runs: the op settles, no crash`, async (t) => {
    for (let i = 0; i < 3; i++) {
      const res = await runWorkers({ nodes, script: fixture('faults.mjs'), env: { COLL_SCENARIO: 'close-inflight' } });
      for (const r of res) t.equal(r.code, 0, `rank ${r.rank}: ${r.signal ?? ''} ${r.stderr.slice(-500)}`);
      // close() stops the op waiting for the late peer: rank 0's promise rejects naming close, and the
      // peer's op fails naming rank 0 (or completes, when it got there first)
      t.match(res[0].report?.error, /dist\.close\(\) was called while this op/);
      if (res[1].report?.error !== null) t.match(res[1].report?.error, /rank 0/);
    }
  });

  t.test(`${transport}: dist.close() during an op a peer never joins returns at once and rejects the op`, async (t) => {
    const res = await runWorkers({ nodes, script: fixture('faults.mjs'), env: { COLL_SCENARIO: 'close-stuck' } });
    const zero = res[0].report;
    t.equal(res[0].code, 0, res[0].stderr.slice(-500));
    t.match(zero.error, /dist\.close\(\) was called while this op .*waited for rank/);
    t.ok(zero.closeMs < 1000, `close() took ${zero.closeMs} ms, not the collective timeout`);
  });

  t.test(`${transport}: dist.close() rejects a receive still pending instead of leaving it hanging`, async (t) => {
    const res = await runWorkers({ nodes, script: fixture('faults.mjs'), env: { COLL_SCENARIO: 'close-pending' } });
    t.equal(res[0].code, 0, res[0].stderr);
    t.equal(res[0].report.error, 'dtrain: dist.close() was called while this op was pending');
    t.ok(res[0].report.elapsedMs < 900, `settled after ${res[0].report.elapsedMs} ms, before the peer even woke`);
  });

  t.test(`${transport}: recv names a send whose tag differs`, async (t) => {
    const res = await runWorkers({ nodes, script: fixture('faults.mjs'), env: { COLL_SCENARIO: 'recv-mismatch' } });
    t.match(
      res[1].report.error,
      /recv mismatch on group world: rank 0 sent send\(float32 x 16, tag 1\), this rank expected send\(float32 x 16, tag 2\)/,
    );
  });
}

t.test(
  'dist.alloc of more memory than the machine has is refused at once, naming both sizes; the runtime goes on',
  async (t) => {
    const res = await runWorkers({
      nodes: [2],
      script: fixture('faults.mjs'),
      env: { COLL_SCENARIO: 'alloc-too-big' },
    });
    for (const r of res) {
      t.equal(r.code, 0, r.stderr.slice(-500));
      t.match(
        r.report?.error,
        /^cannot reserve \d+ MiB of shared memory for dist\.alloc: only \d+ MiB of memory is available/,
      );
      t.equal(r.report?.second, 2, 'a later allocation and all-reduce work');
      t.ok(r.report?.elapsedMs < 10_000, `${r.report?.elapsedMs} ms`);
    }
  },
);

t.test(
  'hierarchical (two nodes of two): a dead peer fails all-gather, reduce-scatter and broadcast promptly on ' +
    'every other rank',
  async (t) => {
    for (const op of ['allGather', 'reduceScatter', 'broadcast']) {
      const res = await runWorkers({
        nodes: [2, 2],
        script: fixture('faults.mjs'),
        env: { COLL_SCENARIO: 'dead-peer', COLL_OP: op },
      });
      t.equal(res[3].code, 9);
      for (const r of res.slice(0, 3)) {
        t.match(
          r.report.error,
          new RegExp(`^${op} on group world \\(rank ${r.rank}\\): .*rank 3 (died|closed its connection)`),
          `${op}: rank ${r.rank} names rank 3`,
        );
        t.ok(r.report.elapsedMs < 5000, `${op}: rank ${r.rank} failed after ${r.report.elapsedMs} ms`);
      }
    }
  },
);
