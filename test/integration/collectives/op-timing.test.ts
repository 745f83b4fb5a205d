/**
 * Each CPU group times its own ops natively, from the call until the op settled (dist.report's wait_s and
 * per-op totals read that): an op that waits on a late peer must show the wait, whichever way it ran
 * (inline, queued to the progress thread, point to point), and a failed or refused op counts too.
 */
import t from 'tap';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fixture, runWorkers } from '../../helpers/collectives-harness.js';

const LATE_S = 0.05;
const waited = LATE_S * 0.9;

for (const nodes of [[2], [1, 1]]) {
  const transport = nodes.length === 1 ? 'shm' : 'tcp';
  t.test(`${transport}: the early rank's ops show the late peer's ${LATE_S * 1000} ms`, async (t) => {
    const dir = mkdtempSync(join(tmpdir(), 'dtrain-op-timing-'));
    t.teardown(() => rmSync(dir, { recursive: true, force: true }));
    const res = await runWorkers({
      nodes,
      script: fixture('op-timing.mjs'),
      env: (rank) => ({ DTRAIN_PROGRESS_FILE: join(dir, `progress-${rank}.jsonl`) }),
    });
    for (const r of res) t.equal(r.report?.error, undefined, `rank ${r.rank}: ${r.report?.error} ${r.stderr}`);
    const [early, late] = res.map((r) => r.report);
    for (const op of ['barrier', 'allReduce', 'recv'] as const) {
      const o = early?.ops?.[op];
      t.ok(o?.seconds >= waited, `rank 0's ${op} waited: ${o?.seconds} s`);
    }
    t.equal(early?.ops?.barrier?.count, 3, 'the late barrier and the two that align the ranks');
    t.match(early?.ops, { allReduce: { count: 1 }, recv: { count: 1 } });
    t.match(late?.ops, { allReduce: { count: 1 }, send: { count: 1 } });
    t.ok(early?.waitS >= waited, `dist.report's wait_s holds the late barrier: ${early?.waitS}`);
    t.ok(late?.waitS < early?.waitS, `the late rank waited less: ${late?.waitS} against ${early?.waitS}`);
    const failed = early?.failed;
    t.equal(failed?.errors?.length, 2, `the recv timed out and the barrier was refused: ${failed?.errors}`);
    t.match(failed?.ops, { recv: { count: 1 }, barrier: { count: 1 } }, 'both counted');
    t.ok(failed?.ops?.recv?.seconds >= 0.09, `the failed recv's 100 ms: ${failed?.ops?.recv?.seconds}`);
  });
}
