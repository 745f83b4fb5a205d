// `dtrain top` against a real running job: plain tables when its output is not a terminal (every rank, the
// straggler marked), and on a pseudo-terminal (util-linux `script`) a screen redrawn each second that `q`
// leaves with exit 0.
import { spawn, spawnSync } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import t from 'tap';
import { built, dtrainBin, root, runDtrain, startDtrain, tempDir } from '../../helpers/launch.js';

const required = process.env.DTRAIN_REQUIRE_INTEGRATION === '1';
const hasScript = spawnSync('sh', ['-c', 'command -v script'], { stdio: 'ignore' }).status === 0;

interface StatusDoc {
  run_id: string;
  stragglers: number[];
  ranks: { rank: number; pid: number; step?: number }[];
}

async function waitStatus(env: Record<string, string>, ok: (d: StatusDoc) => boolean, ms: number) {
  const end = Date.now() + ms;
  let last: StatusDoc | undefined;
  while (Date.now() < end) {
    const r = await runDtrain(['status', '--json'], { cwd: root, env });
    last = r.code === 0 ? (JSON.parse(r.stdout) as StatusDoc) : undefined;
    if (last && ok(last)) return last;
    await new Promise((r) => setTimeout(r, 500));
  }
  return undefined;
}

t.test(
  'dtrain top: plain tables off a terminal, a live screen on one that q quits',
  { skip: !built() && 'build first' },
  async (t) => {
    const dir = tempDir(t, 'top');
    const env = { DTRAIN_RUNS_DIR: join(dir, 'runs'), NODE_OPTIONS: '' };
    const prog = join(dir, 'prog.mjs');
    // rank 2 computes three times as long as the others each step: the straggler
    writeFileSync(
      prog,
      `import { init } from ${JSON.stringify(join(root, 'dist/runtime/index.js'))};\n` +
        `const dist = await init();\n` +
        `const buf = new Float32Array(256);\n` +
        `const busy = dist.rank === 2 ? 60 : 20;\n` +
        `for (let step = 1; ; step++) {\n` +
        `  const t0 = Date.now(); while (Date.now() - t0 < busy) {}\n` +
        `  await dist.groups.world.allReduce(buf);\n` +
        `  dist.report({ step, samples: 4 });\n` +
        `}\n`,
    );
    const launch = startDtrain(
      ['launch', '--nproc-per-node', '3', '--set', `logs.dir=${join(dir, 'logs')}`, '--', 'node', prog],
      { cwd: dir, env },
    );
    t.teardown(() => launch.child.kill('SIGKILL'));
    const doc = await waitStatus(
      env,
      (d) => d.stragglers.length > 0 && d.ranks.every((r) => (r.step ?? 0) > 25),
      90_000,
    );
    if (!doc) {
      launch.child.kill('SIGTERM');
      t.fail(`no straggler in the status: ${(await launch.done).stderr.slice(-2000)}`);
      return;
    }
    t.same(doc.stragglers, [2]);

    const plain = await runDtrain(['top', '--iterations', '2'], { cwd: root, env });
    t.equal(plain.code, 0, plain.stderr);
    t.notMatch(plain.stdout, /\x1b/, 'no escape sequences off a terminal');
    const frames = plain.stdout.split(/\n(?=\S+ +running +attempt)/);
    t.equal(frames.length, 2, 'two tables for --iterations 2', { stdout: plain.stdout });
    for (const frame of frames) {
      t.match(frame, new RegExp(`^${doc.run_id}  running  attempt 0  3 ranks`), 'the header');
      t.match(frame, /stragglers .*: ranks 2$/m, 'the stragglers line');
      for (const r of doc.ranks)
        t.match(frame, new RegExp(`^${r.rank} +0 +\\S+ +${r.pid} +running\\b`, 'm'), `rank ${r.rank}'s row`);
      t.match(frame, new RegExp(`^2 .*\\b${doc.ranks[2].pid}\\b.*  \\*$`, 'm'), 'the straggler row is marked');
      t.notMatch(frame, /^[01] .*\*$/m, 'no other row is');
    }

    if (!hasScript && !required) {
      t.skip('util-linux script is not installed: no pseudo-terminal test', () => {});
    } else {
      // script runs top on a pseudo-terminal (stdin and stdout both TTYs) and passes our keys through
      const top = spawn('script', ['-qefc', `${dtrainBin} top`, '/dev/null'], {
        cwd: root,
        env: { ...process.env, ...env, TERM: 'xterm' },
        stdio: ['pipe', 'pipe', 'pipe'],
      });
      t.teardown(() => top.kill('SIGKILL'));
      let screen = '';
      top.stdout.on('data', (b: Buffer) => (screen += b.toString()));
      const clear = '\x1b[H\x1b[2J';
      const end = Date.now() + 30_000;
      while (screen.split(clear).length - 1 < 3 && Date.now() < end) await new Promise((r) => setTimeout(r, 200));
      t.ok(screen.includes('\x1b[?1049h'), 'the alternate screen');
      t.ok(screen.split(clear).length - 1 >= 3, 'redrawn each second');
      const lastFrame = screen.slice(screen.lastIndexOf(clear));
      t.match(lastFrame, /q quits/);
      t.match(lastFrame, new RegExp(`\\b${doc.ranks[2].pid}\\b`), 'the rank rows');
      const exited = new Promise<number | null>((resolve) => top.on('exit', (code) => resolve(code)));
      top.stdin.write('q');
      const code = await Promise.race([exited, new Promise<'timeout'>((r) => setTimeout(() => r('timeout'), 10_000))]);
      t.equal(code, 0, 'q quits with exit 0');
      t.ok(screen.includes('\x1b[?1049l'), 'the main screen is back');
    }

    launch.child.kill('SIGTERM');
    await launch.done;
  },
);
