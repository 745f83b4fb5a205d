/**
 * The flight recorder on real ranks: `dtrain launch` gives each rank a file in the agent's private folder,
 * the addon records every collective there, and the diagnosis read from the files names the rank that
 * stopped calling collectives (the others failing at collective_timeout) or called another op. A rank
 * SIGKILLed leaves its recorder readable.
 */
import { spawnSync } from 'node:child_process';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import t from 'tap';
import { built, root, runDtrain, tempDir } from '../../helpers/launch.js';
import { diagnoseHang, readFlightRecorder, type RankSnapshot } from '../../../src/runtime/flight-recorder.js';

const skip = !built() && 'run npm run build first';
const fixture = join(root, 'test/fixtures/collectives/flight-hang.mjs');

async function launch(t: { teardown(fn: () => void): void }, mode: string, culprit: number) {
  const dir = tempDir(t, 'flight');
  const file = join(dir, 'job.yaml');
  writeFileSync(
    file,
    [
      `entrypoint: ${JSON.stringify([process.execPath, fixture])}`,
      'nproc_per_node: 3',
      'collective_timeout: 3s',
      'shutdown_grace: 1s',
      `logs: {dir: ${dir}/logs}`,
      `env: {FLIGHT_OUT: ${dir}, FLIGHT_MODE: ${mode}, FLIGHT_CULPRIT: "${culprit}"}`,
    ].join('\n') + '\n',
  );
  const r = await runDtrain(['launch', file], { cwd: dir });
  const snapshots: RankSnapshot[] = [0, 1, 2].map((rank) => ({
    rank,
    recorder: readFlightRecorder(join(dir, `rank_${rank}.bin`)),
  }));
  const info = [0, 1, 2].map((rank) => {
    const p = join(dir, `rank_${rank}.json`);
    return existsSync(p) ? (JSON.parse(readFileSync(p, 'utf8')) as Record<string, unknown>) : {};
  });
  return { r, snapshots, info };
}

t.test(
  'a rank that stops calling collectives is named; the others show the op started, failed',
  { skip },
  async (t) => {
    const { r, snapshots, info } = await launch(t, 'never-entered', 1);
    t.equal(r.code, 1, r.stderr);
    for (const i of info) {
      t.match(i.file, /flight-a0-r\d\.bin$/, 'DTRAIN_FLIGHT_RECORDER names the agent-made file');
      t.equal(i.fileMode, 0o600);
      t.equal(i.dirMode, 0o700, 'in a 0700 folder');
    }
    t.match(info[0].error, /timed out|collective_timeout|3000 ms/, 'rank 0 failed at collective_timeout');
    for (const s of snapshots) {
      const rec = s.recorder!;
      t.equal(rec.rank, s.rank);
      const world = rec.groups.find((g) => g.name === 'world')!;
      t.same(world.members, [0, 1, 2]);
      const [one, two] = world.entries;
      t.match(one, {
        seq: 1,
        op: 'allReduce',
        dtype: 'float32',
        count: 4,
        bytes: 16,
        state: 'completed',
        failed: false,
      });
      t.match(two, { seq: 2, op: 'allReduce', count: 100_000, bytes: 400_000, state: 'completed', failed: false });
      t.ok(two.startedAtMs! >= two.enqueuedAtMs && two.endedAtMs! >= two.startedAtMs!, 'times in order');
    }
    t.equal(snapshots[1].recorder!.groups.find((g) => g.name === 'world')!.lastSeq, 2, 'the culprit stopped at seq 2');
    for (const rank of [0, 2]) {
      const three = snapshots[rank].recorder!.groups.find((g) => g.name === 'world')!.entries[2];
      t.match(
        three,
        { seq: 3, op: 'allReduce', state: 'started', failed: true },
        `rank ${rank}: seq 3 started, failed`,
      );
    }
    const lines = diagnoseHang(snapshots);
    t.equal(lines.length, 1, lines.join('\n'));
    t.match(
      lines[0],
      /^dtrain: hang: rank 1 never entered allReduce seq 3 of group world \(ranks 0, 2 waiting (\d+\.\d)s\)$/,
    );
    const waited = Number(/waiting (\d+\.\d)s/.exec(lines[0])![1]);
    t.ok(waited >= 2.8 && waited < 10, `they waited about collective_timeout (${waited}s)`);
  },
);

t.test('a rank that calls another op at the same seq is a mismatch', { skip }, async (t) => {
  const { r, snapshots } = await launch(t, 'mismatch', 2);
  t.equal(r.code, 1, r.stderr);
  t.same(diagnoseHang(snapshots), [
    'dtrain: hang: rank 2 entered broadcast seq 3 where ranks 0, 1 entered allReduce seq 3 of group world',
  ]);
});

t.test('a rank run by hand records into the file it is given, readable after SIGKILL', { skip }, async (t) => {
  const dir = tempDir(t, 'flight');
  const file = join(dir, 'rec.bin');
  const run = spawnSync(process.execPath, [fixture], {
    env: {
      ...process.env,
      RANK: '0',
      WORLD_SIZE: '1',
      FLIGHT_OUT: dir,
      FLIGHT_MODE: 'sigkill',
      DTRAIN_FLIGHT_RECORDER: file,
    },
    encoding: 'utf8',
    timeout: 60_000,
  });
  t.equal(run.signal, 'SIGKILL', run.stderr);
  const rec = readFlightRecorder(file)!;
  t.equal(rec.pid, run.pid);
  const world = rec.groups.find((g) => g.name === 'world')!;
  t.same(
    world.entries.map((e) => [e.seq, e.op, e.state]),
    [
      [1, 'allReduce', 'completed'],
      [2, 'allReduce', 'completed'],
      [3, 'barrier', 'completed'],
    ],
  );
});
