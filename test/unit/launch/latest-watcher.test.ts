import t from 'tap';
import { mkdirSync, mkdtempSync, renameSync, rmSync, unlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { parseLatestStep, watchLatest, type LatestCheckpoint } from '../../../src/launch/latest-watcher.js';

function folder(t: { teardown(fn: () => void): void }): string {
  const dir = mkdtempSync(path.join(tmpdir(), 'dtrain-latest-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

/** Replaces `latest` the way checkpoint writers do: a temporary file renamed over it. */
function replaceLatest(dir: string, text: string): void {
  writeFileSync(path.join(dir, 'latest.tmp'), text);
  renameSync(path.join(dir, 'latest.tmp'), path.join(dir, 'latest'));
}

async function until(cond: () => boolean, ms = 5000): Promise<boolean> {
  for (const end = Date.now() + ms; Date.now() < end;) {
    if (cond()) return true;
    await new Promise((r) => setTimeout(r, 10));
  }
  return cond();
}

t.test('the step is the last number of the first path component', async (t) => {
  t.equal(parseLatestStep('step_10/gen_2\n'), 10, 'ShardedAdam');
  t.equal(parseLatestStep('step_7'), 7, 'the older ShardedAdam layout');
  t.equal(parseLatestStep('global_step1200'), 1200, 'DeepSpeed');
  t.equal(parseLatestStep('checkpoint-500'), 500);
  t.equal(parseLatestStep('42'), 42);
  t.equal(parseLatestStep('ckpt_3_final/model.pt'), 3);
  t.equal(parseLatestStep('final'), undefined, 'no number: no step');
  t.equal(parseLatestStep(''), undefined);
  t.equal(parseLatestStep('9'.repeat(30)), undefined, 'beyond safe integers');
});

t.test('each new content of latest is reported once, with its step', async (t) => {
  const dir = folder(t);
  replaceLatest(dir, 'step_10/gen_1\n');
  const seen: LatestCheckpoint[] = [];
  const w = await watchLatest(dir, (c) => seen.push(c), { pollMs: 50 });
  t.teardown(() => w.close());
  t.same(w.current, { name: 'step_10/gen_1', step: 10 }, 'the content at the start is current, not a change');
  replaceLatest(dir, 'step_20/gen_1\n');
  t.ok(await until(() => seen.length === 1), 'the replacement is seen');
  replaceLatest(dir, 'step_20/gen_1\n');
  unlinkSync(path.join(dir, 'latest'));
  writeFileSync(path.join(dir, 'latest'), '');
  await new Promise((r) => setTimeout(r, 300));
  t.equal(seen.length, 1, 'the same name again, a removal or an empty file is no change');
  replaceLatest(dir, 'step_30/gen_2');
  t.ok(await until(() => seen.length === 2));
  t.same(seen, [
    { name: 'step_20/gen_1', step: 20 },
    { name: 'step_30/gen_2', step: 30 },
  ]);
  t.same(w.current, { name: 'step_30/gen_2', step: 30 });
  w.close();
  replaceLatest(dir, 'step_40/gen_1');
  await new Promise((r) => setTimeout(r, 300));
  t.equal(seen.length, 2, 'nothing after close');
});

t.test('a folder that appears later is found by polling alone', async (t) => {
  const dir = path.join(folder(t), 'not-yet');
  const seen: LatestCheckpoint[] = [];
  const w = await watchLatest(dir, (c) => seen.push(c), { pollMs: 50 });
  t.teardown(() => w.close());
  t.equal(w.current, undefined);
  mkdirSync(dir);
  replaceLatest(dir, 'global_step100');
  t.ok(await until(() => seen.length === 1), 'seen without fs.watch on the folder');
  t.same(seen[0], { name: 'global_step100', step: 100 });
});
