// Supervision decisions against scripted nodes: who is stopped when, restarts, interrupts, lost nodes.
import t from 'tap';
import type { AgentEvent } from '../../../src/launch/agent-contract.js';
import { Supervisor, type NodeHandle } from '../../../src/launch/supervisor.js';

type Script = (node: ScriptedNode, attempt: number) => void;

class ScriptedNode implements NodeHandle {
  readonly calls: string[] = [];
  sup!: Supervisor;
  constructor(
    readonly nodeRank: number,
    readonly host: string,
    readonly ranks: number[],
    private readonly script: Script,
  ) {}
  start(attempt: number) {
    this.calls.push(`start ${attempt}`);
    queueMicrotask(() => {
      this.emit({
        type: 'started',
        node_rank: this.nodeRank,
        attempt,
        master_port: 1,
        workers: this.ranks.map((rank) => ({ rank, local_rank: rank, pid: 100 + rank })),
      });
      this.script(this, attempt);
    });
  }
  stop(attempt: number, signal: string) {
    this.calls.push(`stop ${attempt} ${signal}`);
    queueMicrotask(() => {
      for (const r of this.ranks) this.exit(attempt, r, null, signal);
    });
  }
  kill(attempt: number) {
    this.calls.push(`kill ${attempt}`);
  }
  forward(signal: string) {
    this.calls.push(`forward ${signal}`);
  }
  async close() {
    this.calls.push('close');
  }
  private readonly exited = new Set<string>();
  exit(attempt: number, rank: number, code: number | null, signal: string | null = null) {
    if (this.exited.has(`${attempt}/${rank}`)) return;
    this.exited.add(`${attempt}/${rank}`);
    this.emit({
      type: 'exit',
      node_rank: this.nodeRank,
      attempt,
      rank,
      local_rank: rank,
      host: this.host,
      pid: 100 + rank,
      exit_code: code,
      signal,
      time: 't',
      stderr_tail: [],
      error_file: null,
    });
  }
  emit(ev: AgentEvent) {
    this.sup.onEvent(ev);
  }
}

function supervise(nodes: ScriptedNode[], restartsMax = 0) {
  const sup = new Supervisor({
    runId: 'r',
    worldSize: nodes.reduce((n, x) => n + x.ranks.length, 0),
    restartsMax,
    backoffMs: 1,
    shutdownGraceMs: 10,
    logDir: '/l',
    nodes,
    ranksPerNode: nodes.map((n) => n.ranks.length),
  });
  for (const n of nodes) n.sup = sup;
  return sup;
}

t.test('all exit 0: ok, nobody stopped', async (t) => {
  const a = new ScriptedNode(0, 'a', [0, 1], (n, k) => {
    n.exit(k, 0, 0);
    n.exit(k, 1, 0);
  });
  const { outcome, summary } = await supervise([a]).run();
  t.same(outcome, { kind: 'ok' });
  t.equal(summary.exit_code, 0);
  t.same(a.calls, ['start 0', 'close']);
});

t.test('first failure stops every node; the root cause is that rank', async (t) => {
  const a = new ScriptedNode(0, 'a', [0, 1], () => {});
  const b = new ScriptedNode(1, 'b', [2, 3], (n, k) => n.exit(k, 3, 5));
  const { outcome, summary } = await supervise([a, b]).run();
  t.same(outcome, { kind: 'failed' });
  t.match(summary.root_cause, { rank: 3, host: 'b', exit_code: 5 });
  t.ok(a.calls.includes('stop 0 SIGTERM') && b.calls.includes('stop 0 SIGTERM'));
  t.same(
    summary.other_failures.map((o) => o.rank),
    [0, 1, 2],
  );
});

t.test('restarts until an attempt succeeds', async (t) => {
  const a = new ScriptedNode(0, 'a', [0], (n, k) => n.exit(k, 0, k < 2 ? 1 : 0));
  const { outcome, summary } = await supervise([a], 3).run();
  t.same(outcome, { kind: 'ok' });
  t.equal(summary.attempts.length, 3);
  t.same(
    a.calls.filter((c) => c.startsWith('start')),
    ['start 0', 'start 1', 'start 2'],
  );
});

t.test('SIGTERM: stop with SIGTERM, no restart, exit 143', async (t) => {
  const a = new ScriptedNode(0, 'a', [0], () => {});
  const sup = supervise([a], 5);
  const run = sup.run();
  await new Promise((r) => setTimeout(r, 5));
  sup.signal('SIGTERM');
  const { outcome, summary } = await run;
  t.same(outcome, { kind: 'interrupted', signal: 'SIGTERM' });
  t.equal(summary.exit_code, 143);
  t.equal(summary.attempts.length, 1);
});

t.test('USR1 is forwarded to every node', async (t) => {
  const a = new ScriptedNode(0, 'a', [0], () => {});
  const sup = supervise([a]);
  const run = sup.run();
  await new Promise((r) => setTimeout(r, 5));
  sup.signal('SIGUSR1');
  t.ok(a.calls.includes('forward SIGUSR1'));
  a.exit(0, 0, 0);
  t.same((await run).outcome, { kind: 'ok' });
});

t.test('a lost node fails the job even though its ranks never report', async (t) => {
  const a = new ScriptedNode(0, 'a', [0], () => {});
  const b = new ScriptedNode(1, 'b', [1], () => {});
  b.stop = (attempt) => {
    b.calls.push(`stop ${attempt}`);
  };
  const sup = supervise([a, b]);
  const run = sup.run();
  await new Promise((r) => setTimeout(r, 5));
  sup.nodeLost(1, 'no heartbeat for 30s');
  const { outcome, summary } = await run;
  t.same(outcome, { kind: 'failed' });
  t.match(summary.root_cause, { host: 'b', message: 'node lost: no heartbeat for 30s' });
});

t.test('a node lost before the first attempt (slow start-up) fails attempt 0 as soon as it starts', async (t) => {
  const a = new ScriptedNode(0, 'a', [0], () => {});
  const b = new ScriptedNode(1, 'b', [1], () => {});
  const sup = supervise([a, b]);
  sup.nodeLost(1, 'connection reset');
  const { outcome, summary } = await sup.run();
  t.same(outcome, { kind: 'failed' });
  t.match(summary.root_cause, { host: 'b', message: 'node lost: connection reset', attempt: 0 });
  t.ok(a.calls.includes('stop 0 SIGTERM'), 'the other node is stopped');
});

t.test('an agent error from before the first attempt counts in attempt 0', async (t) => {
  const a = new ScriptedNode(0, 'a', [0], (n, k) => n.exit(k, 0, 0));
  const sup = supervise([a]);
  sup.onEvent({ type: 'error', node_rank: 0, attempt: 0, message: 'agent could not create its log folder' });
  const { summary } = await sup.run();
  t.match(summary.root_cause, { message: 'agent could not create its log folder' });
});
