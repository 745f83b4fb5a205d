// Supervision decisions against scripted nodes: who is stopped when, restarts, interrupts, lost nodes.
import t from 'tap';
import type { AgentEvent } from '../../../src/launch/agent-contract.js';
import { Supervisor, type NodeHandle, type SupervisorOptions } from '../../../src/launch/supervisor.js';

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

function supervise(nodes: ScriptedNode[], restartsMax = 0, extra: Partial<SupervisorOptions> = {}) {
  const sup = new Supervisor({
    runId: 'r',
    worldSize: nodes.reduce((n, x) => n + x.ranks.length, 0),
    restartsMax,
    backoffMs: 1,
    shutdownGraceMs: 10,
    logDir: '/l',
    nodes,
    ranksPerNode: nodes.map((n) => n.ranks.length),
    ...extra,
  });
  for (const n of nodes) n.sup = sup;
  return sup;
}

/** Starts the supervisor's run and lets its first attempt begin (5 ms); `done` is the run's outcome. */
async function begin(sup: Supervisor): Promise<{ done: ReturnType<Supervisor['run']> }> {
  const done = sup.run();
  await new Promise((r) => setTimeout(r, 5));
  return { done };
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
  const { done: run } = await begin(sup);
  sup.signal('SIGTERM');
  const { outcome, summary } = await run;
  t.same(outcome, { kind: 'interrupted', signal: 'SIGTERM' });
  t.equal(summary.exit_code, 143);
  t.equal(summary.attempts.length, 1);
});

/** A node whose ranks take 30 ms to go when stopped: a signal can come while the job is stopping. */
class SlowStopNode extends ScriptedNode {
  override stop(attempt: number, signal: string) {
    this.calls.push(`stop ${attempt} ${signal}`);
    setTimeout(() => {
      for (const r of this.ranks) this.exit(attempt, r, null, signal);
    }, 30);
  }
}

t.test(
  'SIGTERM while the job is already stopping for a failure, no restart left: it ends failed, exit 1',
  async (t) => {
    const a = new SlowStopNode(0, 'a', [0, 1], (n, k) => n.exit(k, 1, 7));
    const sup = supervise([a]);
    const { done: run } = await begin(sup);
    sup.signal('SIGTERM');
    const { outcome, summary } = await run;
    t.same(outcome, { kind: 'failed' }, 'the failure, not the signal, is the outcome');
    t.equal(summary.exit_code, 1);
    t.match(summary.root_cause, { rank: 1, exit_code: 7 });
  },
);

t.test('SIGTERM while stopping for a failure that would be restarted: interrupted, exit 143', async (t) => {
  const a = new SlowStopNode(0, 'a', [0, 1], (n, k) => n.exit(k, 1, 7));
  const sup = supervise([a], 2);
  const { done: run } = await begin(sup);
  sup.signal('SIGTERM');
  const { outcome, summary } = await run;
  t.same(outcome, { kind: 'interrupted', signal: 'SIGTERM' });
  t.equal(summary.exit_code, 143);
  t.equal(summary.attempts.length, 1, 'no restart');
});

t.test('USR1 is forwarded to every node', async (t) => {
  const a = new ScriptedNode(0, 'a', [0], () => {});
  const sup = supervise([a]);
  const { done: run } = await begin(sup);
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
  const { done: run } = await begin(sup);
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

/** The scheduler's warning as SIGUSR1, workers asked with SIGUSR2; `commit` resolves the next commit's step. */
function warned(nodes: ScriptedNode[], commit: Promise<number> | undefined, grace = 50, restarts = 3) {
  const lines: string[] = [];
  const sup = supervise(nodes, restarts, {
    shutdownGraceMs: grace,
    warning: {
      signal: 'SIGUSR1',
      checkpointSignal: 'SIGUSR2',
      ...(commit && { nextCommit: () => commit }),
      onState: (l) => lines.push(l),
    },
  });
  return { sup, lines };
}

t.test('the warning: checkpoint signal to every node, a commit stops the job without restart: exit 0', async (t) => {
  const a = new ScriptedNode(0, 'a', [0], () => {});
  const b = new ScriptedNode(1, 'b', [1], () => {});
  let commit!: (step: number) => void;
  const { sup, lines } = warned([a, b], new Promise((r) => (commit = r)), 5000);
  const { done: run } = await begin(sup);
  sup.signal('SIGUSR1');
  t.same(a.calls, ['start 0', 'forward SIGUSR2'], 'asked to save, not stopped yet');
  t.same(b.calls, ['start 0', 'forward SIGUSR2']);
  commit(40);
  const { outcome, summary } = await run;
  t.same(outcome, { kind: 'ok' }, 'workers stopped by SIGTERM after the save are not a failure');
  t.equal(summary.exit_code, 0);
  t.equal(summary.attempts.length, 1, 'no restart');
  t.ok(a.calls.includes('stop 0 SIGTERM') && b.calls.includes('stop 0 SIGTERM'));
  t.match(summary.preemption, {
    signal: 'SIGUSR1',
    checkpoint_signal: 'SIGUSR2',
    saved: true,
    saved_step: 40,
    saved_by: 'commit',
    stopped_at: /^\d{4}-/,
  });
  t.match(
    lines.join('\n'),
    /^warned: SIGUSR1.*\nsaving: SIGUSR2 sent to every worker; waiting up to 5s.*\nsaved: step 40 /,
  );
});

t.test('the warning: every worker leaving with 0 after the signal counts as saved', async (t) => {
  const a = new ScriptedNode(0, 'a', [0, 1], () => {});
  const { sup, lines } = warned([a], undefined, 5000);
  const { done: run } = await begin(sup);
  sup.signal('SIGUSR1');
  a.exit(0, 0, 0);
  a.exit(0, 1, 0);
  const { outcome, summary } = await run;
  t.same(outcome, { kind: 'ok' });
  t.notOk(a.calls.includes('stop 0 SIGTERM'), 'nothing left to stop');
  t.match(summary.preemption, { saved: true, saved_step: null, saved_by: 'workers-exited' });
  t.match(lines.at(-1), /^saved: every worker exited cleanly/);
});

t.test('the warning: no save within shutdown_grace stops the job, exit 1 naming the warning', async (t) => {
  const a = new ScriptedNode(0, 'a', [0], () => {});
  const { sup, lines } = warned([a], new Promise(() => {}), 30);
  const { done: run } = await begin(sup);
  sup.signal('SIGUSR1');
  const { outcome, summary } = await run;
  t.same(outcome, { kind: 'failed' });
  t.equal(summary.exit_code, 1);
  t.equal(summary.attempts.length, 1, 'no restart although restarts remain');
  t.match(summary.root_cause, { message: /scheduler's warning \(SIGUSR1\) came and no checkpoint was saved/ });
  t.match(summary.preemption, { saved: false, saved_by: null, stopped_at: /^\d{4}-/ });
  t.match(lines.at(-1), /^not saved: no checkpoint within shutdown_grace/);
});

t.test(
  'the warning: a worker failing while it saves is the root cause; SIGTERM after it still interrupts',
  async (t) => {
    const a = new ScriptedNode(0, 'a', [0, 1], () => {});
    const { sup } = warned([a], new Promise(() => {}), 5000);
    const { done: run } = await begin(sup);
    sup.signal('SIGUSR1');
    a.exit(0, 1, 7);
    const { outcome, summary } = await run;
    t.same(outcome, { kind: 'failed' });
    t.match(summary.root_cause, { rank: 1, exit_code: 7 });
    t.equal(summary.attempts.length, 1);

    const b = new ScriptedNode(0, 'b', [0], () => {});
    const w2 = warned([b], new Promise(() => {}), 5000);
    const run2 = w2.sup.run();
    await new Promise((r) => setTimeout(r, 5));
    w2.sup.signal('SIGUSR1');
    w2.sup.signal('SIGTERM');
    t.same((await run2).outcome, { kind: 'interrupted', signal: 'SIGTERM' });
  },
);

t.test('the warning: a commit the workers made just before they all left is found by a last look', async (t) => {
  const a = new ScriptedNode(0, 'a', [0], () => {});
  const lines: string[] = [];
  const sup = supervise([a], 0, {
    shutdownGraceMs: 5000,
    warning: {
      signal: 'SIGUSR1',
      checkpointSignal: 'SIGUSR1',
      // the watcher's last read after the abort: the commit is there
      nextCommit: (signal) => new Promise((resolve) => signal.addEventListener('abort', () => resolve(12))),
      onState: (l) => lines.push(l),
    },
  });
  const { done: run } = await begin(sup);
  sup.signal('SIGUSR1');
  a.exit(0, 0, 0);
  const { outcome, summary } = await run;
  t.same(outcome, { kind: 'ok' });
  t.match(summary.preemption, { saved: true, saved_step: 12, saved_by: 'commit' });
  t.match(lines.at(-1), /^saved: step 12 committed/);
});
