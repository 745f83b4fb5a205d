// workdir is a path on each node: one that is missing there, or is not a folder, is that node's start failure,
// named in one line (exit 3), before a log folder is made (logs.dir defaults under workdir) or a worker starts.
import { existsSync, mkdirSync, readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import t from 'tap';
import { built, runDtrain, tempDir } from '../../helpers/launch.js';

const skip = !built() && 'run npx tsc -p . first';

/** A job whose worker appends a line to `<dir>/ran`: proof that it started. */
function job(dir: string, extra = ''): string {
  const file = join(dir, 'base.yaml');
  writeFileSync(file, `entrypoint: [sh, -c, 'echo ran >> ${dir}/ran']\nnproc_per_node: 1\nbackend: cpu\n${extra}`);
  return file;
}

t.test('a workdir that does not exist: one line naming it, exit 3, nothing made, no worker', { skip }, async (t) => {
  const dir = tempDir(t);
  const missing = join(dir, 'nonexistent');
  const r = await runDtrain(['launch', job(dir), '--set', `workdir=${missing}`], { cwd: dir });
  t.equal(r.code, 3, r.stderr);
  t.equal(r.stderr, `dtrain: localhost: workdir ${missing} does not exist\n`);
  t.notOk(existsSync(missing), 'no log folder made under it (nor the folder itself)');
  t.notOk(existsSync(join(dir, 'ran')), 'no worker started');
});

t.test('a workdir that is a file: "is not a folder", exit 3, no run folder under logs.dir', { skip }, async (t) => {
  const dir = tempDir(t);
  writeFileSync(join(dir, 'afile'), '');
  const file = job(dir, `logs: {dir: ${dir}/logs}\n`);
  const r = await runDtrain(['launch', file, '--set', `workdir=${dir}/afile`], { cwd: dir });
  t.equal(r.code, 3, r.stderr);
  t.equal(r.stderr, `dtrain: localhost: workdir ${dir}/afile is not a folder\n`);
  t.notOk(existsSync(join(dir, 'logs')), 'no log folder made');
  t.notOk(existsSync(join(dir, 'ran')), 'no worker started');
});

t.test('a workdir gone before a restart: the agent names it, no folder for that attempt', { skip }, async (t) => {
  const dir = tempDir(t);
  const wd = join(dir, 'wd');
  const logs = join(dir, 'logs');
  writeFileSync(
    join(dir, 'gone.yaml'),
    `entrypoint: [sh, -c, 'echo ran >> ${dir}/ran; rmdir "$PWD"; exit 1']\nnproc_per_node: 1\nbackend: cpu\n` +
      `restarts: {max: 1, backoff: 0s}\nworkdir: ${wd}\nlogs: {dir: ${logs}}\n`,
  );
  mkdirSync(wd);
  const r = await runDtrain(['launch', 'gone.yaml'], { cwd: dir });
  t.equal(r.code, 1, r.stderr);
  t.match(r.stderr, `failed on localhost: workdir ${wd} does not exist\n`);
  t.equal(readFileSync(join(dir, 'ran'), 'utf8'), 'ran\n', 'attempt 0 ran, attempt 1 started no worker');
  const [run] = readdirSync(logs);
  t.same(readdirSync(join(logs, run)).sort(), ['attempt_0', 'status.json'], 'no attempt_1 folder');
  t.notOk(existsSync(wd));
});
