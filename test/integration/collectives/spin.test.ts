/**
 * The spin budget follows the CPUs a rank may use: ranks on one host spin while they fit the CPUs of their
 * affinity mask, and never spin when they do not (under `taskset -c 0` two ranks share one CPU: a spinning
 * rank would hold the core its peer needs to arrive).
 */
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { availableParallelism } from 'node:os';
import { join } from 'node:path';
import t from 'tap';
import { built, dtrainBin, fixtures, tempDir } from '../../helpers/launch.js';

const skip =
  (!built() && 'run npm run build first') || (!existsSync('/usr/bin/taskset') && 'needs taskset (util-linux)');
const script = join(fixtures, '..', 'collectives', 'spin-report.mjs');

function launch(dir: string, prefix: string[]) {
  const argv = [
    ...prefix,
    process.execPath,
    dtrainBin,
    'launch',
    '--nproc-per-node',
    '2',
    '--set',
    `logs.dir=${dir}/logs`,
    '--',
    process.execPath,
    script,
  ];
  const { DTRAIN_SPIN: _, ...env } = process.env;
  const r = spawnSync(argv[0], argv.slice(1), { cwd: dir, encoding: 'utf8', timeout: 60_000, env });
  const reports = r.stdout
    .split('\n')
    .filter((l) => l.includes('"spin"'))
    .map((l) => JSON.parse(l.slice(l.indexOf('{'))) as { rank: number; spin: number; sum: number });
  return { status: r.status, stderr: r.stderr, reports: reports.sort((a, b) => a.rank - b.rank) };
}

t.test('two ranks pinned to one CPU never spin; two ranks with two CPUs do', { skip }, async (t) => {
  const dir = tempDir(t, 'spin');
  const pinned = launch(dir, ['/usr/bin/taskset', '-c', '0']);
  t.equal(pinned.status, 0, pinned.stderr);
  t.same(
    pinned.reports.map((r) => [r.rank, r.spin, r.sum]),
    [
      [0, 0, 2],
      [1, 0, 2],
    ],
    'taskset -c 0: no spinning, and the all-reduce still completes',
  );
  const free = launch(dir, []);
  t.equal(free.status, 0, free.stderr);
  const want = availableParallelism() >= 2 ? 20 : 0; // microseconds
  t.same(
    free.reports.map((r) => r.spin),
    [want, want],
    `${availableParallelism()} CPUs for 2 ranks`,
  );
});
