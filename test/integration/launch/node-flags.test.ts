// A launched Node worker runs with NODE_WORKER_V8_FLAGS (src/runtime/worker-env-table.ts), and without them
// when the config turns node_single_threaded off.
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import t, { type Test } from 'tap';
import { NODE_WORKER_V8_FLAGS } from '../../../src/runtime/worker-env-table.js';
import { built, runDtrain, tempDir } from '../../helpers/launch.js';

const skip = !built() && 'run npm run build:ts first';
// the worker writes the flags its Node started with, one file per rank
const dump =
  "require('fs').writeFileSync(process.argv[1] + '/argv_' + process.env.RANK, JSON.stringify(process.execArgv))";

async function launch(t: Test, sets: string[], script?: string[]): Promise<string[][]> {
  const dir = tempDir(t);
  const args = ['launch', '--nproc-per-node', '2', '--set', `logs.dir=${dir}/logs`];
  for (const s of sets) args.push('--set', s);
  let command = ['-e', dump, dir];
  if (script) {
    writeFileSync(join(dir, 'dump.cjs'), dump.replace('process.argv[1]', 'process.argv[2]'));
    command = [join(dir, 'dump.cjs'), dir, ...script];
  }
  const r = await runDtrain([...args, '--', process.execPath, ...command], { cwd: dir });
  t.equal(r.code, 0, r.stderr);
  return [0, 1].map((rank) => JSON.parse(readFileSync(join(dir, `argv_${rank}`), 'utf8')) as string[]);
}

t.test("every Node worker starts with V8's single-threaded flags by default", { skip }, async (t) => {
  t.same(NODE_WORKER_V8_FLAGS, ['--single-threaded']);
  for (const execArgv of await launch(t, [])) t.same(execArgv, [...NODE_WORKER_V8_FLAGS, '-e', dump]);
});

t.test('node_single_threaded=false starts Node workers with their own flags only', { skip }, async (t) => {
  for (const execArgv of await launch(t, ['node_single_threaded=false'])) t.same(execArgv, ['-e', dump]);
});

t.test("a script's own --single-threaded argument is not node's: the V8 flag is still added", { skip }, async (t) => {
  for (const execArgv of await launch(t, [], ['--single-threaded'])) t.same(execArgv, [...NODE_WORKER_V8_FLAGS]);
});
