// The worker environment table (src/runtime/worker-env-table.ts) is the one list: the plan fills it, the
// README documents it, a config's env may not shadow it.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import t from 'tap';
import { configFromArgs, parseDuration } from '../../../src/config/index.js';
import { AUTO, buildPlan } from '../../../src/plan/index.js';
import { RESERVED_WORKER_ENV, WORKER_ENV } from '../../../src/runtime/worker-env-table.js';

const root = join(import.meta.dirname, '../../..');

/** The README's "Worker environment" section: its table rows and every variable-like name it mentions. */
function readmeSection() {
  const text = readFileSync(join(root, 'README.md'), 'utf8');
  const start = text.indexOf('\n## Worker environment\n');
  if (start < 0) throw new Error('README.md has no "## Worker environment" section');
  const end = text.indexOf('\n## ', start + 1);
  const section = text.slice(start, end < 0 ? undefined : end);
  const rows = section
    .split('\n')
    .filter((l) => /^\| `[A-Z]/.test(l))
    .map((l) => l.split('|').map((c) => c.trim()))
    .map(([, name, setBy, key]) => ({ name: name.replace(/`/g, ''), setBy, key: key.replace(/`/g, '') }));
  const mentioned = new Set([...section.matchAll(/`([A-Z][A-Z0-9_]{2,})(=[^`]*)?`/g)].map((m) => m[1]));
  return { rows, mentioned };
}

t.test("README's worker environment table is the table", async (t) => {
  const { rows, mentioned } = readmeSection();
  t.same(
    rows.map((r) => r.name),
    WORKER_ENV.map((v) => v.name),
    'the same variables, in the same order',
  );
  for (const v of WORKER_ENV) {
    const row = rows.find((r) => r.name === v.name);
    t.match(row, { setBy: v.filledBy, key: v.configKey ?? '' }, v.name);
  }
  const names = new Set(WORKER_ENV.map((v) => v.name));
  t.same(
    [...mentioned].filter((n) => !names.has(n)),
    [],
    'the section names no variable outside the table',
  );
});

t.test('the plan fills every row it owns; the launch rows are AUTO; nothing else is added', async (t) => {
  const p = buildPlan(
    await configFromArgs({ nprocPerNode: 2, hosts: ['a', 'b'], backend: 'cpu', masterPort: 29400, entrypoint: ['x'] }),
    { launcherEnv: {} },
  );
  const names = new Set(WORKER_ENV.map((v) => v.name));
  for (const r of p.ranks) {
    for (const v of WORKER_ENV) {
      if (v.optional) continue;
      const value = r.env[v.name];
      if (v.filledBy === 'agent') t.equal(value, AUTO, `rank ${r.rank} ${v.name} is left to the agent`);
      else t.ok(value !== undefined && (v.filledBy !== 'plan' || value !== AUTO), `rank ${r.rank} ${v.name}=${value}`);
    }
    t.same(
      Object.keys(r.env).filter((k) => !names.has(k)),
      [],
      `rank ${r.rank}: nothing outside the table`,
    );
  }
  t.equal(p.ranks[0].env.MASTER_PORT, '29400', "a fixed port stays the plan's");
});

t.test("a config's env may set only the optional rows", async (t) => {
  t.same(
    WORKER_ENV.filter((v) => !RESERVED_WORKER_ENV.has(v.name)).map((v) => v.name),
    [
      'OMP_NUM_THREADS',
      'CUDA_VISIBLE_DEVICES',
      'DTRAIN_CHECKPOINT_DIR',
      'DTRAIN_SOCKET_IFNAME',
      'NODE_OPTIONS',
      'PYTHONPATH',
    ],
  );
  await t.resolves(configFromArgs({ nprocPerNode: 1, entrypoint: ['x'], sets: ['env.OMP_NUM_THREADS=4'] }));
  await t.rejects(
    configFromArgs({ nprocPerNode: 1, entrypoint: ['x'], sets: ['env.DTRAIN_ZERO_STAGE=2'] }),
    /DTRAIN_ZERO_STAGE is set by dtrain for every worker from parallelism.zero_stage: set that key instead/,
  );
  await t.rejects(
    configFromArgs({ nprocPerNode: 1, entrypoint: ['x'], sets: ['env.MASTER_PORT=1234'] }),
    /MASTER_PORT is set by dtrain for every worker from master.port: set that key instead/,
  );
});

t.test("every config-keyed row's unset value is what the plan writes for a default config", async (t) => {
  const defaults = buildPlan(await configFromArgs({ nprocPerNode: 1, entrypoint: ['x'] })).ranks[0].env;
  const same = (v: (typeof WORKER_ENV)[number]) =>
    v.kind === 'duration'
      ? parseDuration(defaults[v.name]) === parseDuration(v.default!)
      : defaults[v.name] === v.default;
  const checked = WORKER_ENV.filter((v) => v.configKey && v.default !== undefined);
  t.ok(checked.length >= 8);
  for (const v of checked) t.ok(same(v), `${v.name}: the plan writes ${defaults[v.name]}, unset means ${v.default}`);
});
