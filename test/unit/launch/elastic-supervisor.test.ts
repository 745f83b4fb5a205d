// Elastic supervision decisions against scripted nodes, with the real membership (plan/elastic.ts) and the
// real commit rules (runtime/commits.ts) over an in-memory store: a loss re-plans without counting a
// restart, failures just before a loss belong to it, spares are started, min_nodes ends the job.
import t from 'tap';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { loadConfig } from '../../../src/config/index.js';
import type { AgentEvent, AttemptStart } from '../../../src/launch/agent-contract.js';
import { ElasticMembership } from '../../../src/launch/membership.js';
import { Supervisor, type NodeHandle } from '../../../src/launch/supervisor.js';
import { commitStep, RESIZE_EXIT_CODE, type CommitStore } from '../../../src/runtime/commits.js';

const tmp = mkdtempSync(join(tmpdir(), 'dtrain-elastic-sup-'));
t.teardown(() => rmSync(tmp, { recursive: true, force: true }));

/** The store operations the commit rules use, over a Map (compare-and-set included). */
class MemoryStore implements CommitStore {
  readonly map = new Map<string, Buffer>();
  tryGet(key: string) {
    return Promise.resolve(this.map.get(key));
  }
  cas(key: string, expected: Buffer | string | null, desired: Buffer | string) {
    const cur = this.map.get(key);
    const exp = expected === null || expected.length === 0 ? undefined : Buffer.from(expected);
    if ((cur === undefined && exp === undefined) || (cur && exp && cur.equals(exp)))
      this.map.set(key, Buffer.from(desired));
    return Promise.resolve(this.map.get(key));
  }
  set(key: string, value: Buffer | string) {
    this.map.set(key, Buffer.from(value));
    return Promise.resolve();
  }
}

type Script = (node: Node, attempt: number, ranks: number[]) => void;

class Node implements NodeHandle {
  readonly starts: { attempt: number; launch?: AttemptStart }[] = [];
  sup!: Supervisor;
  cut = false;
  private readonly running = new Map<number, number[]>();
  constructor(
    readonly nodeRank: number,
    readonly host: string,
    private readonly script: Script,
  ) {}
  start(attempt: number, launch?: AttemptStart) {
    this.starts.push({ attempt, launch });
    const ranks = launch?.assignment?.ranks.map((r) => r.rank) ?? [];
    this.running.set(attempt, ranks);
    queueMicrotask(() => {
      this.emit({
        type: 'started',
        node_rank: this.nodeRank,
        attempt,
        master_port: 1,
        workers: ranks.map((rank) => ({ rank, local_rank: 0, pid: 1 })),
      });
      this.script(this, attempt, ranks);
    });
  }
  stop(attempt: number, signal: string) {
    if (!this.cut) queueMicrotask(() => this.running.get(attempt)?.forEach((r) => this.exit(attempt, r, null, signal)));
  }
  kill() {}
  forward() {}
  closed = false;
  async close() {
    this.closed = true;
  }
  exit(attempt: number, rank: number, code: number | null, signal: string | null = null) {
    this.emit({
      type: 'exit',
      node_rank: this.nodeRank,
      attempt,
      rank,
      local_rank: 0,
      host: this.host,
      pid: 1,
      exit_code: code,
      signal,
      time: new Date().toISOString(),
      stderr_tail: [],
      error_file: null,
    });
  }
  emit(ev: AgentEvent) {
    this.sup.onEvent(ev);
  }
}

let n = 0;
async function elasticJob(
  yaml: string[],
  script: Script,
  spares: Node[] = [],
  latestSettleMs?: number,
  /** nodes with no agent until one comes by itself (join mode) */
  absent: number[] = [],
  notStarted?: { id: number; why: string }[],
) {
  const file = `j${n++}.yaml`;
  writeFileSync(join(tmp, file), ['entrypoint: x', 'nproc_per_node: 2', 'backend: cpu', ...yaml].join('\n'));
  const { config } = await loadConfig(file, { cwd: tmp });
  const nodes = config.nodes
    .map((c, i) => new Node(i, c.host, script))
    .filter((n) => !absent.includes(n.nodeRank) && !notStarted?.some((x) => x.id === n.nodeRank));
  const commits = new MemoryStore();
  const notes: string[] = [];
  const started: number[] = [];
  const membership = new ElasticMembership({
    config,
    handles: nodes,
    startNode: (id) => {
      started.push(id);
      const spare = spares.find((s) => s.nodeRank === id);
      return spare ? Promise.resolve(spare) : Promise.reject(new Error('unreachable'));
    },
    masterAddrOf: (host) => host,
    commits,
    note: (l) => notes.push(l),
    ...(latestSettleMs !== undefined && { latestSettleMs }),
    absent,
    ...(notStarted && { notStarted }),
  });
  const sup = new Supervisor({
    runId: 'r',
    worldSize: 0,
    restartsMax: 0,
    backoffMs: 1,
    shutdownGraceMs: 10,
    logDir: '/l',
    nodes,
    ranksPerNode: [],
    membership,
    heartbeatTimeoutMs: 5000,
  });
  for (const x of [...nodes, ...spares]) x.sup = sup;
  return { sup, nodes, notes, commits, started, membership };
}

const allExit: Script = (node, k, ranks) => {
  if (k > 0) for (const r of ranks) node.exit(k, r, 0);
};

t.test('a lost node: the next attempt runs on the others, no restart counted, one line, one entry', async (t) => {
  const { sup, nodes, notes, commits } = await elasticJob(
    ['nodes: [{host: a}, {host: b}, {host: c}]', 'elastic: {min_nodes: 2}'],
    allExit,
  );
  const run = sup.run();
  await new Promise((r) => setTimeout(r, 20));
  nodes[2].cut = true;
  sup.nodeLost(2, 'no heartbeat for 5s', 5000);
  const { outcome, summary } = await run;
  t.same(outcome, { kind: 'ok' });
  t.same(notes, [
    'dtrain: node 2 (host c) lost: no heartbeat for 5s; continuing on 2 nodes, world 4 (data 4), attempt 1',
  ]);
  t.match(summary.membership, [
    { attempt: 1, nodes: 2, world: 4, reason: 'node 2 (host c) lost: no heartbeat for 5s', detected_after_s: 5 },
  ]);
  t.equal(nodes[2].starts.length, 1, 'the lost node gets no attempt 1');
  t.match(nodes[1].starts[1], {
    attempt: 1,
    launch: { restarts: 0, prev_world_size: 6, assignment: { node_rank: 1, world_size: 4, nnodes: 2 } },
  });
  t.same(
    nodes[1].starts[1].launch?.assignment?.ranks.map((r) => r.env.WORLD_SIZE),
    ['4', '4'],
  );
  t.match(await commitStep(commits, 0, 10, 6), { kind: 'refused' }, "the lost attempt's commits are refused");
  t.match(await commitStep(commits, 1, 10, 4), { kind: 'committed' }, 'attempt 1 commits');
});

t.test('two nodes lost in one attempt: one change whose line and entry name both', async (t) => {
  const { sup, nodes, notes } = await elasticJob(
    ['nodes: [{host: a}, {host: b}, {host: c}, {host: d}]', 'elastic: {min_nodes: 2}'],
    allExit,
  );
  const run = sup.run();
  await new Promise((r) => setTimeout(r, 20));
  nodes[2].cut = true;
  nodes[3].cut = true;
  sup.nodeLost(2, 'no heartbeat for 5s');
  sup.nodeLost(3, 'no heartbeat for 5s');
  const { outcome, summary } = await run;
  t.same(outcome, { kind: 'ok' });
  const both = 'node 2 (host c) lost: no heartbeat for 5s; node 3 (host d) lost: no heartbeat for 5s';
  t.same(notes, [`dtrain: ${both}; continuing on 2 nodes, world 4 (data 4), attempt 1`]);
  t.match(summary.membership, [{ attempt: 1, nodes: 2, world: 4, reason: both }]);
});

t.test('a worker failure just before the loss belongs to the loss', async (t) => {
  const { sup, nodes } = await elasticJob(
    ['nodes: [{host: a}, {host: b}, {host: c}]', 'elastic: {min_nodes: 2}'],
    allExit,
  );
  const run = sup.run();
  await new Promise((r) => setTimeout(r, 20));
  nodes[2].cut = true;
  nodes[1].exit(0, 2, 1); // a survivor's collective failed first
  await new Promise((r) => setTimeout(r, 20));
  sup.nodeLost(2, 'no heartbeat for 5s');
  const { outcome, summary } = await run;
  t.same(outcome, { kind: 'ok' }, 'not a failure: restarts.max 0 would have ended the job');
  t.equal(summary.attempts.length, 2);
});

t.test('without a loss the same failure is a failure (restarts.max 0: the job ends)', async (t) => {
  const { sup, nodes } = await elasticJob(
    ['nodes: [{host: a}, {host: b}, {host: c}]', 'elastic: {min_nodes: 2}'],
    allExit,
  );
  const run = sup.run();
  await new Promise((r) => setTimeout(r, 20));
  nodes[1].exit(0, 2, null, 'SIGKILL');
  const { outcome, summary } = await run;
  t.same(outcome, { kind: 'failed' });
  t.match(summary.root_cause, { rank: 2, signal: 'SIGKILL' });
  t.same(summary.membership, []);
});

t.test("a spare takes the lost node's place, started when needed", async (t) => {
  const spare = new Node(2, 's', allExit);
  const { sup, nodes, notes, started } = await elasticJob(
    ['nodes: [{host: a}, {host: b}, {host: s, spare: true}]', 'elastic: {min_nodes: 2}'],
    allExit,
    [spare],
  );
  const run = sup.run();
  await new Promise((r) => setTimeout(r, 20));
  t.same(started, [], 'no spare started at full strength');
  nodes[0].cut = true;
  sup.nodeLost(0, 'connection closed');
  t.same((await run).outcome, { kind: 'ok' });
  t.same(started, [2]);
  t.same(notes, [
    'dtrain: node 0 (host a) lost: connection closed; continuing on 2 nodes, world 4 (data 4), attempt 1',
  ]);
  t.match(spare.starts, [{ attempt: 1, launch: { assignment: { node_rank: 0, master: { addr: 's' } } } }]);
  t.match(nodes[1].starts[1], { launch: { assignment: { node_rank: 1, master: { addr: 's' } } } });
});

t.test('fewer than min_nodes: the job fails saying why', async (t) => {
  const { sup, nodes } = await elasticJob(['nodes: [{host: a}, {host: b}]', 'elastic: {min_nodes: 2}'], allExit);
  const run = sup.run();
  await new Promise((r) => setTimeout(r, 20));
  nodes[1].cut = true;
  sup.nodeLost(1, 'no heartbeat for 5s');
  const { outcome, summary } = await run;
  t.same(outcome, { kind: 'failed' });
  t.match(summary.root_cause, { message: 'cannot continue: 1 node alive, fewer than elastic.min_nodes (2)' });
});

/** Attempt 0 and 1 hold; later attempts exit 0. Every attempt's ranks are recorded per node. */
function holdingScript(held: Map<number, { node: Node; ranks: number[] }[]>): Script {
  return (node, k, ranks) => {
    if (k >= 2) return allExit(node, k, ranks);
    held.set(k, [...(held.get(k) ?? []), { node, ranks }]);
  };
}

const until = async (what: () => boolean) => {
  for (let i = 0; i < 500 && !what(); i++) await new Promise((r) => setTimeout(r, 10));
};

t.test('a lost node back in reach: taken in at the next commit (exit 75), no restart counted', async (t) => {
  const held = new Map<number, { node: Node; ranks: number[] }[]>();
  const script = holdingScript(held);
  const back = new Node(2, 'c', script);
  const { sup, nodes, notes, commits, started } = await elasticJob(
    ['nodes: [{host: a}, {host: b}, {host: c}]', 'elastic: {min_nodes: 2, rejoin: 30ms}'],
    script,
    [back],
  );
  back.sup = sup;
  const run = sup.run();
  await until(() => held.has(0));
  nodes[2].cut = true;
  sup.nodeLost(2, 'no heartbeat for 5s');
  await until(() => notes.length === 2);
  t.same(started, [2], 'the lost node is tried again');
  t.equal(notes[1], 'dtrain: node 2 (host c) is back: the job grows at its next checkpoint commit');
  const answer = await commitStep(commits, 1, 20, 4);
  t.match(answer, { kind: 'committed', resize: true }, 'the commit tells the ranks to resize');
  for (const { node, ranks } of held.get(1)!) for (const r of ranks) node.exit(1, r, RESIZE_EXIT_CODE);
  const { outcome, summary } = await run;
  t.same(outcome, { kind: 'ok' });
  t.equal(notes[2], 'dtrain: node 2 (host c) rejoined; continuing on 3 nodes, world 6 (data 6), attempt 2');
  t.match(summary.membership, [
    { attempt: 1, world: 4 },
    { attempt: 2, nodes: 3, world: 6, reason: 'node 2 (host c) rejoined' },
  ]);
  t.match(back.starts, [{ attempt: 2, launch: { restarts: 0, prev_world_size: 4, assignment: { node_rank: 2 } } }]);
  t.equal(summary.root_cause, null);
});

t.test('exit 75 with no resize asked for is a failure', async (t) => {
  const held = new Map<number, { node: Node; ranks: number[] }[]>();
  const { sup } = await elasticJob(['nodes: [{host: a}, {host: b}]', 'elastic: {min_nodes: 1}'], holdingScript(held));
  const run = sup.run();
  await until(() => held.get(0)?.length === 2);
  const { node, ranks } = held.get(0)![0];
  node.exit(0, ranks[0], RESIZE_EXIT_CODE);
  const { outcome, summary } = await run;
  t.same(outcome, { kind: 'failed' });
  t.match(summary.root_cause, { rank: ranks[0], exit_code: RESIZE_EXIT_CODE });
});

t.test('a flapping node is excluded after max_losses_per_node and not tried again', async (t) => {
  const held = new Map<number, { node: Node; ranks: number[] }[]>();
  const script = holdingScript(held);
  const again = new Node(2, 'c', script);
  const { sup, nodes, notes, started, commits } = await elasticJob(
    ['nodes: [{host: a}, {host: b}, {host: c}]', 'elastic: {min_nodes: 2, rejoin: 20ms, max_losses_per_node: 2}'],
    script,
    [again],
  );
  again.sup = sup;
  const run = sup.run();
  await until(() => held.has(0));
  nodes[2].cut = true;
  sup.nodeLost(2, 'no heartbeat for 5s');
  await until(() => notes.some((l) => l.includes('is back')));
  t.same(started, [2], 'tried again once: it answered');
  // lost again before the resize: the second loss excludes it, and the resize is off
  sup.nodeLost(2, 'connection closed');
  t.equal(
    notes.at(-1),
    'dtrain: node 2 (host c) excluded for the rest of the job: lost 2 times (elastic.max_losses_per_node)',
  );
  await new Promise((r) => setTimeout(r, 150));
  t.same(started, [2], 'never tried again');
  t.match(await commitStep(commits, 1, 20, 4), { kind: 'committed', resize: false }, 'no resize at the commit');
  for (const { node, ranks } of held.get(1)!) for (const r of ranks) node.exit(1, r, 0);
  t.same((await run).outcome, { kind: 'ok' });
  t.same(again.starts, [], 'never taken in');
});

t.test("workers that do not use the runtime: the resize comes when checkpoint.dir's latest changes", async (t) => {
  const held = new Map<number, { node: Node; ranks: number[] }[]>();
  const script = holdingScript(held);
  const back = new Node(2, 'c', script);
  const ckpt = mkdtempSync(join(tmp, 'ckpt-'));
  const { sup, nodes, notes } = await elasticJob(
    [
      'nodes: [{host: a}, {host: b}, {host: c}]',
      'elastic: {min_nodes: 2, rejoin: 30ms}',
      `checkpoint: {dir: ${JSON.stringify(ckpt)}}`,
    ],
    script,
    [back],
    50,
  );
  back.sup = sup;
  // the watcher's timers do not hold a process (the controller's sockets do): this test holds it
  const hold = setInterval(() => {}, 1000);
  t.teardown(() => clearInterval(hold));
  const run = sup.run();
  await until(() => held.has(0));
  nodes[2].cut = true;
  sup.nodeLost(2, 'no heartbeat for 5s');
  await until(() => notes.some((l) => l.includes('is back')));
  await new Promise((r) => setTimeout(r, 100));
  t.equal(back.starts.length, 0, 'nothing happens before a checkpoint');
  writeFileSync(join(ckpt, 'latest'), 'global_step20');
  const { outcome, summary } = await run;
  t.same(outcome, { kind: 'ok' }, 'the stopped attempt is the resize, not a failure');
  t.match(summary.membership, [{ attempt: 1 }, { attempt: 2, world: 6, reason: 'node 2 (host c) rejoined' }]);
  t.match(back.starts, [{ attempt: 2 }]);
});

t.test('a loss noticed at once (a process exit, a closed connection) was detected after 0 s', async (t) => {
  const { sup, nodes } = await elasticJob(
    ['nodes: [{host: a}, {host: b}, {host: c}]', 'elastic: {min_nodes: 2}'],
    allExit,
  );
  const run = sup.run();
  await new Promise((r) => setTimeout(r, 20));
  nodes[2].cut = true;
  sup.nodeLost(2, 'srun step ended (exit code 137)');
  t.match((await run).summary.membership, [{ attempt: 1, detected_after_s: 0 }]);
});

t.test('a listed node that could not start: the first attempt runs without it, or cannot start (exit 3)', async (t) => {
  const down = [{ id: 2, why: 'could not start: c: connection refused' }];
  const ok = await elasticJob(
    ['nodes: [{host: a}, {host: b}, {host: c}]', 'elastic: {min_nodes: 2}'],
    allExit,
    [],
    undefined,
    [],
    down,
  );
  const run = ok.sup.run();
  await new Promise((r) => setTimeout(r, 20));
  for (const n of ok.nodes)
    for (const s of n.starts) for (const r of s.launch?.assignment?.ranks ?? []) n.exit(0, r.rank, 0);
  const { outcome, summary } = await run;
  t.same(outcome, { kind: 'ok' });
  t.same(ok.notes, [
    'dtrain: node 2 (host c) lost: could not start: c: connection refused; ' +
      'continuing on 2 nodes, world 4 (data 4), attempt 0',
  ]);
  t.match(summary.membership, [{ attempt: 0, nodes: 2, world: 4, detected_after_s: 0 }]);

  const no = await elasticJob(
    ['nodes: [{host: a}, {host: b}, {host: c}]', 'elastic: {min_nodes: 3}'],
    allExit,
    [],
    undefined,
    [],
    down,
  );
  const failed = await no.sup.run();
  t.match(failed.outcome, {
    kind: 'cannot-start',
    message:
      'cannot continue: 2 nodes alive, fewer than elastic.min_nodes (3) ' +
      '(node 2 (host c) lost: could not start: c: connection refused)',
  });
  t.ok(
    no.nodes.every((n) => n.closed),
    'the nodes that started are let go',
  );
});

t.test("join mode: an absent node's agent comes and is taken in at the next commit as a rejoin is", async (t) => {
  const held: { node: Node; ranks: number[] }[] = [];
  // attempt 0 holds until the resize; later attempts finish
  const script: Script = (node, k, ranks) => (k === 0 ? held.push({ node, ranks }) : allExit(node, k, ranks));
  const late = new Node(2, 'c', script);
  const { sup, notes, commits, started, membership } = await elasticJob(
    ['nodes: [{host: a}, {host: b}, {host: c}]', 'elastic: {min_nodes: 2, rejoin: 20ms}'],
    script,
    [late],
    undefined,
    [2],
  );
  late.sup = sup;
  const run = sup.run();
  await until(() => held.length === 2);
  await new Promise((r) => setTimeout(r, 100));
  t.same(started, [], 'an absent node is never started before its agent comes');
  t.equal(membership.arrived(0), 'node 0 (host a) already runs on an agent');
  t.equal(membership.arrived(2), undefined);
  await until(() => notes.length === 1);
  t.same(started, [2]);
  t.same(notes, ['dtrain: node 2 (host c) joined: the job grows at its next checkpoint commit']);
  t.match(await commitStep(commits, 0, 10, 4), { kind: 'committed', resize: true });
  for (const { node, ranks } of held) for (const r of ranks) node.exit(0, r, RESIZE_EXIT_CODE);
  const { outcome, summary } = await run;
  t.same(outcome, { kind: 'ok' });
  t.equal(notes[1], 'dtrain: node 2 (host c) joined; continuing on 3 nodes, world 6 (data 6), attempt 1');
  t.match(summary.membership, [{ attempt: 1, nodes: 3, world: 6, reason: 'node 2 (host c) joined' }]);
  t.match(late.starts, [{ attempt: 1, launch: { restarts: 0, prev_world_size: 4, assignment: { node_rank: 2 } } }]);
});

t.test(
  'join mode: an agent that comes when the job cannot grow waits as a spare and replaces a lost node',
  async (t) => {
    const spare = new Node(2, 's', allExit);
    const { sup, nodes, notes, started, membership } = await elasticJob(
      ['nodes: [{host: a}, {host: b}, {host: s, spare: true}]', 'elastic: {min_nodes: 2, rejoin: 20ms}'],
      (node, k, ranks) => k > 0 && allExit(node, k, ranks),
      [spare],
      undefined,
      [2],
    );
    const run = sup.run();
    await new Promise((r) => setTimeout(r, 50));
    t.equal(membership.arrived(2), undefined);
    t.same(notes, ['dtrain: node 2 (host s) joined: it waits as a spare (the job cannot grow onto it now)']);
    await new Promise((r) => setTimeout(r, 100));
    t.same(started, [], 'not started while the job runs at full strength');
    nodes[0].cut = true;
    sup.nodeLost(0, 'connection closed');
    t.same((await run).outcome, { kind: 'ok' });
    t.same(started, [2]);
    t.equal(
      notes[1],
      'dtrain: node 0 (host a) lost: connection closed; continuing on 2 nodes, world 4 (data 4), attempt 1',
    );
  },
);
