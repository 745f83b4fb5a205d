/**
 * The controller-facing layer (remote-nodes.ts) on real sshd hosts: the AgentSpec reaches each agent on
 * stdin with ssh.forward_env merged below the plan's env, stdout records and stderr diagnostics come back
 * attributed to their node, and a network cut is reported as a lost node naming the host. The agent is the
 * fixture stub (it echoes what it got); the real `dtrain agent` is exercised by the launch tests.
 */
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t from 'tap';
import type { AgentSpec, OutputRecord } from '../../../src/launch/agent-contract.js';
import { startRemoteNodes } from '../../../src/launch/ssh/remote-nodes.js';
import { defaultSshSettings, type SshTarget } from '../../../src/launch/ssh/target.js';
import type { NodePlan, RankPlan } from '../../../src/plan/types.js';
import { inHost, repoRoot, skipReason, strayPids, testbedUp } from '../../helpers/ssh-testbed.js';

const skip = skipReason();
if (skip && !process.env.DTRAIN_REQUIRE_INTEGRATION) {
  t.plan(0, skip);
  process.exit(0);
}

const bed = testbedUp(2, 'tr');
t.teardown(() => bed.down());
const scratch = mkdtempSync(join(tmpdir(), 'dtrain-ssh-rn-'));
t.teardown(() => rmSync(scratch, { recursive: true, force: true }));
const jobKey = Buffer.from('k'.repeat(32)).toString('base64');

const nodes: NodePlan[] = bed.hosts.map((h, i) => ({
  node_rank: i,
  host: h.address,
  nproc: 1,
  local: false,
  user: 'root',
  port: 22,
}));
const rank = (i: number): RankPlan => ({
  rank: i,
  node_rank: i,
  host: bed.hosts[i].address,
  local_rank: 0,
  data: i,
  pipeline: 0,
  tensor: 0,
  command: ['node', '-e', '0'],
  env: { RANK: String(i), NCCL_DEBUG: 'WARN' },
});

// the testbed's key and known_hosts, and the agent stub (it echoes what it got) as the remote dtrain
const stubSettings = {
  ...defaultSshSettings,
  identity_file: bed.client_key,
  known_hosts: bed.known_hosts,
  remote_dtrain: join(repoRoot, 'test/fixtures/ssh/agent-stub.mjs'),
};

const routes = new Map<number, { localAddress?: string; targets: ReadonlyMap<number, SshTarget> }>();
function spec(
  node: NodePlan,
  store: AgentSpec['store'],
  route: { localAddress?: string; targets: ReadonlyMap<number, SshTarget> },
): AgentSpec {
  routes.set(node.node_rank, route);
  return {
    type: 'spec',
    run_id: 'r1',
    node,
    ranks: [rank(node.node_rank)],
    world_size: 2,
    nnodes: 2,
    workdir: scratch,
    master: { addr: nodes[0].host, port: 'auto' },
    store,
    job_key: jobKey,
    restarts_max: 0,
    heartbeat_interval_ms: 1000,
    logs: { dir: scratch, ranks: 'all', tee: true },
  };
}

t.test('spec on stdin, forward_env below the plan, records and diagnostics attributed, lost node named', async (t) => {
  const records: Array<[number, OutputRecord]> = [];
  const diagnostics: string[] = [];
  const lost: Array<[number, string]> = [];
  const remote = await startRemoteNodes({
    nodes,
    settings: stubSettings,
    workdir: scratch,
    store: { host: '127.0.0.1', port: 9 },
    helloTimeoutMs: 10_000,
    keepaliveIntervalMs: 500,
    keepaliveCountMax: 2,
    sshConfigPath: join(scratch, 'none'),
    env: { NCCL_DEBUG: 'INFO', NCCL_IB_DISABLE: '1', HOME: '/x', SECRET_THING: 's' },
    spec,
    onRecord: (n, r) => records.push([n, r]),
    onDiagnostic: (l) => diagnostics.push(l),
    onLost: (n, why) => lost.push([n, why]),
  });
  t.teardown(() => remote.close());
  // stdout records and stderr lines travel on separate SSH streams: wait for both, in whichever order they come
  const hostLine = `[${bed.hosts[1].address}] spec for node 1, job key of 32 bytes`;
  for (let i = 0; i < 300 && (records.length < 2 || !diagnostics.includes(hostLine)); i++)
    await new Promise((r) => setTimeout(r, 100));
  const got = records.sort((a, b) => a[0] - b[0]).map(([n, r]) => [n, JSON.parse(r.lines[0])]);
  t.equal(got.length, 2);
  for (const [n, doc] of got) {
    t.same(
      doc.env,
      { NCCL_IB_DISABLE: '1', NCCL_DEBUG: 'WARN', RANK: String(n) },
      'forwarded NCCL_* below the plan env; others not forwarded',
    );
    t.same(doc.store, { kind: 'tcp', host: '127.0.0.1', port: remote.agents[n as number].storeAddr.port });
  }
  t.ok(diagnostics.includes(hostLine), 'stderr lines carry the host', { diagnostics });
  t.equal(
    routes.get(1)?.targets.get(0)?.hostName,
    bed.hosts[0].address,
    "each spec is made knowing node 0's address as SSH dials it",
  );
  t.equal(routes.get(1)?.localAddress, bed.controller_address, "and this machine's address on that node's route back");
  t.equal(remote.agents[0].localAddress, bed.controller_address, 'the route back to the controller');

  inHost(bed.hosts[1], ['ip', 'link', 'set', 'eth0', 'down']);
  for (let i = 0; i < 60 && lost.length === 0; i++) await new Promise((r) => setTimeout(r, 100));
  t.equal(lost.length, 1);
  t.equal(lost[0][0], 1);
  t.match(lost[0][1], new RegExp(`^${bed.hosts[1].address.replace(/\./g, '\\.')}: `));
  inHost(bed.hosts[1], ['ip', 'link', 'set', 'eth0', 'up']);

  await remote.close();
  // close() resolves once the agent exited; sshd's own session process may need a moment more
  let left = strayPids(bed.hosts[0]);
  for (let i = 0; i < 30 && left.length; i++) {
    await new Promise((r) => setTimeout(r, 100));
    left = strayPids(bed.hosts[0]);
  }
  t.same(left, [], 'close() ended the agent on the connected host');
  t.same(lost.length, 1, 'closing is not a loss');
});

t.test('each agent gets its spec as it starts, not once every agent has', async (t) => {
  // The second host's prelude holds its agent back for 1.5 s; the first agent's spec must not wait for it.
  const events = join(scratch, 'events.log');
  const slow = bed.hosts[1].hostname;
  const remote = await startRemoteNodes({
    nodes,
    settings: {
      ...stubSettings,
      prelude: `export STUB_EVENTS=${events}; if [ "$(hostname)" = ${slow} ]; then sleep 1.5; fi`,
    },
    workdir: scratch,
    store: { host: '127.0.0.1', port: 9 },
    helloTimeoutMs: 10_000,
    keepaliveIntervalMs: 1000,
    sshConfigPath: join(scratch, 'none'),
    env: {},
    spec,
    onDiagnostic: () => {},
    onLost: () => {},
  });
  t.teardown(() => remote.close());
  const at = (event: string, host: string) => {
    const line = readFileSync(events, 'utf8')
      .split('\n')
      .find((l) => l.startsWith(`${event} ${host} `));
    return line ? Number(line.split(' ')[2]) : NaN;
  };
  for (let i = 0; i < 50 && Number.isNaN(at('spec', slow)); i++) await new Promise((r) => setTimeout(r, 100));
  const fast = bed.hosts[0].hostname;
  t.ok(
    at('spec', fast) < at('hello', slow),
    `${fast} had its spec ${at('hello', slow) - at('spec', fast)} ms before ${slow} said hello`,
  );
  t.ok(at('spec', slow) >= at('hello', slow), 'and each spec comes after its own hello');
  await remote.close();
});
