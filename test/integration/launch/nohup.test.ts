// `nohup dtrain launch ...`: SIGHUP was ignored at start, so the launcher stays deaf to it and does not
// forward it (Node reset the disposition; bin/dtrain's shell line saw it and said so). Without nohup
// SIGHUP is forwarded (signals.test.ts). Runs bin/dtrain as an executable, the way nohup and npm do.
import { spawn } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import t from 'tap';
import { built, dtrainBin, fixtures, tempDir, waitFor } from '../../helpers/launch.js';

const skip = (!built() && 'run npx tsc -p . first') || (!existsSync('/proc/self/status') && 'needs /proc');

function nohupDtrain(dir: string, nproc: number, args: string[], env: Record<string, string> = {}) {
  const child = spawn(
    'nohup',
    [dtrainBin, 'launch', '--nproc-per-node', String(nproc), '--set', `logs.dir=${dir}/logs`, ...args],
    {
      cwd: dir,
      env: { ...process.env, NO_COLOR: '1', ...env },
      stdio: ['ignore', 'pipe', 'pipe'],
    },
  );
  let stderr = '';
  child.stderr.on('data', (b: Buffer) => (stderr += b.toString()));
  child.stdout.resume();
  const done = new Promise<{ code: number | null; signal: NodeJS.Signals | null; stderr: string }>((resolve) =>
    child.on('close', (code, signal) => resolve({ code, signal, stderr })),
  );
  return { child, done };
}

t.test('under nohup SIGHUP neither ends the launcher nor reaches the workers', { skip }, async (t) => {
  const dir = tempDir(t);
  const run = nohupDtrain(dir, 2, ['--', process.execPath, join(fixtures, 'crash.mjs'), dir, '-1', '0'], {
    LIVE_MS: '1500',
  });
  t.ok(await waitFor(() => existsSync(join(dir, 'pid_0')) && existsSync(join(dir, 'pid_1')), 10000), 'workers run');
  await new Promise((r) => setTimeout(r, 200));
  run.child.kill('SIGHUP');
  const r = await run.done;
  t.same({ code: r.code, signal: r.signal }, { code: 0, signal: null }, r.stderr);
  t.notOk(existsSync(join(dir, 'got_0_SIGHUP')) || existsSync(join(dir, 'got_1_SIGHUP')), 'no worker got SIGHUP');
});

t.test('the nohup marker stays with the launcher: workers never see it', { skip }, async (t) => {
  const dir = tempDir(t);
  const r = await nohupDtrain(dir, 4, ['--', process.execPath, join(fixtures, 'env-dump.mjs'), dir]).done;
  t.equal(r.code, 0, r.stderr);
  for (const rank of [0, 1, 2, 3]) {
    const { env } = JSON.parse(readFileSync(join(dir, `env_${rank}.json`), 'utf8')) as { env: Record<string, string> };
    t.equal(env.DTRAIN_SIGHUP_IGNORED, undefined, `rank ${rank}`);
    t.equal(env.RANK, String(rank));
  }
});

t.test(
  'bin/dtrain holds NODE_EXTRA_CA_CERTS back from itself and hands it to the workers unchanged',
  { skip },
  async (t) => {
    const dir = tempDir(t);
    // A file that does not exist: Node warns on stderr if it tries to load it, so the launcher must not.
    const missing = join(dir, 'no-such-ca.pem');
    const child = spawn(
      dtrainBin,
      [
        'launch',
        '--nproc-per-node',
        '4',
        '--set',
        `logs.dir=${dir}/logs`,
        '--',
        process.execPath,
        join(fixtures, 'env-dump.mjs'),
        dir,
      ],
      {
        cwd: dir,
        env: { ...process.env, NO_COLOR: '1', NODE_EXTRA_CA_CERTS: missing },
        stdio: ['ignore', 'pipe', 'pipe'],
      },
    );
    let stderr = '';
    child.stderr.on('data', (b: Buffer) => (stderr += b.toString()));
    child.stdout.resume();
    const code = await new Promise<number | null>((resolve) => child.on('close', resolve));
    t.equal(code, 0, stderr);
    // The workers are Node too: each warns once, with its rank's prefix; the launcher itself never does.
    const warnings = stderr.split('\n').filter((l) => l.includes('Ignoring extra certs'));
    t.equal(warnings.length, 4, stderr);
    t.ok(
      warnings.every((l) => /^\[rank \d\]/.test(l)),
      'only workers loaded the file',
    );
    for (const rank of [0, 1, 2, 3]) {
      const { env } = JSON.parse(readFileSync(join(dir, `env_${rank}.json`), 'utf8')) as {
        env: Record<string, string>;
      };
      t.equal(env.NODE_EXTRA_CA_CERTS, missing, `rank ${rank}`);
      t.equal(env.DTRAIN_HELD_NODE_EXTRA_CA_CERTS, undefined);
    }
  },
);
