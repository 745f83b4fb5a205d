/**
 * The srun spawner against a real Slurm allocation: one step per node started in parallel, the version
 * exchange, the spec on stdin, the agent's stdout after the hello, close() ending the step, a killed step
 * reported as lost, and the start failures (version mismatch, agent dying early, srun missing) as
 * StartErrors naming the host. The agent is a stand-in (test/fixtures/slurm/agent-stub.mjs): what is under
 * test is srun and the spawner. The allocation is a held `sleep` job the steps attach to via SLURM_JOB_ID.
 */
import t from 'tap';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { setTimeout as sleep } from 'node:timers/promises';
import { startSrunAgents, type SrunLaunchRequest } from '../../../src/launch/slurm/srun-spawner.js';
import { allocationHosts, detectSlurmAllocation } from '../../../src/launch/slurm/allocation.js';
import { StartError } from '../../../src/util/errors.js';
import { packageVersion } from '../../../src/util/version.js';
import { slurm, slurmSkipReason, slurmUp } from '../../helpers/slurm-testbed.js';

const stub = fileURLToPath(new URL('../../fixtures/slurm/agent-stub.mjs', import.meta.url));
const skip = slurmSkipReason();
if (skip && !process.env.DTRAIN_REQUIRE_INTEGRATION) {
  t.plan(0, skip);
} else {
  const tb = slurmUp('srun');
  const workdir = mkdtempSync(path.join(tmpdir(), 'dtrain-srun-'));
  t.teardown(() => {
    tb.down();
    rmSync(workdir, { recursive: true, force: true });
  });

  const holder = slurm(tb, ['sbatch', '--parsable', '--output=/dev/null', '--wrap', 'sleep 300']).trim();
  const env = { ...tb.env, SLURM_JOB_ID: holder };
  const steps = () =>
    slurm(tb, ['squeue', '-h', '-s', '-j', holder, '-o', '%i'])
      .split('\n')
      .filter((s) => s && !/\.(batch|extern)$/.test(s));

  t.before(async () => {
    for (let i = 0; i < 50 && slurm(tb, ['squeue', '-h', '-j', holder, '-o', '%T']).trim() !== 'RUNNING'; i++)
      await sleep(200);
  });

  const request = (over: Partial<SrunLaunchRequest> = {}): SrunLaunchRequest => ({
    nodes: [{ node_rank: 0, host: 'unset' }],
    workdir,
    dtrain: [process.execPath, stub],
    helloTimeoutMs: 30_000,
    env,
    ...over,
  });

  t.test('the allocation as dtrain launch sees it', async (t) => {
    const alloc = detectSlurmAllocation({
      ...env,
      SLURM_JOB_NODELIST: slurm(tb, ['squeue', '-h', '-j', holder, '-o', '%N']).trim(),
      SLURM_JOB_NUM_NODES: '1',
    });
    t.ok(alloc);
    const hosts = await allocationHosts(alloc!, env);
    t.equal(hosts.length, 1);
  });

  t.test('agents on every node: hello, spec on stdin, records on stdout, close ends the step', async (t) => {
    const host = slurm(tb, ['squeue', '-h', '-j', holder, '-o', '%N']).trim();
    // two nodes' agents (both on the testbed's one node: the steps are independent either way)
    const agents = await startSrunAgents(
      request({
        nodes: [
          { node_rank: 0, host },
          { node_rank: 1, host },
        ],
        cpusPerTask: 1,
      }),
    );
    t.equal(agents.length, 2);
    const key = Buffer.alloc(32, 7).toString('base64');
    const seen = await Promise.all(
      agents.map(async (a) => {
        t.equal(a.hello.version, packageVersion());
        a.stdin.write(
          JSON.stringify({
            type: 'spec',
            node: { node_rank: a.node.node_rank },
            ranks: [{ rank: a.node.node_rank }],
            job_key: key,
          }) + '\n',
        );
        const line: string = await new Promise((resolve) => createInterface({ input: a.stdout }).once('line', resolve));
        return JSON.parse(JSON.parse(line).lines[0]);
      }),
    );
    for (const [i, s] of seen.entries()) {
      t.match(s, { node_rank: i, job: holder, argv: ['agent', '--stdio'], cwd: workdir, leaked: false });
    }
    t.not(seen[0].step, seen[1].step, 'one step per node');
    t.equal(steps().length, 2);
    for (const a of agents) a.close();
    const exits = await Promise.all(agents.map((a) => a.exited));
    t.same(
      exits.map((e) => e.code),
      [1, 1],
      'the agents saw EOF (controller gone) and exited 1',
    );
    // srun has returned; slurmctld drops the step record a moment later
    for (let i = 0; i < 25 && steps().length; i++) await sleep(200);
    t.same(steps(), [], 'no step left');
  });

  t.test('a step killed under a running agent is reported lost', async (t) => {
    const host = slurm(tb, ['squeue', '-h', '-j', holder, '-o', '%N']).trim();
    const [agent] = await startSrunAgents(request({ nodes: [{ node_rank: 3, host }] }));
    const [step] = steps();
    t.ok(step);
    slurm(tb, ['scancel', step]);
    const why = await agent.lost;
    t.match(why, /^srun step ended \((exit code \d+|killed by SIG\w+)\)/);
  });

  t.test('start failures are StartErrors naming the host, and leave no step', async (t) => {
    const host = slurm(tb, ['squeue', '-h', '-j', holder, '-o', '%N']).trim();
    const expectStartError = async (req: SrunLaunchRequest, pattern: RegExp) => {
      try {
        await startSrunAgents(req);
        t.fail('started');
      } catch (err) {
        t.ok(err instanceof StartError, String(err));
        t.equal((err as StartError).exitCode, 3);
        t.match((err as Error).message, pattern);
      }
    };
    await expectStartError(
      request({ nodes: [{ node_rank: 0, host }], env: { ...env, STUB_VERSION: '0.0.0-old' } }),
      new RegExp(
        `^${host}: dtrain version mismatch: the controller runs ${packageVersion().replace(/\./g, '\\.')}, the agent there runs 0\\.0\\.0-old`,
      ),
    );
    await expectStartError(
      request({ nodes: [{ node_rank: 0, host }], env: { ...env, STUB_NO_KX: '1' } }),
      new RegExp(
        `^${host}: the agent answered without its key exchange \\(the job key is never sent in clear over srun\\)`,
      ),
    );
    await expectStartError(
      request({ nodes: [{ node_rank: 0, host }], env: { ...env, STUB_DIE: '1' } }),
      new RegExp(
        `^${host}: the agent step ended before the version exchange \\(exit code 4\\): .*cannot start \\(STUB_DIE\\)`,
      ),
    );
    await expectStartError(
      request({ nodes: [{ node_rank: 0, host }], srun: '/nonexistent/srun' }),
      /\/nonexistent\/srun not found on PATH/,
    );
    await expectStartError(
      request({ nodes: [{ node_rank: 0, host: 'no-such-node' }] }),
      /^no-such-node: the agent step ended before the version exchange \(exit code 1\): srun: error: .*/,
    );
    for (let i = 0; i < 20 && steps().length; i++) await sleep(200);
    t.same(steps(), []);
  });

  t.teardown(() => void slurm(tb, ['scancel', holder]));
}
