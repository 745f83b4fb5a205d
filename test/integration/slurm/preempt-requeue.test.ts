/**
 * The scheduler's warning on the real one-node Slurm: `scancel --batch --signal=USR1` is what Slurm sends
 * the batch shell (the controller) at `--signal=B:USR1@N`. The example trainer saves on the checkpoint
 * signal and stops; with scheduler.requeue dtrain requeues its own job, which resumes from the save and ends
 * with the same parameters as an uninterrupted run. Without a save the job stops after shutdown_grace.
 */
import t from 'tap';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { spawn } from 'node:child_process';
import { setTimeout as sleep } from 'node:timers/promises';
import {
  dtrain,
  dtrainBin,
  launchKnowsSlurm,
  repoRoot,
  slurm,
  slurmSkipReason,
  slurmUp,
} from '../../helpers/slurm-testbed.js';

const skip = slurmSkipReason() ?? (launchKnowsSlurm() ? undefined : 'dtrain launch does not use the allocation yet');
if (skip && !process.env.DTRAIN_REQUIRE_INTEGRATION) {
  t.plan(0, skip);
} else {
  const tb = slurmUp('preempt');
  const root = mkdtempSync(path.join(tmpdir(), 'dtrain-preempt-'));
  t.teardown(() => {
    tb.down();
    rmSync(root, { recursive: true, force: true });
  });
  let n = 0;
  const mk = (yaml: string, files: Record<string, string> = {}) => {
    const dir = path.join(root, `p${n++}`);
    mkdirSync(dir);
    for (const [name, text] of Object.entries({ 'job.yaml': yaml, ...files }))
      writeFileSync(path.join(dir, name), text);
    return dir;
  };

  /** `dtrain submit --wait --json` in the background: its output so far, and its exit. */
  const submit = (dir: string) => {
    const child = spawn(process.execPath, [dtrainBin, 'submit', 'job.yaml', '--wait', '--json'], {
      cwd: dir,
      env: tb.env,
    });
    const io = { stdout: '', stderr: '' };
    child.stdout.on('data', (d) => (io.stdout += d));
    child.stderr.on('data', (d) => (io.stderr += d));
    const exited = new Promise<number | null>((resolve) => child.on('close', resolve));
    return { io, exited, kill: () => child.kill('SIGINT') };
  };
  const until = async (ok: () => boolean, ms: number) => {
    for (const end = Date.now() + ms; !ok() && Date.now() < end;) await sleep(100);
    return ok();
  };
  const read = (f: string) => (existsSync(f) ? readFileSync(f, 'utf8') : '');
  /** whether anything accepts connections on Node's inspector port */
  const inspectorOpen = () =>
    new Promise<boolean>((resolve) => {
      const s = connect(9229, '127.0.0.1');
      s.on('connect', () => (s.destroy(), resolve(true)));
      s.on('error', () => resolve(false));
    });

  const trainer = path.join(repoRoot, 'dist/examples/train/main.js');
  const trainArgs = (steps: number) => [
    ...['--steps', String(steps), '--hidden', '16', '--layers', '4', '--global-batch', '32'],
    ...['--train-samples', '1024', '--eval-samples', '128', '--log-every', '50'],
    ...['--checkpoint-dir', 'ckpt', '--report-dir', 'report'],
  ];
  const STEPS = 1500;

  t.test(
    'the warning: workers save, dtrain requeues the job, which resumes from the save to the same result',
    async (t) => {
      // the reference: the same training, uninterrupted, launched outside Slurm
      const ref = mk(
        `name: ref\nentrypoint: ${JSON.stringify([process.execPath, trainer, ...trainArgs(STEPS)])}\n` +
          'nproc_per_node: 2\n',
      );
      const { SLURM_CONF: _c, ...plainEnv } = tb.env;
      const r = dtrain(['launch', 'job.yaml'], { env: plainEnv, cwd: ref, timeoutMs: 240_000 });
      t.equal(r.status, 0, r.stderr);
      const want = JSON.parse(read(path.join(ref, 'report/rank-0.json')));

      const dir = mk(
        `name: requeue\nentrypoint: ${JSON.stringify([process.execPath, trainer, ...trainArgs(STEPS)])}\n` +
          'nproc_per_node: 2\nshutdown_grace: 20s\n' +
          'scheduler: {kind: slurm, nodes: 1, time: "10", signal: "USR1@60", requeue: true}\n',
      );
      const job = submit(dir);
      t.ok(await until(() => /submitted slurm job \d+/.test(job.io.stderr), 30_000), job.io.stderr);
      const id = /submitted slurm job (\d+)/.exec(job.io.stderr)![1];
      const script = read(/script (\S+\.sbatch)/.exec(job.io.stderr)![1]);
      t.match(script, '#SBATCH --signal=B:USR1@60\n#SBATCH --requeue\n#SBATCH --open-mode=append\n');
      const out = /output (\S+\.out)/.exec(job.io.stderr)![1];
      t.ok(await until(() => /step 100 loss/.test(read(out)), 120_000), 'training under way');
      t.notOk(await inspectorOpen(), 'no inspector before the signal');
      // what Slurm does 60 s before the time limit
      slurm(tb, ['scancel', '--batch', '--signal=USR1', id]);
      t.ok(await until(() => /requeued: job \d+ goes back/.test(read(out)), 60_000), read(out));
      t.notOk(await inspectorOpen(), 'SIGUSR1 opened no inspector in a Node worker');
      const code = await Promise.race([job.exited, sleep(240_000).then(() => 'timeout')]);
      if (code === 'timeout') job.kill();
      t.equal(code, 0, job.io.stderr);

      const text = read(out);
      t.match(text, /dtrain: warned: SIGUSR1 from the scheduler/);
      t.match(text, /dtrain: saving: SIGUSR1 sent to every worker; waiting up to 20s for a checkpoint/);
      const saved = Number(/SIGUSR1: saved step (\d+), stopping/.exec(text)?.[1]);
      t.ok(saved > 100 && saved < STEPS, `saved at step ${saved}`);
      // the trainer commits its save (dist.checkpoint.commit): the controller names the step
      t.match(text, new RegExp(`dtrain: saved: step ${saved} committed`));
      t.match(text, new RegExp(`dtrain: resumed: Slurm restart 1 of job ${id}`));
      t.match(text, new RegExp(`resumed from step ${saved}\\b`));
      t.match(job.io.stderr, new RegExp(`job ${id} requeued \\(restart 1\\): saved at step ${saved} first`));

      const doc = JSON.parse(job.io.stdout);
      t.match(doc, {
        job_id: id,
        state: 'COMPLETED',
        exit_code: 0,
        result: { exit_code: 0, resumed: { slurm_restart_count: 1 } },
        requeues: [
          {
            restart: 1,
            result: {
              exit_code: 0,
              preemption: {
                signal: 'SIGUSR1',
                saved: true,
                saved_step: saved,
                saved_by: 'commit',
                requeued: { job_id: id },
              },
            },
          },
        ],
      });
      t.notOk(doc.result.preemption, 'the resumed run had no warning');
      const got = JSON.parse(read(path.join(dir, 'report/rank-0.json')));
      t.equal(got.resumedFrom, saved);
      t.equal(got.paramsSha256, want.paramsSha256, 'the same parameters as the uninterrupted run');
      t.equal(got.evalLoss, want.evalLoss, 'the same final loss');
      t.equal(got.stepLosses[STEPS], want.stepLosses[STEPS]);
    },
  );

  t.test('no save within shutdown_grace: the workers heard the signal, the job stops, --wait says why', async (t) => {
    // a Node worker that listens through the runtime's API and never saves
    const worker = `
import { writeFileSync } from 'node:fs';
import { init } from ${JSON.stringify(path.join(repoRoot, 'dist/runtime/index.js'))};
const dist = await init();
dist.onCheckpointSignal((sig) => writeFileSync('heard.' + dist.rank, sig + ' ' + dist.checkpointRequested));
writeFileSync('ready.' + dist.rank, '');
setInterval(() => {}, 1000);
`;
    const dir = mk(
      `name: nosave\nentrypoint: ${JSON.stringify([process.execPath, 'worker.mjs'])}\nnproc_per_node: 2\n` +
        'shutdown_grace: 3s\nscheduler: {kind: slurm, nodes: 1, time: "5", signal: "USR1@60"}\n',
      { 'worker.mjs': worker },
    );
    const job = submit(dir);
    const ready = () => existsSync(path.join(dir, 'ready.0')) && existsSync(path.join(dir, 'ready.1'));
    t.ok(await until(ready, 120_000), job.io.stderr);
    const id = /submitted slurm job (\d+)/.exec(job.io.stderr)![1];
    slurm(tb, ['scancel', '--batch', '--signal=USR1', id]);
    const code = await Promise.race([job.exited, sleep(120_000).then(() => 'timeout')]);
    if (code === 'timeout') job.kill();
    t.equal(code, 1, job.io.stderr);
    for (const r of ['0', '1']) t.equal(read(path.join(dir, `heard.${r}`)), 'SIGUSR1 true', `rank ${r} heard it`);
    t.match(job.io.stderr, /failed: the scheduler's warning \(SIGUSR1\) came and no checkpoint was saved/);
    const doc = JSON.parse(job.io.stdout);
    t.match(doc, {
      state: 'FAILED',
      exit_code: 1,
      result: { exit_code: 1, preemption: { saved: false, saved_step: null, stopped_at: /^\d{4}-/ } },
    });
    t.notOk(doc.requeues, 'not requeued');
    t.match(read(doc.output), /dtrain: not saved: no checkpoint within shutdown_grace \(3s\); stopping the job/);
  });
}
