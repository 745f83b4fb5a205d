// What a worker's `import 'dtrain'` loads: paid by every worker process of every job, so it stays off the
// heavy built-ins (child_process brings net and dgram; crypto) and the config schema, which only some
// calls need (the CUDA probe, checkpoints) or only the launcher reads.
import { spawnSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import t from 'tap';

const root = join(import.meta.dirname, '../../..');
const index = join(root, 'dist/runtime/index.js');
const skip = !existsSync(index) && 'dist/ is not built (npm run build:ts)';

t.test("import 'dtrain' loads none of the heavy built-ins", { skip }, async (t) => {
  const probe =
    `await import(${JSON.stringify(index)});` +
    'console.log(JSON.stringify(process.moduleLoadList.filter((m) => m.startsWith("NativeModule "))));';
  // A plain node: tap puts its loader in every child's NODE_OPTIONS (env -u takes it out again), and
  // NODE_EXTRA_CA_CERTS, read at start, loads crypto.
  const plain = ['-u', 'NODE_OPTIONS', '-u', 'NODE_EXTRA_CA_CERTS', process.execPath];
  const r = spawnSync('env', [...plain, '--input-type=module', '-e', probe], { encoding: 'utf8' });
  t.equal(r.status, 0, r.stderr);
  const loaded = new Set((JSON.parse(r.stdout) as string[]).map((m) => m.slice('NativeModule '.length)));
  for (const heavy of ['child_process', 'crypto', 'net', 'dgram', 'vm']) t.notOk(loaded.has(heavy), heavy);
});

t.test("import 'dtrain' does not reach the config schema", { skip }, async (t) => {
  const seen = new Set<string>();
  const walk = (file: string) => {
    if (seen.has(file)) return;
    seen.add(file);
    const text = readFileSync(file, 'utf8');
    for (const m of text.matchAll(/^(?:import|export)\b[^'"]*?(?:from )?'(\.[^']+)'/gm))
      walk(resolve(dirname(file), m[1]));
  };
  walk(index);
  t.ok(seen.has(join(root, 'dist/runtime/worker-env-table.js')), 'the walk follows the imports');
  t.notOk(seen.has(join(root, 'dist/config/schema.js')), 'not dist/config/schema.js');
});
