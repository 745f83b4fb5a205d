// A node whose attempt is stopped while it still waits for node 0's MASTER_PORT reports an error instead
// of waiting forever (node 0 may have failed before publishing it).
import t from 'tap';
import type { AgentEvent, AgentSpec } from '../../../src/launch/agent-contract.js';
import { NodeAgent } from '../../../src/launch/agent.js';

t.test('stop before start completes: error event, no workers', async (t) => {
  const events: AgentEvent[] = [];
  const spec: AgentSpec = {
    type: 'spec',
    run_id: 'r',
    node: { node_rank: 1, host: 'b', nproc: 1, local: true },
    ranks: [
      { rank: 1, node_rank: 1, host: 'b', local_rank: 0, data: 1, pipeline: 0, tensor: 0, command: ['true'], env: {} },
    ],
    world_size: 2,
    nnodes: 2,
    workdir: '/',
    master: { addr: 'a', port: 'auto' },
    store: { kind: 'stream' },
    job_key: '',
    restarts_max: 0,
    heartbeat_interval_ms: 1000,
    logs: { dir: '/nonexistent', ranks: 'all', tee: true },
  };
  const agent = new NodeAgent(
    spec,
    {
      emit: (e) => events.push(e),
      publishMasterPort: async () => {},
      awaitMasterPort: () => new Promise<number>(() => {}), // node 0 never publishes
      storeAddress: async () => 'unix:/nonexistent',
    },
    null,
  );
  const started = agent.start(0);
  agent.stop(0, 'SIGTERM', 1000);
  await started;
  t.match(events, [{ type: 'error', node_rank: 1, attempt: 0, message: 'stopped before its workers started' }]);
  await agent.idle();
});
