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
  const text = renderFailure(base, { restartsMax: 0, tee: true });
  t.match(text, 'rank 2 (host node-a, local rank 2, pid 4242) was killed by SIGSEGV at 2026-01-01T00:00:00.000Z');
  t.match(text, '  error: CUDA error\n');
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
  const text = renderFailure(s, { restartsMax: 1, tee: true });
  t.match(text, '(attempt 2 of 2, restarts exhausted)');
  t.match(text, 'then: rank 0 exit 143');
});

t.test('a node-level failure', async (t) => {
  const s = { ...base, root_cause: { ...base.root_cause!, message: 'node lost: no heartbeat for 31s' } };
  t.match(renderFailure(s, { restartsMax: 0, tee: true }), 'failed on node-a: node lost: no heartbeat for 31s');
});

t.test(
  'a torchelastic error file (as PyTorch @record writes it) shows its message and traceback, not JSON',
  async (t) => {
    // written by torch.distributed.elastic's @record around `raise ValueError("loss is nan at step 7")`
    const errorFile = JSON.parse(
      '{"message": {"message": "ValueError: loss is nan at step 7", "extraInfo": {"py_callstack": ' +
        '"Traceback (most recent call last):\\n  File \\"/usr/lib/python3/dist-packages/torch/distributed/elastic/' +
        'multiprocessing/errors/__init__.py\\", line 346, in wrapper\\n    return f(*args, **kwargs)\\n' +
        '  File \\"/tmp/train.py\\", line 5, in inner\\n    raise ValueError(\\"loss is nan at step 7\\")\\n' +
        'ValueError: loss is nan at step 7\\n", "timestamp": "1796597765"}}}',
    ) as unknown;
    const text = renderFailure(
      { ...base, root_cause: { ...base.root_cause!, error_file: errorFile } },
      { restartsMax: 0, tee: true },
    );
    t.match(text, '\n  error: ValueError: loss is nan at step 7 (at 2026-12-06T22:56:05.000Z)\n  traceback:\n');
    t.match(text, '    | Traceback (most recent call last):\n');
    t.match(
      text,
      '    |   File "/tmp/train.py", line 5, in inner\n    |     raise ValueError("loss is nan at step 7")\n',
    );
    t.match(text, '    | ValueError: loss is nan at step 7\n');
    t.notMatch(text, /[{}]|py_callstack|extraInfo|\\n/, 'no JSON left');
    const odd = renderFailure(
      { ...base, root_cause: { ...base.root_cause!, error_file: 'not json' } },
      {
        restartsMax: 0,
        tee: true,
      },
    );
    t.match(odd, '  error file: not json');
  },
);

t.test('logs.tee false: the stderr tail is not printed, only where it is', async (t) => {
  const text = renderFailure(base, { restartsMax: 0, tee: false });
  t.notMatch(text, /Segmentation fault|step 10/);
  t.match(text, '  its stderr: /logs/job-1/attempt_0/rank_2.err');
});

t.test('failed()', async (t) => {
  t.equal(failed({ exit_code: 0, signal: null }), false);
  t.equal(failed({ exit_code: 1, signal: null }), true);
  t.equal(failed({ exit_code: null, signal: 'SIGKILL' }), true);
});
