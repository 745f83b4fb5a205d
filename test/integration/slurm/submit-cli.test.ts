/**
 * `dtrain submit` as users run it, against a real one-node Slurm: the dry-run script, submission errors
 * (sbatch missing, a rejected job, invalid scheduler fields), --wait on a cancelled job, and the
 * end-to-end jobs (a 2-rank job checking its environment, a failing rank) through `dtrain launch`.
 */
import t from 'tap';
import {
  existsSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  readdirSync,
  rmSync,
  statSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { spawn } from 'node:child_process';
import { setTimeout as sleep } from 'node:timers/promises';
import { dtrain, dtrainBin, launchKnowsSlurm, slurm, slurmSkipReason, slurmUp } from '../../helpers/slurm-testbed.js';

const skip = slurmSkipReason();
if (skip && !process.env.DTRAIN_REQUIRE_INTEGRATION) {
  t.plan(0, skip);
} else {
  const tb = slurmUp('cli');
  const root = mkdtempSync(path.join(tmpdir(), 'dtrain-submit-'));
  t.teardown(() => {
    tb.down();
    rmSync(root, { recursive: true, force: true });
  });
  /** stderr without warnings: the error itself must be one line */
  const errorLines = (stderr: string) =>
    stderr
      .split('\n')
      .filter((l) => l && !l.startsWith('dtrain: warning:'))
      .join('\n');
  let n = 0;
  /** a project folder with job.yaml (and any other files) in it */
  const mk = (yaml: string, files: Record<string, string> = {}) => {
    const dir = path.join(root, `p${n++}`);
    mkdirSync(dir);
    for (const [name, text] of Object.entries({ 'job.yaml': yaml, ...files }))
      writeFileSync(path.join(dir, name), text);
    return dir;
  };

  t.test('--dry-run prints the script and submits nothing', async (t) => {
    const dir = mk(
      'name: dry\nentrypoint: node w.js\nnproc_per_node: 2\nshutdown_grace: 10s\nscheduler: {kind: slurm, ' +
        'nodes: 1, cpus_per_task: 1, time: "5"}\n',
    );
    const r = dtrain(['submit', 'job.yaml', '--dry-run'], { env: tb.env, cwd: dir });
    t.equal(r.status, 0, r.stderr);
    t.match(
      r.stdout,
      /^#!\/bin\/bash\n#SBATCH --job-name=dry\n#SBATCH --nodes=1\n#SBATCH --ntasks-per-node=1\n#SBATCH --cpus-per-task=1\n/,
    );
    t.match(r.stdout, /export SRUN_CPUS_PER_TASK=1\n/);
    t.match(r.stdout, / launch \S+job\.yaml\n$/, 'an explicit grace below KillWait is left alone');
    t.match(r.stdout, new RegExp(`exec \\S+ \\S+/bin/dtrain launch ${dir}/job\\.yaml\\n$`));
    t.equal(r.stderr, '');
    t.equal(slurm(tb, ['squeue', '-h', '-t', 'all']).trim(), '', 'no job submitted');
    t.notOk(existsSync(path.join(dir, 'logs')), 'nothing written');

    const j = dtrain(['submit', 'job.yaml', '--dry-run', '--json'], { env: tb.env, cwd: dir });
    t.equal(j.status, 0);
    const doc = JSON.parse(j.stdout);
    t.match(doc, {
      job_id: null,
      state: 'DRY_RUN',
      exit_code: null,
      script: new RegExp(`^${dir}/logs/dry-.*\\.sbatch$`),
    });
    t.match(doc.script_text, /^#!\/bin\/bash\n/);
  });

  t.test('the default grace is fitted under KillWait', async (t) => {
    const dir = mk('name: dflt\nentrypoint: node w.js\nnproc_per_node: 1\nscheduler: {kind: slurm}\n');
    const r = dtrain(['submit', 'job.yaml', '--dry-run'], { env: tb.env, cwd: dir });
    t.equal(r.status, 0, r.stderr);
    t.match(r.stdout, / launch \S+job\.yaml --set shutdown_grace=25s\n$/);
    t.equal(r.stderr, '');
  });

  t.test('a grace the user set longer than KillWait is warned about', async (t) => {
    const dir = mk(
      'name: grace\nentrypoint: node w.js\nshutdown_grace: 45s\nscheduler: {kind: slurm, extra: ["--hold"]}\n',
    );
    const r = dtrain(['submit', 'job.yaml'], { env: tb.env, cwd: dir });
    t.equal(r.status, 0, r.stderr);
    t.match(r.stderr, "warning: shutdown_grace (45s) is not below the cluster's KillWait (30s)");
    const id = r.stdout.trim();
    t.match(id, /^[0-9]+$/, 'stdout is the job id alone');
    t.match(slurm(tb, ['squeue', '-h', '-j', id, '-o', '%T']).trim(), 'PENDING');
    slurm(tb, ['scancel', id]);
  });

  t.test('a logs.dir that cannot be made (under /proc): exit 3, one line naming it, no job id', async (t) => {
    const dir = mk('entrypoint: node w.js\nlogs: {dir: /proc/dtrain-test-logs}\nscheduler: {kind: slurm}\n');
    const r = dtrain(['submit', 'job.yaml'], { env: tb.env, cwd: dir });
    t.equal(r.status, 3);
    t.match(
      errorLines(r.stderr),
      /^dtrain: logs\.dir: cannot make \/proc\/dtrain-test-logs: ENOENT: no such file or directory, mkdir '\/proc\/dtrain-test-logs'$/,
    );
    t.equal(r.stdout, '');
  });

  t.test('sbatch missing from PATH: exit 3, one line', async (t) => {
    const dir = mk('entrypoint: node w.js\nscheduler: {kind: slurm}\n');
    const r = dtrain(['submit', 'job.yaml'], { env: { ...tb.env, PATH: '/nonexistent' }, cwd: dir });
    t.equal(r.status, 3);
    t.equal(
      errorLines(r.stderr),
      "dtrain: sbatch not found on PATH: dtrain submit needs Slurm's client commands (slurm-client) on this machine",
    );
    t.equal(r.stdout, '');
  });

  t.test("a rejected submission shows sbatch's message: exit 3", async (t) => {
    const dir = mk('entrypoint: node w.js\nscheduler: {kind: slurm, partition: nosuch}\n');
    const r = dtrain(['submit', 'job.yaml', '--json'], { env: tb.env, cwd: dir });
    t.equal(r.status, 3);
    t.match(
      errorLines(r.stderr),
      /^dtrain: sbatch rejected the job: sbatch: error: invalid partition specified: nosuch; .*\(script: \S+\.sbatch\)$/,
    );
    t.match(JSON.parse(r.stdout), { exit_code: 3, error: /invalid partition/ });
  });

  t.test('invalid scheduler fields: exit 2 with file:line:col', async (t) => {
    const dir = mk('entrypoint: node w.js\nscheduler:\n  kind: slurm\n  time: 2 hours\n  gpus_per_node: -1\n');
    const r = dtrain(['submit', 'job.yaml'], { env: tb.env, cwd: dir });
    t.equal(r.status, 2);
    t.match(r.stderr, /job\.yaml:4:\d+: scheduler\.time: must be a time limit/);
    t.match(r.stderr, /job\.yaml:5:\d+: scheduler\.gpus_per_node/);
    t.notMatch(r.stderr, /\n\s+at /, 'no stack trace');
    const j = dtrain(['submit', 'job.yaml', '--json'], { env: tb.env, cwd: dir });
    t.equal(j.status, 2);
    t.match(JSON.parse(j.stdout), {
      errors: [
        { path: 'scheduler.time', line: 4 },
        { path: 'scheduler.gpus_per_node', line: 5 },
      ],
    });
  });

  t.test('no scheduler section and no --scheduler: exit 2', async (t) => {
    const dir = mk('entrypoint: node w.js\n');
    const r = dtrain(['submit', 'job.yaml'], { env: tb.env, cwd: dir });
    t.equal(r.status, 2);
    t.match(r.stderr, /scheduler: dtrain submit needs a scheduler section/);
  });

  t.test('--wait on a job cancelled by the user: exit 1 naming CANCELLED', async (t) => {
    // --hold keeps it pending, so the cancel does not depend on how fast the job itself would end
    const dir = mk('name: cancelme\nentrypoint: node w.js\nscheduler: {kind: slurm, extra: ["--hold"]}\n');
    const child = spawn(process.execPath, [dtrainBin, 'submit', 'job.yaml', '--wait', '--json'], {
      cwd: dir,
      env: tb.env,
    });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d) => (stdout += d));
    child.stderr.on('data', (d) => (stderr += d));
    const exited = new Promise<number | null>((resolve) => child.on('close', resolve));
    let id: string | undefined;
    for (let i = 0; i < 100 && !id; i++) {
      id = /submitted slurm job (\d+)/.exec(stderr)?.[1];
      if (!id) await sleep(100);
    }
    t.ok(id, `job submitted: ${stderr}`);
    await sleep(500);
    slurm(tb, ['scancel', id!]);
    const code = await exited;
    t.equal(code, 1);
    t.match(stderr, new RegExp(`dtrain: job ${id} ended CANCELLED`));
    const doc = JSON.parse(stdout);
    t.match(doc, { job_id: id, state: 'CANCELLED', script: /cancelme-.*\.sbatch$/, output: /cancelme-.*\.out$/ });
  });

  t.test('Ctrl-C stops the waiting, not the job: exit 130 and how to stop it', async (t) => {
    const dir = mk(
      'name: intr\nentrypoint: node w.js\nnproc_per_node: 1\nscheduler: {kind: slurm, extra: ["--hold"]}\n',
    );
    const child = spawn(process.execPath, [dtrainBin, 'submit', 'job.yaml', '--wait'], { cwd: dir, env: tb.env });
    let stderr = '';
    child.stderr.on('data', (d) => (stderr += d));
    const exited = new Promise<number | null>((resolve) => child.on('close', resolve));
    let id: string | undefined;
    for (let i = 0; i < 100 && !id; i++) {
      id = /job (\d+) PENDING/.exec(stderr)?.[1];
      if (!id) await sleep(100);
    }
    t.ok(id, stderr);
    child.kill('SIGINT');
    t.equal(await exited, 130);
    t.match(stderr, `dtrain: stopped waiting; job ${id} keeps running (scancel ${id} stops it)\n`);
    t.equal(slurm(tb, ['squeue', '-h', '-j', id!, '-o', '%T']).trim(), 'PENDING');
    slurm(tb, ['scancel', id!]);
  });

  const wired = launchKnowsSlurm();
  const e2e = wired
    ? {}
    : { skip: 'dtrain launch does not use the Slurm allocation yet (src/launch/slurm/index.ts hooks)' };

  t.test('a 2-rank job checks its environment; submit --wait exits 0', e2e, async (t) => {
    const check = `
const e = process.env;
const want = ['RANK','LOCAL_RANK','WORLD_SIZE','LOCAL_WORLD_SIZE','MASTER_ADDR','MASTER_PORT','DTRAIN_STORE',
  'SLURM_JOB_ID'];
const missing = want.filter((k) => !e[k]);
if (missing.length) { console.error('missing', missing.join(' ')); process.exit(5); }
if (e.WORLD_SIZE !== '2' || !['0','1'].includes(e.RANK) || e.RANK !== e.LOCAL_RANK) {
  console.error('bad ranks', e.RANK, e.WORLD_SIZE); process.exit(6);
}
if (Object.keys(e).some((k) => /SECRET|JOB_KEY/.test(k))) { console.error('secret in env'); process.exit(7); }
console.log('rank', e.RANK, 'ok in job', e.SLURM_JOB_ID);
`;
    const dir = mk(
      `name: envcheck\nentrypoint: ${JSON.stringify(`${process.execPath} check.js`)}\nnproc_per_node: ` +
        `2\nshutdown_grace: 5s\nscheduler: {kind: slurm, nodes: 1, time: "5"}\n`,
      { 'check.js': check },
    );
    const r = dtrain(['submit', 'job.yaml', '--wait', '--json'], { env: tb.env, cwd: dir, timeoutMs: 180_000 });
    t.equal(r.status, 0, r.stderr);
    const doc = JSON.parse(r.stdout);
    t.match(doc, { state: 'COMPLETED', exit_code: 0, result: { exit_code: 0 } });
    t.equal(r.stderr.match(/job \d+ COMPLETED\n/g)?.length, 1, `one COMPLETED line: ${r.stderr}`);
    const out = readFileSync(doc.output, 'utf8');
    t.match(out, /rank 0 ok in job \d+/);
    t.match(out, /rank 1 ok in job \d+/);
    t.notMatch(readFileSync(doc.script, 'utf8'), /secret|job_key/i);
  });

  t.test('a failing rank makes submit --wait fail with the rank named', async (t) => {
    const dir = mk(
      `name: failing\nentrypoint: ` +
        JSON.stringify([process.execPath, '-e', "process.exit(process.env.RANK === '1' ? 3 : 0)"]) +
        `\nnproc_per_node: 2\nshutdown_grace: 5s\nscheduler: {kind: slurm, nodes: 1, time: "5"}\n`,
    );
    const r = dtrain(['submit', 'job.yaml', '--wait', '--json'], { env: tb.env, cwd: dir, timeoutMs: 180_000 });
    t.equal(r.status, 1, r.stderr);
    const doc = JSON.parse(r.stdout);
    t.equal(doc.state, 'FAILED');
    if (!wired) {
      // the in-job launch stops before any worker runs: still a failed job, without a result
      t.match(r.stderr, /FAILED with exit code \d+ before dtrain reported a result/);
    } else {
      t.match(r.stderr, /failed: .*rank 1 \(\S+\) exited with 3/);
      t.match(doc, { exit_code: 1, result: { exit_code: 1 } });
    }
    const logs = readdirSync(path.join(dir, 'logs'));
    t.ok(logs.some((f) => f.endsWith('.sbatch')) && logs.some((f) => f.endsWith('.out')), logs.join(' '));
    t.ok(statSync(doc.script).mode & 0o100, 'script is executable');
  });

  t.test(
    'signals reach the workers through the controller; a cancelled job ends them and --wait says CANCELLED',
    e2e,
    async (t) => {
      const worker = `
const fs = require('node:fs');
const r = process.env.RANK, dir = process.argv[2];
process.on('SIGUSR1', () => fs.appendFileSync(dir + '/usr1', 'rank ' + r + '\\n'));
process.on('SIGTERM', () => { fs.appendFileSync(dir + '/term', 'rank ' + r + '\\n'); process.exit(143); });
fs.writeFileSync(dir + '/pid.' + r, String(process.pid));
setInterval(() => {}, 1000);
`;
      const dir = mk(
        `name: sig\nentrypoint: ${JSON.stringify([process.execPath, 'worker.js', '.'])}\nnproc_per_node: ` +
          `2\nshutdown_grace: 5s\nscheduler: {kind: slurm, nodes: 1, time: "5", signal: "USR1@60"}\n`,
        { 'worker.js': worker },
      );
      const child = spawn(process.execPath, [dtrainBin, 'submit', 'job.yaml', '--wait', '--json'], {
        cwd: dir,
        env: tb.env,
      });
      let stdout = '';
      let stderr = '';
      child.stdout.on('data', (d) => (stdout += d));
      child.stderr.on('data', (d) => (stderr += d));
      const exited = new Promise<number | null>((resolve) => child.on('close', resolve));
      const until = async (what: string, ok: () => boolean) => {
        for (let i = 0; i < 300 && !ok(); i++) await sleep(100);
        t.ok(ok(), what);
      };
      await until(
        'both workers running',
        () => existsSync(path.join(dir, 'pid.0')) && existsSync(path.join(dir, 'pid.1')),
      );
      const id = /submitted slurm job (\d+)/.exec(stderr)?.[1];
      t.ok(id);
      t.match(readFileSync(/script (\S+\.sbatch)/.exec(stderr)![1], 'utf8'), '#SBATCH --signal=B:USR1@60\n');
      // what Slurm does at the time limit minus 60 s: USR1 to the batch shell, which is the controller
      slurm(tb, ['scancel', '--batch', '--signal=USR1', id!]);
      await until(
        'USR1 forwarded to each worker once',
        () =>
          existsSync(path.join(dir, 'usr1')) &&
          readFileSync(path.join(dir, 'usr1'), 'utf8').split('\n').filter(Boolean).length >= 2,
      );
      await sleep(300);
      t.same(readFileSync(path.join(dir, 'usr1'), 'utf8').split('\n').filter(Boolean).sort(), ['rank 0', 'rank 1']);

      slurm(tb, ['scancel', id!]);
      t.equal(await exited, 1);
      t.match(stderr, new RegExp(`dtrain: job ${id} ended CANCELLED`));
      t.match(JSON.parse(stdout), { job_id: id, state: 'CANCELLED' });
      t.same(
        readFileSync(path.join(dir, 'term'), 'utf8').split('\n').filter(Boolean).sort(),
        ['rank 0', 'rank 1'],
        'workers got SIGTERM',
      );
      for (const r of ['0', '1']) {
        const pid = Number(readFileSync(path.join(dir, `pid.${r}`), 'utf8'));
        let alive = true;
        for (let i = 0; i < 50 && alive; i++) {
          try {
            process.kill(pid, 0);
            await sleep(100);
          } catch {
            alive = false;
          }
        }
        t.notOk(alive, `worker ${r} (pid ${pid}) is gone`);
      }
    },
  );
}
