import t from 'tap';
import { judgeOutcome, failedRanks, type LaunchSummary } from '../../../src/batch/wait-job.js';

const failedRun: LaunchSummary = {
  run_id: 'r1',
  exit_code: 1,
  attempts: [
    {
      ranks: [
        { rank: 0, host: 'n1', exit_code: 0, signal: null },
        { rank: 1, host: 'n1', exit_code: 3, signal: null },
        { rank: 2, host: 'n2', exit_code: null, signal: 'SIGKILL' },
      ],
    },
  ],
  root_cause: null,
};

t.test('success needs COMPLETED and a zero result (when there is one)', async (t) => {
  t.match(judgeOutcome('7', { state: 'COMPLETED', exitCode: 0 }, 'o'), { ok: true, exitCode: 0 });
  t.match(
    judgeOutcome('7', { state: 'COMPLETED', exitCode: 0, result: { ...failedRun, exit_code: 0, attempts: [] } }, 'o'),
    { ok: true },
  );
  t.match(judgeOutcome('7', { state: 'COMPLETED', exitCode: 0, result: failedRun }, 'o'), { ok: false });
});

t.test('a failed run names the failed ranks', async (t) => {
  t.equal(failedRanks(failedRun), 'rank 1 (n1) exited with 3, rank 2 (n2) killed by SIGKILL');
  const v = judgeOutcome('7', { state: 'FAILED', exitCode: 1, result: failedRun }, '/logs/a.out');
  t.equal(v.ok, false);
  t.equal(v.exitCode, 1);
  t.equal(v.message, 'job 7 failed: rank 1 (n1) exited with 3, rank 2 (n2) killed by SIGKILL; output: /logs/a.out');
  const root = { rank: 1, host: 'n1', exit_code: 3, signal: null };
  const withCause = judgeOutcome('7', { state: 'FAILED', result: { ...failedRun, root_cause: root } }, 'o');
  t.equal(
    withCause.message,
    'job 7 failed: rank 1 (n1) exited with 3 (failed: rank 1 (n1) exited with 3, rank 2 (n2) killed by ' +
      'SIGKILL); output: o',
  );
  const lost = judgeOutcome(
    '7',
    { state: 'FAILED', result: { ...failedRun, root_cause: { ...root, message: 'node n2 lost: heartbeat timeout' } } },
    'o',
  );
  t.match(lost.message, /^job 7 failed: node n2 lost: heartbeat timeout \(failed: /);
  const early = judgeOutcome(
    '7',
    { state: 'FAILED', exitCode: 3, result: { exit_code: 3, error: 'rendezvous timeout' } },
    'o',
  );
  t.match(early, { ok: false, exitCode: 3, message: 'job 7 failed: rendezvous timeout; output: o' });
});

t.test('a failed script without a result gives its exit code', async (t) => {
  t.match(judgeOutcome('8', { state: 'FAILED', exitCode: 2 }, 'o'), {
    ok: false,
    exitCode: 2,
    message: 'job 8 FAILED with exit code 2 before dtrain reported a result; output: o',
  });
});

t.test('scheduler endings are named', async (t) => {
  for (const state of ['CANCELLED', 'TIMEOUT', 'NODE_FAIL', 'PREEMPTED', 'OUT_OF_MEMORY']) {
    const v = judgeOutcome('9', { state }, 'o');
    t.equal(v.ok, false);
    t.match(v.message, new RegExp(`^job 9 ended ${state}`));
  }
  t.match(judgeOutcome('9', { state: 'TIMEOUT', reason: 'TimeLimit' }, 'o').message, 'ended TIMEOUT (TimeLimit)');
  t.match(judgeOutcome('9', { state: 'UNKNOWN' }, 'o').message, 'no longer known to Slurm');
});
