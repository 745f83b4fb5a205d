/**
 * --wait's state handling against a real slurmctld, with jobs whose script is a plain command: Slurm's
 * own COMPLETED / FAILED / CANCELLED / TIMEOUT endings, and the controller's result file read back.
 */
import t from 'tap';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { submitScript } from '../../../src/batch/submit-script.js';
import { judgeOutcome, waitForSlurmJob } from '../../../src/batch/wait-job.js';
import { squeueJobState } from '../../../src/batch/slurm-state.js';
import { slurm, slurmSkipReason, slurmUp } from '../../helpers/slurm-testbed.js';

const skip = slurmSkipReason();
if (skip && !process.env.DTRAIN_REQUIRE_INTEGRATION) {
  t.plan(0, skip);
} else {
  const tb = slurmUp('wait');
  const dir = mkdtempSync(path.join(tmpdir(), 'dtrain-wait-'));
  t.teardown(() => {
    tb.down();
    rmSync(dir, { recursive: true, force: true });
  });
  const poll = { initialMs: 200, maxMs: 1000 };

  const submit = async (name: string, body: string, directives: string[] = []) => {
    const file = path.join(dir, `${name}.sbatch`);
    writeFileSync(
      file,
      ['#!/bin/bash', ...directives.map((d) => `#SBATCH ${d}`), `#SBATCH --output=${dir}/${name}.out`, body, ''].join(
        '\n',
      ),
    );
    return submitScript('slurm', file, { cwd: dir, env: tb.env });
  };
  const wait = (id: string, name: string, onState?: (s: string) => void) =>
    waitForSlurmJob(id, { env: tb.env, resultFile: path.join(dir, `${name}.result.json`), ...poll, onState });

  t.test('states', async (t) => {
    // the slow one first: slurmctld enforces time limits on a ~30 s timer, so TIMEOUT takes 60-90 s
    const timeoutId = await submit('timeout', 'sleep 300', ['--time=1']);
    const timedOut = wait(timeoutId, 'timeout');

    t.test('a successful script', async (t) => {
      const id = await submit('ok', 'echo fine');
      const seen: string[] = [];
      const o = await wait(id, 'ok', (s) => seen.push(s));
      t.equal(o.state, 'COMPLETED');
      t.equal(o.exitCode, 0);
      t.match(judgeOutcome(id, o, 'out'), { ok: true, exitCode: 0 });
      t.ok(seen.includes('COMPLETED'), `states seen: ${seen.join(' ')}`);
    });

    t.test('a failing script without a result file', async (t) => {
      const id = await submit('fail', 'exit 3');
      const o = await wait(id, 'fail');
      t.equal(o.state, 'FAILED');
      t.equal(o.exitCode, 3);
      t.match(judgeOutcome(id, o, 'out'), {
        ok: false,
        exitCode: 3,
        message: /FAILED with exit code 3 before dtrain reported a result/,
      });
    });

    t.test('the result file names the failed rank', async (t) => {
      const summary = {
        run_id: 'r',
        exit_code: 1,
        root_cause: null,
        attempts: [
          {
            ranks: [
              { rank: 0, host: 'vm', exit_code: 0, signal: null },
              { rank: 1, host: 'vm', exit_code: 7, signal: null },
            ],
          },
        ],
      };
      const id = await submit('ranked', `echo '${JSON.stringify(summary)}' > ${dir}/ranked.result.json; exit 1`);
      const o = await wait(id, 'ranked');
      t.equal(o.state, 'FAILED');
      t.same(o.result, summary);
      t.match(judgeOutcome(id, o, 'out'), {
        ok: false,
        exitCode: 1,
        message: /^job \d+ failed: rank 1 \(vm\) exited with 7;/,
      });
    });

    t.test('a job cancelled while it runs', async (t) => {
      const id = await submit('cancel', 'sleep 300');
      for (let i = 0; i < 50 && (await squeueJobState(id, { env: tb.env })) !== 'RUNNING'; i++) await sleep(200);
      const waiting = wait(id, 'cancel');
      slurm(tb, ['scancel', id]);
      const o = await waiting;
      t.equal(o.state, 'CANCELLED');
      t.match(judgeOutcome(id, o, 'out').message, new RegExp(`^job ${id} ended CANCELLED`));
    });

    t.test('a job past its time limit', async (t) => {
      const o = await timedOut;
      t.equal(o.state, 'TIMEOUT');
      t.match(judgeOutcome(timeoutId, o, 'out'), { ok: false, message: /ended TIMEOUT/ });
    });

    t.test('a job preempted by a higher-priority partition', async (t) => {
      // the node's every CPU, so the "urgent" job (testbed: preempts "debug" by cancelling) needs them
      const cpus = slurm(tb, ['sinfo', '-h', '-N', '-o', '%c']).trim();
      const id = await submit('preempted', 'sleep 300', [`--cpus-per-task=${cpus}`]);
      for (let i = 0; i < 100 && (await squeueJobState(id, { env: tb.env })) !== 'RUNNING'; i++) await sleep(200);
      const waiting = wait(id, 'preempted');
      await submit('urgent', 'true', ['--partition=urgent', `--cpus-per-task=${cpus}`]);
      const o = await waiting;
      t.equal(o.state, 'PREEMPTED');
      t.match(judgeOutcome(id, o, 'out'), { ok: false, message: new RegExp(`^job ${id} ended PREEMPTED`) });
    });

    // last: a node going down would also end (or requeue) the jobs above
    t.test('a job whose node goes down', async (t) => {
      // --no-requeue: otherwise Slurm requeues it and it runs again once the node is back
      const id = await submit('nodefail', 'sleep 300', ['--no-requeue']);
      for (let i = 0; i < 50 && (await squeueJobState(id, { env: tb.env })) !== 'RUNNING'; i++) await sleep(200);
      const node = slurm(tb, ['squeue', '-h', '-j', id, '-o', '%N']).trim();
      const waiting = wait(id, 'nodefail');
      slurm(tb, ['scontrol', 'update', `nodename=${node}`, 'state=down', 'reason=dtrain-test']);
      const o = await waiting;
      try {
        slurm(tb, ['scontrol', 'update', `nodename=${node}`, 'state=resume']);
      } catch {
        // slurmd re-registering may have brought it back already (ReturnToService=2)
      }
      for (let i = 0; i < 50 && !/idle|mix|alloc/.test(slurm(tb, ['sinfo', '-h', '-N', '-o', '%t'])); i++)
        await sleep(200);
      t.equal(o.state, 'NODE_FAIL');
      t.match(judgeOutcome(id, o, 'out').message, new RegExp(`^job ${id} ended NODE_FAIL \\(NodeDown\\)`));
    });
  });
}
