// A running job's status while it waits: a rank inside a collective shows that op (from its flight recorder,
// carried in the agent's samples) with a growing since_s, and once the supervisor diagnoses the hang the run
// says `hung` while its ranks stop.
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import t from 'tap';
import { built, root, runDtrain, startDtrain, tempDir } from '../../helpers/launch.js';

interface Collective {
  group: string;
  op: string;
  seq: number;
  state: string;
  since_s: number;
}
interface StatusDoc {
  state: string;
  log_dir: string;
  ranks: { rank: number; pid: number; state: string; collective?: Collective }[];
}

async function statusJson(env: Record<string, string>): Promise<StatusDoc | undefined> {
  const r = await runDtrain(['status', '--json'], { cwd: root, env });
  return r.code === 0 ? (JSON.parse(r.stdout) as StatusDoc) : undefined;
}

async function waitStatus(env: Record<string, string>, ok: (d: StatusDoc) => boolean, ms: number) {
  const end = Date.now() + ms;
  let last: StatusDoc | undefined;
  while (Date.now() < end) {
    last = await statusJson(env);
    if (last && ok(last)) return last;
    await new Promise((r) => setTimeout(r, 300));
  }
  return last;
}

t.test(
  'a rank waiting in a collective shows op, seq, state started and a growing since_s; then the run is hung',
  { skip: !built() && 'build first' },
  async (t) => {
    const dir = tempDir(t, 'status-live');
    const env = { DTRAIN_RUNS_DIR: join(dir, 'runs'), NODE_OPTIONS: '' };
    const prog = join(dir, 'prog.mjs');
    // one allReduce together, then rank 1 sleeps outside any op while rank 0 waits in the second one; both
    // shrug off SIGTERM so that the stopping hung job stays visible for shutdown_grace
    writeFileSync(
      prog,
      `import { init } from ${JSON.stringify(join(root, 'dist/runtime/index.js'))};\n` +
        `process.on('SIGTERM', () => {});\n` +
        `const dist = await init();\n` +
        `const buf = new Float32Array(64);\n` +
        `await dist.groups.world.allReduce(buf);\n` +
        `if (dist.rank === 1) setInterval(() => {}, 1000);\n` +
        `else await dist.groups.world.allReduce(buf);\n`,
    );
    const launch = startDtrain(
      [
        'launch',
        '--nproc-per-node',
        '2',
        '--set',
        `logs.dir=${join(dir, 'logs')}`,
        '--set',
        'hang_timeout=12s',
        '--set',
        'shutdown_grace=8s',
        '--',
        'node',
        prog,
      ],
      { cwd: dir, env },
    );
    t.teardown(() => launch.child.kill('SIGKILL'));
    const inOp = (d: StatusDoc) => d.ranks[0]?.collective?.state === 'started';
    const first = await waitStatus(env, inOp, 30_000);
    if (!first || !inOp(first)) {
      t.fail(`rank 0 never showed its collective: ${JSON.stringify(first)}`);
      return;
    }
    t.equal(first.state, 'running');
    t.match(first.ranks[0].collective, { group: 'world', op: 'allReduce', seq: 2, state: 'started' });
    t.match(
      first.ranks[1].collective,
      { group: 'world', op: 'allReduce', seq: 1, state: 'completed' },
      'rank 1 left the first op and entered none since',
    );
    await new Promise((r) => setTimeout(r, 1500));
    const later = await statusJson(env);
    t.match(later?.ranks[0].collective, { op: 'allReduce', seq: 2, state: 'started' }, 'still inside');
    t.ok(
      later!.ranks[0].collective!.since_s >= first.ranks[0].collective!.since_s + 1,
      `since_s grows: ${first.ranks[0].collective!.since_s} then ${later!.ranks[0].collective!.since_s}`,
    );

    const hung = await waitStatus(env, (d) => d.state === 'hung', 40_000);
    t.equal(hung?.state, 'hung', 'once the hang is diagnosed the run says hung');
    // each rank is being stopped, or already gone: rank 0's op fails the moment rank 1 is stopped
    t.ok(
      hung?.ranks.every((r) => r.state === 'stopping' || r.state === 'failed' || r.state === 'exited'),
      `while its ranks stop: ${hung?.ranks.map((r) => r.state).join(', ')}`,
    );
    t.ok(
      hung?.ranks.some((r) => r.state === 'stopping'),
      `not all of them gone yet: ${hung?.ranks.map((r) => r.state).join(', ')}`,
    );
    const end = await launch.done;
    t.equal(end.code, 1, end.stderr.slice(-2000));
    t.match(end.stderr, /dtrain: hang: rank 1 never entered allReduce seq 2 of group world/);
    const final = JSON.parse(readFileSync(join(hung?.log_dir ?? first.log_dir, 'status.json'), 'utf8')) as StatusDoc;
    t.equal(final.state, 'failed', 'and failed once it stopped');
  },
);
