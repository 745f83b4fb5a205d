// The agent checks workdir, a path on its own node, before it makes the attempt's log folder (logs.dir
// defaults under workdir) or starts a worker: a start failure naming workdir.
import t from 'tap';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { AgentEvent, AgentSpec } from '../../../src/launch/agent-contract.js';
import { NodeAgent, workdirProblem } from '../../../src/launch/agent.js';

const tmp = mkdtempSync(join(tmpdir(), 'dtrain-agent-workdir-'));
t.teardown(() => rmSync(tmp, { recursive: true, force: true }));
writeFileSync(join(tmp, 'afile'), '');

t.test('workdirProblem: missing, a file, a path through a file; a folder is fine', async (t) => {
  t.equal(workdirProblem(tmp), undefined);
  t.equal(workdirProblem(join(tmp, 'nope')), `workdir ${tmp}/nope does not exist`);
  t.equal(workdirProblem(join(tmp, 'afile')), `workdir ${tmp}/afile is not a folder`);
  t.equal(workdirProblem(join(tmp, 'afile/x')), `workdir ${tmp}/afile/x does not exist`);
});

t.test('an agent whose workdir is missing reports it and makes no log folder', async (t) => {
  const events: AgentEvent[] = [];
  const workdir = join(tmp, 'missing');
  const spec: AgentSpec = {
    type: 'spec',
    run_id: 'r',
    node: { node_rank: 0, host: 'a', nproc: 1, local: false },
    ranks: [
      {
        rank: 0,
        node_rank: 0,
        host: 'a',
        local_rank: 0,
        data: 1,
        pipeline: 0,
        tensor: 0,
        command: ['touch', join(tmp, 'ran')],
        env: {},
      },
    ],
    world_size: 1,
    nnodes: 1,
    workdir,
    master: { addr: '127.0.0.1', port: 'auto' },
    store: { kind: 'stream' },
    job_key: '',
    restarts_max: 0,
    heartbeat_interval_ms: 1000,
    logs: { dir: join(workdir, 'logs'), ranks: 'all', tee: true },
  };
  const agent = new NodeAgent(
    spec,
    {
      emit: (e) => events.push(e),
      publishMasterPort: async () => {},
      awaitMasterPort: async () => 1,
      storeAddress: async () => 'unix:/nonexistent',
    },
    null,
  );
  t.teardown(() => agent.dispose());
  await agent.start(0);
  t.same(events, [{ type: 'error', node_rank: 0, attempt: 0, message: `workdir ${workdir} does not exist` }]);
  t.notOk(existsSync(workdir), 'no log folder (nor workdir) made');
  t.notOk(existsSync(join(tmp, 'ran')), 'no worker started');
  await agent.idle();
});
