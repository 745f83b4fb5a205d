/**
 * `dtrain status --json` on a job launched inside a real one-node Slurm allocation (its agents in srun steps,
 * the controller on a machine outside the allocation): every rank's host is the Slurm node, its pid the
 * worker itself, running inside the allocation, with its state and steps.
 */
import t from 'tap';
import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import {
  dtrain,
  dtrainBin,
  launchUsesSrun,
  repoRoot,
  slurm,
  slurmSkipReason,
  slurmUp,
} from '../../helpers/slurm-testbed.js';
import { NODE_WORKER_V8_FLAGS } from '../../../src/runtime/worker-env-table.js';

/** what the agent puts between node and a Node worker's script by default */
const nodeFlags = NODE_WORKER_V8_FLAGS.join(' ');

interface StatusDoc {
  state: string;
  nodes: { node_rank: number; host: string; state: string }[];
  ranks: { rank: number; host: string; pid: number; state: string; step?: number }[];
}

function procText(pid: number, file: string): string {
  try {
    return readFileSync(`/proc/${pid}/${file}`, 'utf8').split('\0').join(' ');
  } catch {
    return '';
  }
}

const skip = slurmSkipReason();
if (skip && !process.env.DTRAIN_REQUIRE_INTEGRATION) {
  t.plan(0, skip);
} else if (!launchUsesSrun()) {
  t.plan(0, 'dtrain launch does not start agents with srun yet (the Slurm node source is not built)');
} else {
  const tb = slurmUp('status');
  const dir = mkdtempSync(path.join(tmpdir(), 'dtrain-slurm-status-'));
  t.teardown(() => {
    tb.down();
    rmSync(dir, { recursive: true, force: true });
  });
  const holder = slurm(tb, ['sbatch', '--parsable', '--output=/dev/null', '--wrap', 'sleep 300']).trim();
  t.teardown(() => void slurm(tb, ['scancel', holder]));

  t.test('status of a job in a Slurm allocation: the node, worker pids in the allocation, states', async (t) => {
    for (let i = 0; i < 50 && slurm(tb, ['squeue', '-h', '-j', holder, '-o', '%T']).trim() !== 'RUNNING'; i++)
      await sleep(200);
    const node = slurm(tb, ['squeue', '-h', '-j', holder, '-o', '%N']).trim();
    const prog = path.join(repoRoot, 'test/fixtures/launch/report-steps.mjs');
    writeFileSync(
      path.join(dir, 'job.yaml'),
      `name: slurm-status\nentrypoint: ${JSON.stringify([process.execPath, prog])}\n` +
        `nproc_per_node: 2\nshutdown_grace: 2s\nscheduler: {kind: slurm, nodes: 1}\n` +
        `logs: {dir: ${JSON.stringify(path.join(dir, 'logs'))}}\n`,
    );
    const env = {
      ...tb.env,
      NODE_OPTIONS: '',
      DTRAIN_RUNS_DIR: path.join(dir, 'runs'),
      SLURM_JOB_ID: holder,
      SLURM_JOB_NODELIST: node,
      SLURM_JOB_NUM_NODES: '1',
      SLURMD_NODENAME: 'login-node',
    };
    const launch = spawn(process.execPath, [dtrainBin, 'launch', 'job.yaml'], { cwd: dir, env, stdio: 'pipe' });
    let stderr = '';
    launch.stderr.on('data', (b: Buffer) => (stderr += b.toString()));
    const exited = new Promise<number | null>((r) => launch.on('exit', (code) => r(code)));
    t.teardown(() => launch.kill('SIGKILL'));
    let doc: StatusDoc | undefined;
    for (const end = Date.now() + 90_000; Date.now() < end; await sleep(500)) {
      const r = dtrain(['status', '--json'], { env, cwd: dir, timeoutMs: 20_000 });
      doc = r.status === 0 ? (JSON.parse(r.stdout) as StatusDoc) : undefined;
      if (doc?.ranks.every((x) => (x.step ?? 0) > 5)) break;
    }
    if (!doc?.ranks.every((x) => (x.step ?? 0) > 5)) {
      launch.kill('SIGTERM');
      await exited;
      t.fail(`no status with steps: ${JSON.stringify(doc)}\n${stderr.slice(-2000)}`);
      return;
    }
    t.equal(doc.state, 'running');
    t.match(doc.nodes, [{ node_rank: 0, host: node, state: 'running' }]);
    t.equal(doc.ranks.length, 2);
    for (const r of doc.ranks) {
      t.match(r, { host: node, state: 'running' }, `rank ${r.rank}`);
      t.match(
        procText(r.pid, 'cmdline'),
        new RegExp(`^${process.execPath} ${nodeFlags} ${prog}`),
        `rank ${r.rank}: the worker`,
      );
      t.match(procText(r.pid, 'environ'), new RegExp(`\\bSLURM_JOB_ID=${holder}\\b`), `rank ${r.rank}: in the job`);
      t.match(procText(r.pid, 'environ'), /\bSLURM_STEP_ID=\d+\b/, `rank ${r.rank}: in an srun step`);
    }
    launch.kill('SIGTERM');
    await exited;
  });
}
