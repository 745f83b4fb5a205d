import t from 'tap';
import { failed, renderFailure, type LaunchSummary } from '../../../src/launch/summary.js';

const base: LaunchSummary = {
  run_id: 'job-1',
  exit_code: 1,
  attempts: [{ ranks: [] }],
  other_failures: [],
  log_dir: '/logs/job-1',
  root_cause: {
    rank: 2,
    local_rank: 2,
    host: 'node-a',
    pid: 4242,
    exit_code: null,
    signal: 'SIGSEGV',
    time: '2026-01-01T00:00:00.000Z',
    stderr_tail: ['step 10', 'Segmentation fault'],
    error_file: { message: 'CUDA error' },
    attempt: 0,
  },
};

t.test('the report names rank, host, local rank, pid, how it ended, time, error file, stderr tail, logs', async (t) => {
  const text = renderFailure(base, 0);
  t.match(text, 'rank 2 (host node-a, local rank 2, pid 4242) was killed by SIGSEGV at 2026-01-01T00:00:00.000Z');
  t.match(text, 'error file: {"message":"CUDA error"}');
  t.match(text, '    | Segmentation fault');
  t.match(text, 'logs: /logs/job-1');
  t.notMatch(text, /restarts exhausted/);
});

t.test('restarts exhausted and later failures are mentioned', async (t) => {
  const s = {
    ...base,
    attempts: [{ ranks: [] }, { ranks: [] }],
    other_failures: [{ rank: 0, host: 'node-a', exit_code: 143, signal: null }],
  };
  const text = renderFailure(s, 1);
  t.match(text, '(attempt 2 of 2, restarts exhausted)');
  t.match(text, 'then: rank 0 exit 143');
});

t.test('a node-level failure', async (t) => {
  const s = { ...base, root_cause: { ...base.root_cause!, message: 'node lost: no heartbeat for 31s' } };
  t.match(renderFailure(s, 0), 'failed on node-a: node lost: no heartbeat for 31s');
});

t.test('failed()', async (t) => {
  t.equal(failed({ exit_code: 0, signal: null }), false);
  t.equal(failed({ exit_code: 1, signal: null }), true);
  t.equal(failed({ exit_code: null, signal: 'SIGKILL' }), true);
});
