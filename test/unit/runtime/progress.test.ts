// dist.report's wait_s and per-op totals are read from the groups' own timing (each backend times its ops):
// wait_s is every group's op seconds since the previous report, the totals add count and seconds per op over
// the groups and the bytes from their stats rows. Then the CPU backend's real groups in a world of one.
import t from 'tap';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { init } from '../../../src/runtime/init.js';
import { progressReporter, type TimedGroup } from '../../../src/runtime/progress.js';
import type { GroupOpStats, OpTiming } from '../../../src/runtime/types.js';

type Totals = Record<string, { count: number; bytes: number; seconds: number }>;
interface Line {
  step: number;
  wait_s: number;
  collectives?: Totals;
}

const dir = mkdtempSync(join(tmpdir(), 'dtrain-progress-'));
t.teardown(() => rmSync(dir, { recursive: true, force: true }));
let files = 0;
const nextFile = () => join(dir, `p${files++}.jsonl`);
const lines = (file: string): Line[] =>
  readFileSync(file, 'utf8')
    .trim()
    .split('\n')
    .map((l) => JSON.parse(l) as Line);

/** A group whose timing and stats rows are what the test sets. */
function fakeGroup(): TimedGroup & { times: OpTiming[]; rows: GroupOpStats[] } {
  const g = {
    times: [] as OpTiming[],
    rows: [] as GroupOpStats[],
    opTimes: () => g.times.map((x) => ({ ...x })),
    stats: () => g.rows.map((x) => ({ ...x })),
  };
  return g;
}
const row = (op: string, count: number, bytes: number): GroupOpStats => ({
  op,
  transport: 'shm',
  algorithm: 'test',
  count,
  bytes,
});

t.test('wait_s is every group op second since the last report; totals add up per op', async (t) => {
  const a = fakeGroup();
  const b = fakeGroup();
  a.times = [{ op: 'allReduce', count: 2, seconds: 0.5 }];
  const groups: TimedGroup[] = [a, b];
  const file = nextFile();
  const report = progressReporter(file, () => groups);
  // what ran before the reporter existed is not this report's wait
  a.times = [{ op: 'allReduce', count: 3, seconds: 0.75 }];
  a.rows = [row('allReduce', 3, 48)];
  b.times = [
    { op: 'allReduce', count: 1, seconds: 0.125 },
    { op: 'recv', count: 1, seconds: 2 },
  ];
  b.rows = [row('allReduce', 1, 16), row('recv', 1, 8), row('send', 4, 99)];
  report({ step: 1, loss: 0.5 });
  // a group made after the reporter (newGroup) counts from its first op
  const c = fakeGroup();
  groups.push(c);
  c.times = [{ op: 'barrier', count: 1, seconds: 0.0625 }];
  a.times = [{ op: 'allReduce', count: 4, seconds: 1 }];
  report({ step: 2 });
  report({ step: 3 });
  const [one, two, three] = lines(file);
  t.match(one, { step: 1, loss: 0.5 });
  t.equal(one.wait_s, 0.25 + 0.125 + 2, 'both groups, since the reporter was made');
  t.same(
    one.collectives,
    { allReduce: { count: 4, bytes: 64, seconds: 0.875 }, recv: { count: 1, bytes: 8, seconds: 2 } },
    'the first report carries the totals: count and seconds from the timing, bytes from the rows; send never timed',
  );
  t.equal(two.wait_s, 0.25 + 0.0625, 'the later group and the earlier one');
  t.equal(two.collectives, undefined, 'totals at most once a second');
  t.equal(three.wait_s, 0, 'nothing ran since');
});

t.test('no op timed yet: wait_s 0 and no totals; no progress file: nothing read', async (t) => {
  const file = nextFile();
  progressReporter(file, () => [fakeGroup()])({ step: 1 });
  const [line] = lines(file);
  t.equal(line.wait_s, 0);
  t.notOk('collectives' in line);
  let read = 0;
  const report = progressReporter(undefined, () => {
    read++;
    return [];
  });
  report({ step: 1 });
  t.equal(read, 0, 'a worker started by hand pays nothing');
  t.throws(() => progressReporter(nextFile(), () => [])({ step: NaN }), {
    message: 'dist.report: step must be a number',
  });
});

t.test("the CPU backend's groups report their own ops (world of one)", async (t) => {
  const file = nextFile();
  const dist = await init({ DTRAIN_BACKEND: 'cpu', DTRAIN_PROGRESS_FILE: file });
  t.teardown(() => dist.close());
  const small = new Float32Array(4);
  const large = new Float32Array(32 * 1024); // 128 KiB: queued to the progress thread, timed there
  await dist.groups.world.allReduce(small);
  await dist.groups.world.allReduce(small);
  await dist.groups.data.allReduce(large);
  await dist.groups.world.barrier();
  dist.report({ step: 1 });
  const custom = await dist.newGroup([0]);
  await custom.broadcast(small, { root: 0 });
  dist.report({ step: 2 });
  const [one, two] = lines(file);
  t.match(one.collectives, {
    allReduce: { count: 3, bytes: 2 * 16 + large.byteLength },
    barrier: { count: 1, bytes: 0 },
  });
  t.same(Object.keys(one.collectives!).sort(), ['allReduce', 'barrier']);
  const seconds = one.collectives!.allReduce.seconds + one.collectives!.barrier.seconds;
  t.ok(one.collectives!.allReduce.seconds > 0, 'timed');
  t.ok(Math.abs(one.wait_s - seconds) < 1e-9, `wait_s ${one.wait_s} is the ops' seconds ${seconds}`);
  const times = custom as unknown as { opTimes(): OpTiming[] };
  t.match(times.opTimes(), [{ op: 'broadcast', count: 1, seconds: Number }]);
  t.ok(Math.abs(two.wait_s - times.opTimes()[0].seconds) < 1e-9, 'wait_s of step 2 is that broadcast');
});
