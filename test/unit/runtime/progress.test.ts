// The collective timing behind dist.report's wait_s and per-op totals: an op that completed inline comes back
// as the very promise the group returned (the optimizer and gradient reduction tell inline completions by it),
// an op in flight is timed when it settles, and a failing op is counted and reaches the caller as a rejection.
import t from 'tap';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { completedInline } from '../../../src/runtime/native.js';
import { progressReporter, timeCollectives } from '../../../src/runtime/progress.js';
import type { Group } from '../../../src/runtime/types.js';

type Totals = Record<string, { count: number; seconds: number }>;

/** A group whose ops do what `behave` says; only what timeCollectives touches is real. */
function fakeGroup(behave: (op: string, args: unknown[]) => Promise<void>): Group {
  const ops = ['allReduce', 'reduceScatter', 'allGather', 'broadcast', 'send', 'recv', 'barrier'];
  const g: Record<string, unknown> = { name: 'world', size: 2, rank: 0, ranks: [0, 1] };
  for (const op of ops) g[op] = (...args: unknown[]) => behave(op, args);
  return g as unknown as Group;
}

const dir = mkdtempSync(join(tmpdir(), 'dtrain-progress-'));
t.teardown(() => rmSync(dir, { recursive: true, force: true }));
let reporters = 0;
/** A reporter of its own: each call writes a report and returns what it carried (wait_s: since the last). */
function reporter(): () => { wait_s: number; collectives: Totals } {
  const file = join(dir, `p${reporters++}.jsonl`);
  const report = progressReporter(file, () => []);
  let lines = 0;
  return () => {
    report({ step: lines });
    const line = readFileSync(file, 'utf8').trim().split('\n')[lines++];
    const r = JSON.parse(line) as { wait_s: number; collectives?: Totals };
    return { wait_s: r.wait_s, collectives: r.collectives ?? {} };
  };
}
const report = () => reporter()();

t.test('an op that completed inline: the same settled promise back, counted', async (t) => {
  const seen: unknown[][] = [];
  const g = timeCollectives(
    fakeGroup((_op, args) => {
      seen.push(args);
      return completedInline;
    }),
  );
  const input = new Float32Array(4);
  const output = new Float32Array(8);
  const before = report().collectives;
  t.equal(g.allReduce(input, { op: 'sum' }), completedInline, 'not wrapped in a promise of its own');
  t.equal(g.allGather(input, output), completedInline);
  await g.allReduce(input);
  t.same(seen[0], [input, { op: 'sum' }, undefined]);
  t.equal(seen[1][0], input);
  t.equal(seen[1][1], output, 'input and output both reach the group');
  const after = report().collectives;
  t.equal(after.allReduce.count - (before.allReduce?.count ?? 0), 2);
  t.equal(after.allGather.count - (before.allGather?.count ?? 0), 1);
});

t.test('an op in flight is timed when it settles, and its time is waiting', async (t) => {
  const g = timeCollectives(fakeGroup(() => sleep(30).then(() => undefined)));
  const since = reporter();
  since();
  const before = report().collectives.broadcast ?? { count: 0, seconds: 0 };
  const pending = g.broadcast(new Float32Array(4), { root: 0 });
  t.not(pending, completedInline);
  await pending;
  const after = report().collectives.broadcast; // a reporter's first report carries the totals
  t.equal(after.count - before.count, 1);
  t.ok(after.seconds - before.seconds >= 0.025, 'the 30 ms the op took');
  t.ok(since().wait_s >= 0.025, 'wait_s since the previous report holds it');
});

/** Keeps the main thread busy for `ms`, as a rank computing while its ops are in flight. */
function compute(ms: number): void {
  const end = performance.now() + ms;
  while (performance.now() < end);
}

t.test('compute while an op is in flight is not waiting; the idle time after it is', async (t) => {
  const g = timeCollectives(fakeGroup(() => sleep(40).then(() => undefined)));
  const since = reporter();
  since();
  const pending = g.allReduce(new Float32Array(4));
  compute(60); // the op completes meanwhile, as a bucket's all-reduce during the backward
  await pending;
  const overlapped = since().wait_s;
  t.ok(overlapped < 0.02, `wait_s ${overlapped}: the 60 ms of compute are not waiting`);
  const late = g.allReduce(new Float32Array(4));
  compute(10);
  const idleFrom = performance.now();
  await late; // ~30 ms more with nothing to do
  const idle = (performance.now() - idleFrom) / 1000;
  const waited = since().wait_s;
  t.ok(waited >= 0.015 && waited <= idle + 0.002, `wait_s ${waited}: the ${idle} s idle end of the op, not all of it`);
});

t.test('ops in flight together are waited on once, never more than the time that passed', async (t) => {
  const g = timeCollectives(fakeGroup(() => sleep(30).then(() => undefined)));
  const since = reporter();
  since();
  const t0 = performance.now();
  await Promise.all([0, 1, 2, 3].map(() => g.allReduce(new Float32Array(4))));
  const wall = (performance.now() - t0) / 1000;
  const waited = since().wait_s;
  t.ok(waited >= 0.025 && waited <= wall + 0.001, `wait_s ${waited} within the ${wall} s that passed`);
});

t.test('a report while an op is in flight carries the wait so far, the next one the rest', async (t) => {
  const g = timeCollectives(fakeGroup(() => sleep(60).then(() => undefined)));
  const since = reporter();
  since();
  const t0 = performance.now();
  const pending = g.broadcast(new Float32Array(4), { root: 0 });
  await sleep(30);
  const first = since().wait_s;
  const t1 = performance.now();
  await pending;
  const second = since().wait_s;
  const t2 = performance.now();
  t.ok(first >= 0.02 && first <= (t1 - t0) / 1000 + 0.002, `first ${first} of ${(t1 - t0) / 1000} s`);
  t.ok(second >= 0.01 && second <= (t2 - t1) / 1000 + 0.002, `second ${second} of ${(t2 - t1) / 1000} s`);
});

t.test('a failing op is counted and rejects, whether it threw or rejected', async (t) => {
  const g = timeCollectives(
    fakeGroup((op) => {
      if (op === 'send') throw new Error('bad peer');
      return Promise.reject(new Error('peer died'));
    }),
  );
  const before = report().collectives;
  let threw = false;
  let sent: Promise<void> | undefined;
  try {
    sent = g.send(new Float32Array(4), { peer: 1 });
  } catch {
    threw = true;
  }
  t.equal(threw, false, 'no synchronous throw: the caller sees a rejection');
  await t.rejects(sent!, { message: 'bad peer' });
  await t.rejects(g.recv(new Float32Array(4), { peer: 1 }), { message: 'peer died' });
  const after = report().collectives;
  t.equal(after.send.count - (before.send?.count ?? 0), 1);
  t.equal(after.recv.count - (before.recv?.count ?? 0), 1);
});
