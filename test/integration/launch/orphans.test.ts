// No orphans: SIGKILL of the launcher takes every worker and every descendant down, including one that
// called setsid(); a worker that exits leaves no descendant behind.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import t from 'tap';
import { alive, built, fixtures, startDtrain, tempDir, waitFor } from '../../helpers/launch.js';
import { parentOf } from '../../../src/launch/process-tree.js';

const skip = !built() && 'run npx tsc -p . first';
const pids = (dir: string, kind: string, n: number) =>
  Array.from({ length: n }, (_, r) => Number(readFileSync(join(dir, `${kind}_${r}`), 'utf8')));
const ready = (dir: string, n: number) => {
  try {
    return pids(dir, 'escapee', n).every((p) => p > 0) && pids(dir, 'worker', n).every((p) => p > 0);
  } catch {
    return false;
  }
};

for (const agent of ['in-process', 'child'] as const)
  t.test(
    `SIGKILL of the launcher leaves nothing running, setsid grandchildren too (${agent} agent)`,
    { skip },
    async (t) => {
      const dir = tempDir(t);
      const env: Record<string, string> = agent === 'child' ? { DTRAIN_LOCAL_AGENT: 'child' } : {};
      const run = startDtrain(
        [
          'launch',
          '--nproc-per-node',
          '3',
          '--set',
          `logs.dir=${dir}/logs`,
          '--',
          join(fixtures, 'escapee.sh'),
          dir,
          'wait',
        ],
        { cwd: dir, env },
      );
      t.ok(await waitFor(() => ready(dir, 3), 10000), 'workers and their setsid grandchildren started');
      const all = [...pids(dir, 'worker', 3), ...pids(dir, 'escapee', 3)];
      t.ok(all.every(alive), 'all alive before');
      run.child.kill('SIGKILL');
      await run.done;
      t.ok(await waitFor(() => !all.some(alive), 3000), `all gone within 3 s (left: ${all.filter(alive).join(' ')})`);
    },
  );

t.test('a worker that exits takes its setsid grandchild with it', { skip }, async (t) => {
  const dir = tempDir(t);
  const run = startDtrain(
    [
      'launch',
      '--nproc-per-node',
      '2',
      '--set',
      `logs.dir=${dir}/logs`,
      '--',
      join(fixtures, 'escapee.sh'),
      dir,
      'exit',
    ],
    { cwd: dir },
  );
  const r = await run.done;
  t.equal(r.code, 0, r.stderr);
  const escapees = pids(dir, 'escapee', 2);
  t.ok(await waitFor(() => !escapees.some(alive), 2000), 'grandchildren gone');
});

for (const agent of ['in-process', 'child'] as const)
  t.test(
    `a worker's shepherd killed with SIGKILL: the job fails at once, naming the rank, and nothing is left ` +
      `(${agent} agent)`,
    { skip },
    async (t) => {
      const dir = tempDir(t);
      const env: Record<string, string> = agent === 'child' ? { DTRAIN_LOCAL_AGENT: 'child' } : {};
      const run = startDtrain(
        [
          'launch',
          '--nproc-per-node',
          '2',
          '--set',
          `logs.dir=${dir}/logs`,
          '--set',
          'shutdown_grace=1s',
          '--',
          join(fixtures, 'escapee.sh'),
          dir,
          'wait',
        ],
        { cwd: dir, env },
      );
      t.ok(await waitFor(() => ready(dir, 2), 10000), 'workers and their setsid grandchildren started');
      const all = [...pids(dir, 'worker', 2), ...pids(dir, 'escapee', 2)];
      // the worker's parent is its shepherd (dtrain-exec)
      const shepherd = parentOf(pids(dir, 'worker', 2)[0]);
      t.match(readFileSync(`/proc/${shepherd}/cmdline`, 'utf8'), /dtrain-exec/);
      const killedAt = Date.now();
      process.kill(shepherd, 'SIGKILL');
      const r = await run.done;
      t.equal(r.code, 1, r.stderr);
      t.ok(Date.now() - killedAt < 5000, `the job ended ${Date.now() - killedAt} ms after the kill`);
      t.match(r.stderr, /rank 0 .*SIGKILL/);
      t.match(
        r.stderr,
        new RegExp(
          `dtrain: the worker's shepherd dtrain-exec \\(pid ${shepherd}\\) was killed by SIGKILL ` +
            `\\(the agent ended its worker, pid ${all[0]}\\)`,
        ),
        'the summary says it was the shepherd, not the worker, that was killed',
      );
      t.ok(await waitFor(() => !all.some(alive), 3000), `all gone (left: ${all.filter(alive).join(' ')})`);
    },
  );
