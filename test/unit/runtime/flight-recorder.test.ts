import t from 'tap';
import { mkdtempSync, rmSync, writeFileSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  createFlightRecorderFile,
  diagnoseHang,
  formatRanks,
  hangFindings,
  parseFlightRecorder,
  ranksNamedByDiagnosis,
  readFlightRecorder,
  type RankSnapshot,
} from '../../../src/runtime/flight-recorder.js';
import { completed, IMAGE, recorderImage, type ImageGroup } from '../../helpers/flight-recorder-image.js';

const at = (ms: number) => IMAGE.realAnchorMs + ms;
const record = (rank: number, groups: ImageGroup[], nowMs: number) => {
  const img = recorderImage(rank, groups);
  return parseFlightRecorder(img, img, at(nowMs));
};
const world = (entries: ImageGroup['entries'], lastSeq = Math.max(0, ...entries.map((e) => e.seq))): ImageGroup => ({
  name: 'world',
  members: '0-2',
  size: 3,
  groupRank: 0,
  lastSeq,
  entries,
});

t.test('the reader returns every readable entry with epoch times, and skips torn ones', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'dtrain-fr-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const path = join(dir, 'r0.bin');
  const entries = [...completed(2), { seq: 3, op: 4, state: 2, startedMs: 10, root: 1, dtype: 1 }];
  entries.push({ seq: 4, op: 1, state: 1, enqueuedMs: 11, torn: true });
  writeFileSync(path, recorderImage(5, [{ ...world(entries), members: '0-3,8,10' }]));
  const rec = readFlightRecorder(path, at(100))!;
  t.equal(rec.rank, 5);
  t.equal(rec.pid, 4242);
  t.equal(rec.groups.length, 1);
  const g = rec.groups[0];
  t.same(g.members, [0, 1, 2, 3, 8, 10]);
  t.equal(g.lastSeq, 4);
  t.same(
    g.entries.map((e) => [e.seq, e.op, e.state]),
    [
      [1, 'allReduce', 'completed'],
      [2, 'allReduce', 'completed'],
      [3, 'broadcast', 'started'],
    ],
    'the torn entry (odd version) is left out',
  );
  const b = g.entries[2];
  t.equal(b.dtype, 'float64');
  t.equal(b.root, 1);
  t.equal(b.startedAtMs, at(10));
  t.equal(b.endedAtMs, undefined);
  t.equal(g.entries[0].endedAtMs, at(1.5));
});

t.test('an entry that changes between two reads is skipped', async (t) => {
  const one = recorderImage(0, [world(completed(3))]);
  const two = Buffer.from(one);
  two[64 + 384 + 2 * 64 + 4] = 2; // seq 3 read as started the second time
  const rec = parseFlightRecorder(one, two, at(0));
  t.same(
    rec.groups[0].entries.map((e) => e.seq),
    [1, 2],
  );
});

t.test('missing, empty and foreign files', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'dtrain-fr-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  t.equal(readFlightRecorder(join(dir, 'none')), undefined, 'missing: undefined');
  const empty = createFlightRecorderFile(dir, 0, 3);
  t.equal(statSync(empty).mode & 0o777, 0o600, 'created 0600');
  t.equal(readFlightRecorder(empty), undefined, 'never initialised: undefined');
  const foreign = join(dir, 'foreign');
  writeFileSync(foreign, Buffer.alloc(200, 1));
  t.throws(() => readFlightRecorder(foreign), /not a dtrain flight recorder/);
  const future = recorderImage(0, []);
  future.writeUInt32LE(2, 4);
  writeFileSync(foreign, future);
  t.throws(() => readFlightRecorder(foreign), /version 2, this dtrain reads 1/);
  writeFileSync(foreign, recorderImage(0, []).subarray(0, 1000));
  t.throws(() => readFlightRecorder(foreign), /truncated/);
});

t.test('a wrapped ring keeps the last 256 and groups past capacity are counted', async (t) => {
  const entries = Array.from({ length: 256 }, (_, i) => ({ seq: 45 + i, op: 1, state: 3, endedMs: 2 }));
  const img = recorderImage(0, [world(entries)], 6);
  const rec = parseFlightRecorder(img, img, at(0));
  t.equal(rec.groups[0].entries.length, 256);
  t.equal(rec.groups[0].entries[0].seq, 45);
  t.equal(rec.groups[0].entries[255].seq, 300);
  t.equal(rec.groups.length, IMAGE.capacity);
  t.equal(rec.groupsDropped, 2);
});

t.test('a rank that never entered the op the others wait in is named, with how long they waited', async (t) => {
  const waiting = [...completed(2), { seq: 3, op: 1, state: 2, startedMs: 10 }];
  const snaps: RankSnapshot[] = [
    { rank: 0, recorder: record(0, [world(waiting)], 5010) },
    { rank: 1, recorder: record(1, [world(completed(2))], 5010) },
    { rank: 2, recorder: record(2, [world(waiting)], 5030) },
  ];
  t.same(diagnoseHang(snaps), [
    'dtrain: hang: rank 1 never entered allReduce seq 3 of group world (ranks 0, 2 waiting 5.0s)',
  ]);
  t.same(ranksNamedByDiagnosis(snaps), [1]);
});

t.test('after a collective_timeout the failed op still counts as waiting, for as long as it waited', async (t) => {
  const timedOut = [...completed(2), { seq: 3, op: 1, state: 2, failed: true, startedMs: 10, endedMs: 5010 }];
  const snaps: RankSnapshot[] = [
    { rank: 0, recorder: record(0, [world(timedOut)], 60_000) },
    { rank: 1, recorder: record(1, [world(completed(2))], 60_000) },
    { rank: 2, recorder: record(2, [world(timedOut)], 60_000) },
  ];
  t.same(diagnoseHang(snaps), [
    'dtrain: hang: rank 1 never entered allReduce seq 3 of group world (ranks 0, 2 waiting 5.0s)',
  ]);
});

t.test('a rank that entered another op at the same seq is a mismatch', async (t) => {
  const data = (op: number, rank: number): ImageGroup => ({
    name: 'data',
    members: '0-2',
    size: 3,
    groupRank: rank,
    lastSeq: 7,
    entries: [...completed(6), { seq: 7, op, state: 2, startedMs: 20 }],
  });
  const snaps: RankSnapshot[] = [0, 1, 2].map((rank) => ({
    rank,
    recorder: record(rank, [data(rank === 2 ? 4 : 1, rank)], 100),
  }));
  t.same(diagnoseHang(snaps), [
    'dtrain: hang: rank 2 entered broadcast seq 7 where ranks 0, 1 entered allReduce seq 7 of group data',
  ]);
  t.same(ranksNamedByDiagnosis(snaps), [2]);
});

t.test('ranks without a recorder are reported as such, never guessed', async (t) => {
  const waiting = [...completed(2), { seq: 3, op: 5, state: 2, startedMs: 0 }];
  const snaps: RankSnapshot[] = [
    { rank: 0, recorder: record(0, [world(waiting)], 2500) },
    { rank: 1 },
    { rank: 2, noRecorderReason: 'its recorder could not be read: EACCES' },
    { rank: 3 },
  ];
  t.same(diagnoseHang(snaps), [
    'dtrain: hang: ranks 1, 3 have no flight recorder (not a dtrain Node worker)',
    'dtrain: hang: rank 2 has no flight recorder (its recorder could not be read: EACCES)',
  ]);
  t.same(ranksNamedByDiagnosis(snaps), [1, 2, 3]);
  t.same(diagnoseHang([{ rank: 0 }, { rank: 1 }]), [
    'dtrain: hang: ranks 0, 1 have no flight recorder (not a dtrain Node worker)',
  ]);
});

t.test('groups of the same name and other members are diagnosed apart; idle groups say nothing', async (t) => {
  const data = (members: string, entries: ImageGroup['entries']): ImageGroup => ({
    name: 'data',
    members,
    size: 2,
    groupRank: 0,
    lastSeq: Math.max(...entries.map((e) => e.seq)),
    entries,
  });
  const stuck = [...completed(4), { seq: 5, op: 3, state: 2, startedMs: 0 }];
  const snaps: RankSnapshot[] = [
    { rank: 0, recorder: record(0, [data('0,2', completed(4))], 1000) },
    { rank: 1, recorder: record(1, [data('1,3', stuck)], 1000) },
    { rank: 2, recorder: record(2, [data('0,2', completed(4))], 1000) },
    { rank: 3, recorder: record(3, [data('1,3', completed(4))], 1000) },
  ];
  const f = hangFindings(snaps);
  t.same(
    f.map((x) => x.line),
    ['dtrain: hang: rank 3 never entered allGather seq 5 of group data (rank 1 waiting 1.0s)'],
  );
  t.same(diagnoseHang(snaps.filter((s) => s.rank % 2 === 0)), [], 'nothing pending: no finding');
});

t.test('rank lists', async (t) => {
  t.equal(formatRanks([0, 2]), '0, 2');
  t.equal(formatRanks([0, 1, 2, 3, 7, 9, 10]), '0-3, 7, 9, 10');
});
