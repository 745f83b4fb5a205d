// A node lost while the job is still starting (its connection dropped before the supervisor existed):
// the real controller, store and local agent, with a remote spawner that reports the loss at once. The
// loss must fail the first attempt (the local worker is stopped, the root cause names the node) instead
// of being dropped, which left the job waiting for the node's heartbeat timeout.
import { join } from 'node:path';
import { PassThrough } from 'node:stream';
import t from 'tap';
import { configFromArgs } from '../../../src/config/index.js';
import { launchJob } from '../../../src/launch/controller.js';
import type { NodeSource } from '../../../src/launch/node-source.js';
import type { NodeHandle } from '../../../src/launch/supervisor.js';
import { buildPlan } from '../../../src/plan/index.js';
import { tempDir } from '../../helpers/launch.js';

for (const backend of ['cpu', 'auto']) {
  t.test(`a node lost during start-up fails attempt 0 at once (backend ${backend})`, async (t) => {
    const dir = tempDir(t);
    const marker = join(dir, 'worker-started');
    const loaded = await configFromArgs({
      entrypoint: ['sh', '-c', `touch ${marker}; exec sleep 30`],
      nprocPerNode: 1,
      hosts: ['localhost', 'ghost.invalid'],
      backend,
      // auto: the lost node never reports its GPU probe; the launch must not wait rendezvous.timeout for it
      sets: [`logs.dir=${dir}/logs`, 'heartbeat.timeout=60s', 'shutdown_grace=2s', 'rendezvous.timeout=60s'],
    });
    const plan = buildPlan(loaded);
    const calls: string[] = [];
    const start: NodeSource['start'] = async (_specs, ctx) => {
      // what an SSH spawner does when the connection resets while the agent starts
      ctx.onLost(1, 'ghost.invalid: connection reset during start-up');
      const ghost: NodeHandle = {
        nodeRank: 1,
        host: 'ghost.invalid',
        start: (a) => void calls.push(`start ${a}`),
        stop: (a, s) => void calls.push(`stop ${a} ${s}`),
        kill: (a) => void calls.push(`kill ${a}`),
        forward: () => {},
        close: async () => {},
      };
      return [ghost];
    };
    const source: NodeSource = {
      kind: 'ssh',
      resolve: async () => ({ config: loaded.config, warnings: [] }),
      start,
      close: async () => {},
    };
    const sink = new PassThrough();
    sink.resume();
    const t0 = Date.now();
    const err = (await launchJob({ config: loaded.config, plan, json: false, source, out: sink, err: sink }).catch(
      (e: unknown) => e,
    )) as Error & {
      exitCode?: number;
      summary?: { root_cause?: { message?: string; host?: string } };
    };
    const ms = Date.now() - t0;
    t.ok(err instanceof Error, 'the job fails');
    t.equal(err.exitCode, 3, 'no worker ran: the job could not start');
    t.match(err.message + JSON.stringify(err.summary ?? {}), /ghost\.invalid: connection reset during start-up/);
    t.ok(ms < 15_000, `ended in ${ms} ms, long before the 60 s heartbeat and rendezvous timeouts`);
    if (backend === 'cpu') t.ok(calls.includes('start 0'), 'the lost node was part of attempt 0');
    else t.match(err.message, /node 1 was lost while the job started/);
  });
}
