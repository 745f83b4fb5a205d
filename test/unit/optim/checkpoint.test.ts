import t from 'tap';
import {
  mkdtempSync,
  readFileSync,
  readdirSync,
  renameSync,
  rmSync,
  truncateSync,
  unlinkSync,
  writeFileSync,
  existsSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ShardedAdam, CheckpointError } from '../../../src/runtime/optim/index.js';
import type { Group } from '../../../src/runtime/types.js';
import { createLoopbackGroups, onEveryRank } from '../../helpers/optim-loopback-group.js';
import { HYPER, averaged, maxRelError, randomArray } from '../../helpers/optim-data.js';

const N = 5003;
const opts = {
  lr: HYPER.lr,
  betas: [HYPER.beta1, HYPER.beta2] as const,
  eps: HYPER.eps,
  weightDecay: HYPER.weightDecay,
};

/**
 * Rank `rank` of `world` at step `s`: the global gradient (the 4-rank average) plus a per-rank offset that
 * sums to zero over the ranks, so any world size sees the same averaged gradient, as with a fixed global batch.
 */
function shareOfGlobal(s: number, rank: number, world: number): Float32Array {
  const g = averaged(N, 4, s);
  const noise = randomArray(N, 77 + s, 0.01);
  const c = rank - (world - 1) / 2;
  for (let i = 0; i < N; i++) g[i] += c * noise[i];
  return g;
}

async function train(
  groups: Group[],
  stage: 0 | 1 | 2,
  from: number,
  to: number,
  opts2: { load?: string; save?: Record<number, string> } = {},
) {
  return onEveryRank(groups, async (group, rank) => {
    const params = opts2.load ? new Float32Array(N) : randomArray(N, 1);
    const opt = new ShardedAdam(params, { group, stage, ...opts, ...(opts2.load ? { lr: 0.5 } : {}) });
    if (opts2.load) await opt.load(opts2.load);
    for (let s = from; s <= to; s++) {
      await opt.step(shareOfGlobal(s, rank, group.size));
      const dir = opts2.save?.[s];
      if (dir) await opt.save(dir);
    }
    return { params, opt };
  });
}

const roots: string[] = [];
function tempRoot(): string {
  const d = mkdtempSync(join(tmpdir(), 'dtrain-optim-ckpt-'));
  roots.push(d);
  return d;
}
t.teardown(() => roots.forEach((d) => rmSync(d, { recursive: true, force: true })));

t.test('save on 4 ranks, resume on 2 and 3 (and 4, 1): the same result as uninterrupted training', async (t) => {
  for (const stage of [0, 1, 2] as const) {
    const dir = tempRoot();
    const straight = await train(createLoopbackGroups(4).groups, stage, 1, 6, { save: { 3: dir } });
    t.equal(readFileSync(join(dir, 'latest'), 'utf8').trim(), 'step_3/gen_1');
    t.same(readdirSync(join(dir, 'step_3', 'gen_1')).sort(), [
      'manifest.json',
      'rank-00000-of-00004.bin',
      'rank-00001-of-00004.bin',
      'rank-00002-of-00004.bin',
      'rank-00003-of-00004.bin',
    ]);
    for (const world of [1, 2, 3, 4]) {
      const resumed = await train(createLoopbackGroups(world).groups, stage, 4, 6, { load: dir });
      for (const r of resumed) {
        t.equal(r.opt.stepCount, 6);
        t.equal(r.opt.lr, HYPER.lr, 'hyperparameters come from the checkpoint, as in torch');
        const err = maxRelError(r.params, straight[0].params);
        if (!(err <= 1e-6)) t.fail(`stage ${stage} world ${world}: relative error ${err}`);
      }
      t.pass(`stage ${stage}: resumed on ${world} rank(s) within 1e-6 of uninterrupted training`);
    }
  }
});

t.test('one layout for every stage: saved at one stage, resumed at another, the same result', async (t) => {
  const straight = await train(createLoopbackGroups(4).groups, 1, 1, 6);
  for (const [saveStage, loadStage, world] of [
    [0, 1, 2],
    [1, 0, 3],
    [0, 2, 4],
    [2, 0, 1],
  ] as const) {
    const dir = tempRoot();
    await train(createLoopbackGroups(4).groups, saveStage, 1, 3, { save: { 3: dir } });
    const resumed = await train(createLoopbackGroups(world).groups, loadStage, 4, 6, { load: dir });
    for (const r of resumed) {
      const err = maxRelError(r.params, straight[0].params);
      if (!(err <= 1e-6)) t.fail(`stage ${saveStage} → ${loadStage} on ${world}: relative error ${err}`);
    }
    t.pass(`saved at stage ${saveStage} on 4 ranks, resumed at stage ${loadStage} on ${world}: within 1e-6`);
  }
});

t.test('bf16 params: the fp32 master is what is saved and resharded', async (t) => {
  const dir = tempRoot();
  const n = 999;
  const run = (groups: Group[], load: boolean, steps: number[]) =>
    onEveryRank(groups, async (group, rank) => {
      const p = new Uint16Array(n).fill(load ? 0 : 0x3f80); // 1.0 in bf16
      const opt = new ShardedAdam(p, { group, stage: 2, dtype: 'bfloat16', ...opts });
      if (load) await opt.load(dir);
      for (const s of steps) await opt.step(randomArray(n, s * 10 + rank, 0.1));
      if (!load) await opt.save(dir);
      return { p, bytes: opt.stateBytes };
    });
  await run(createLoopbackGroups(3).groups, false, [1, 2]);
  const a = await run(createLoopbackGroups(2).groups, true, []);
  // 0x3f80 = 1.0; lr 1e-2 for 2 steps moves it by ~0.02: visible in bf16, and identical on both ranks
  t.not(a[0].p[0], 0x3f80);
  t.not(a[0].p[0], 0);
  t.same(a[0].p, a[1].p);
});

/** Rank 2's view of the group: once `dead` is set, its second collective never returns (the process is gone). */
function mortal(group: Group): Group & { dead: boolean } {
  let calls = 0;
  const w = Object.create(group) as Group & { dead: boolean };
  w.dead = false;
  const hang = <T>(f: () => Promise<T>): Promise<T> => (w.dead && ++calls > 1 ? new Promise<T>(() => {}) : f());
  w.allGather = (a, b, o) => hang(() => group.allGather(a, b, o));
  w.allReduce = (a, o) => hang(() => group.allReduce(a, o));
  w.barrier = (o) => hang(() => group.barrier(o));
  return w;
}

t.test('a rank dying mid-save leaves no checkpoint that loads; latest stays on the last complete step', async (t) => {
  const dir = tempRoot();
  const { groups } = createLoopbackGroups(4, { timeoutMs: 500 });
  const results = await onEveryRank(groups, async (group, rank) => {
    const g = rank === 2 ? mortal(group) : group;
    const opt = new ShardedAdam(randomArray(N, 1), { group: g, stage: 2, ...opts });
    await opt.step(shareOfGlobal(1, rank, 4));
    await opt.save(dir);
    await opt.step(shareOfGlobal(2, rank, 4));
    if (rank === 2) {
      // writes its shard, then dies before the ranks exchange checksums
      (g as ReturnType<typeof mortal>).dead = true;
      void opt.save(dir);
      return 'died';
    }
    try {
      await opt.save(dir);
      return 'saved';
    } catch (e) {
      return (e as Error).message;
    }
  });
  for (const r of [0, 1, 3]) t.match(results[r], /timed out/, `rank ${r}'s save failed instead of hanging`);
  t.equal(readFileSync(join(dir, 'latest'), 'utf8').trim(), 'step_1/gen_1');
  t.notOk(existsSync(join(dir, 'step_2', 'gen_1', 'manifest.json')), 'the half-written step has no manifest');
  t.equal(
    readdirSync(join(dir, 'step_2', 'gen_1')).filter((f) => f.endsWith('.bin')).length,
    4,
    'though every rank wrote its file',
  );
  const loaded = await onEveryRank(createLoopbackGroups(2).groups, async (group) => {
    const opt = new ShardedAdam(new Float32Array(N), { group, stage: 2, ...opts });
    const from = await opt.load(dir);
    return { from, step: opt.stepCount };
  });
  t.equal(loaded[0].step, 1);
  t.match(loaded[0].from, /step_1\/gen_1$/);
  const direct = await onEveryRank(createLoopbackGroups(1).groups, async (group) => {
    const opt = new ShardedAdam(new Float32Array(N), { group });
    return opt.load(join(dir, 'step_2')).then(
      () => 'loaded',
      (e: Error) => e,
    );
  });
  t.type(direct[0], CheckpointError);
  t.match((direct[0] as Error).message, /step_2\/manifest\.json: missing: the step was never committed/);
});

t.test('missing, truncated or corrupted shards: a clear error naming the file, on every rank', async (t) => {
  const dir = tempRoot();
  await train(createLoopbackGroups(3).groups, 1, 1, 2, { save: { 2: dir } });
  const shard = join(dir, 'step_2', 'gen_1', 'rank-00001-of-00003.bin');
  const pristine = readFileSync(shard);
  const untouched: boolean[] = [];
  const attempt = async () =>
    onEveryRank(createLoopbackGroups(3).groups, async (group) => {
      const params = new Float32Array(N).fill(7);
      const opt = new ShardedAdam(params, { group });
      return opt.load(dir).then(
        () => undefined,
        (e: Error) => {
          // Ranks whose own files were fine read them too: a failed load must not leave those half-applied.
          untouched.push(params.every((x) => x === 7) && opt.stepCount === 0);
          return e;
        },
      );
    });
  const cases: Array<[string, () => void, RegExp]> = [
    ['missing', () => unlinkSync(shard), /rank-00001-of-00003\.bin: missing shard file/],
    [
      'truncated',
      () => {
        writeFileSync(shard, pristine);
        truncateSync(shard, pristine.length - 100);
      },
      /rank-00001-of-00003\.bin: truncated: \d+ bytes, the manifest says \d+/,
    ],
    [
      'corrupted',
      () => {
        const b = Buffer.from(pristine);
        b[b.length - 5] ^= 0x10;
        writeFileSync(shard, b);
      },
      /rank-00001-of-00003\.bin: checksum mismatch/,
    ],
  ];
  for (const [what, damage, message] of cases) {
    damage();
    const errors = await attempt();
    t.type(errors[1], CheckpointError, `${what}: the rank reading it fails`);
    t.match(errors[1]!.message, message, `${what}: ${errors[1]!.message}`);
    t.ok(
      errors.every((e) => e instanceof CheckpointError),
      `${what}: every rank fails, none goes on half-loaded`,
    );
    t.same(untouched.splice(0), [true, true, true], `${what}: params and step are as before the load, on every rank`);
  }
  writeFileSync(shard, pristine);
  t.same(await attempt(), [undefined, undefined, undefined], 'the repaired checkpoint loads');
  writeFileSync(join(dir, 'step_2', 'gen_1', 'manifest.json'), '{ not json');
  const bad = await attempt();
  t.match(bad[0]!.message, /manifest\.json: not valid JSON/);
});

t.test('a checkpoint of another model is refused', async (t) => {
  const dir = tempRoot();
  await train(createLoopbackGroups(1).groups, 1, 1, 1, { save: { 1: dir } });
  const [err] = await onEveryRank(createLoopbackGroups(1).groups, async (group) =>
    new ShardedAdam(new Float32Array(N + 1), { group }).load(dir).then(
      () => undefined,
      (e: Error) => e,
    ),
  );
  t.match(err!.message, /holds 5003 parameters, this optimizer has 5004/);
  const [none] = await onEveryRank(createLoopbackGroups(1).groups, async (group) =>
    new ShardedAdam(new Float32Array(N), { group }).load(tempRoot()).then(
      () => undefined,
      (e: Error) => e,
    ),
  );
  t.match(none!.message, /latest: no checkpoint here/);
});

t.test('re-saving the step latest names writes a new generation beside it, then removes the old one', async (t) => {
  const dir = tempRoot();
  const first = await train(createLoopbackGroups(2).groups, 2, 1, 2, { save: { 2: dir } });
  t.equal(readFileSync(join(dir, 'latest'), 'utf8').trim(), 'step_2/gen_1');
  const again = await onEveryRank(createLoopbackGroups(2).groups, async (group) => {
    const opt = new ShardedAdam(new Float32Array(N), { group, stage: 2, ...opts });
    await opt.load(dir);
    return opt.save(dir);
  });
  t.match(again[0], /step_2\/gen_2$/, 'save returns the new generation');
  t.equal(readFileSync(join(dir, 'latest'), 'utf8').trim(), 'step_2/gen_2');
  t.same(readdirSync(join(dir, 'step_2')), ['gen_2'], 'the replaced generation is gone once the new one is committed');
  const [params] = await onEveryRank(createLoopbackGroups(1).groups, async (group) => {
    const p = new Float32Array(N);
    await new ShardedAdam(p, { group, stage: 2, ...opts }).load(join(dir, 'step_2'));
    return p;
  });
  t.same(params, first[0].params, 'step_2/ means its committed generation');
});

t.test('the older layout (files in step_N/, latest naming step_N) loads, and re-saving it replaces it', async (t) => {
  const dir = tempRoot();
  const first = await train(createLoopbackGroups(2).groups, 1, 1, 3, { save: { 3: dir } });
  // the layout earlier versions wrote
  for (const f of readdirSync(join(dir, 'step_3', 'gen_1')))
    renameSync(join(dir, 'step_3', 'gen_1', f), join(dir, 'step_3', f));
  rmSync(join(dir, 'step_3', 'gen_1'), { recursive: true });
  writeFileSync(join(dir, 'latest'), 'step_3\n');
  const load = (from: string) =>
    onEveryRank(createLoopbackGroups(3).groups, async (group) => {
      const p = new Float32Array(N);
      const opt = new ShardedAdam(p, { group, stage: 1, ...opts });
      const at = await opt.load(from);
      return { p, at, opt };
    });
  for (const from of [dir, join(dir, 'step_3')]) {
    const loaded = await load(from);
    t.same(loaded[0].p, first[0].params, `${from} loads`);
    t.match(loaded[0].at, /step_3$/);
  }
  const loaded = await load(dir);
  await Promise.all(loaded.map((l) => l.opt.save(dir)));
  t.equal(readFileSync(join(dir, 'latest'), 'utf8').trim(), 'step_3/gen_1');
  t.same(readdirSync(join(dir, 'step_3')), ['gen_1'], 'the older files are removed after the commit');
  const reloaded = await load(dir);
  t.same(reloaded[0].p, first[0].params);
});
