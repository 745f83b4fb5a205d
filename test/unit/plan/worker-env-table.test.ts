// The worker environment table (src/runtime/worker-env-table.ts) is the one list: the plan fills it, the
// README documents it, a config's env may not shadow it.
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import t from 'tap';
import { configFromArgs, loadConfig, parseDuration } from '../../../src/config/index.js';
import { ConfigError } from '../../../src/util/errors.js';
import { AUTO, buildPlan } from '../../../src/plan/index.js';
import { configSchema } from '../../../src/config/schema.js';
import { configDefault, configEnum } from '../../../src/runtime/config-facts.js';
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
    .map(([, name, setBy, key, unset, ...meaning]) => ({
      name: name.replace(/`/g, ''),
      setBy,
      key: key.replace(/`/g, ''),
      unset: unset.replace(/`/g, ''),
      meaning: meaning.slice(0, -1).join('|').trim(),
    }));
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
    t.has(row, { setBy: v.filledBy, key: v.configKey ?? '', unset: v.default ?? '', meaning: v.description }, v.name);
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
      'DTRAIN_BUCKET_CAP_MB',
      'DTRAIN_SPIN',
      'DTRAIN_SHM_STAGING_BYTES',
      'DTRAIN_HIERARCHICAL',
      'DTRAIN_SIMD',
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

t.test("a config's env gives the addon's user rows values they accept: else one line at the value", async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'dtrain-worker-env-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const file = join(dir, 'job.yaml');
  writeFileSync(
    file,
    'entrypoint: x\nenv:\n  DTRAIN_SPIN: fast\n  DTRAIN_SHM_STAGING_BYTES: 4MiB\n' +
      '  DTRAIN_HIERARCHICAL: "false"\n  DTRAIN_SIMD: neon\n  OMP_NUM_THREADS: "4,2"\n  DTRAIN_BUCKET_CAP_MB: 0\n',
  );
  const err = (await loadConfig(file).catch((e: unknown) => e)) as Error;
  t.type(err, ConfigError);
  t.same(err.message.split('\n'), [
    `${file}:3:16: env.DTRAIN_SPIN: must be a non-negative integer`,
    `${file}:4:29: env.DTRAIN_SHM_STAGING_BYTES: must be a non-negative integer`,
    `${file}:5:24: env.DTRAIN_HIERARCHICAL: must be one of 0, 1`,
    `${file}:6:16: env.DTRAIN_SIMD: must be one of auto, scalar, avx2, avx512`,
    `${file}:8:25: env.DTRAIN_BUCKET_CAP_MB: must be an integer of at least 1`,
  ]);
  const good = [
    'DTRAIN_SPIN=0',
    'DTRAIN_SHM_STAGING_BYTES=65536',
    'DTRAIN_HIERARCHICAL=0',
    'DTRAIN_SIMD=avx2',
    'DTRAIN_BUCKET_CAP_MB=1',
  ];
  const config = await configFromArgs({ nprocPerNode: 1, entrypoint: ['x'], sets: good.map((s) => `env.${s}`) });
  t.has(buildPlan(config).ranks[0].env, Object.fromEntries(good.map((s) => s.split('='))), 'passed on');
  await t.resolves(
    configFromArgs({ nprocPerNode: 1, entrypoint: ['x'], sets: ['env.DTRAIN_SIMD='] }),
    'empty is unset (auto)',
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

t.test("the built config facts are the schema's, and the built table does not load the schema", async (t) => {
  const built = join(root, 'dist/runtime/config-facts.js');
  if (!existsSync(built)) return t.plan(0, 'dist/ is not built (npm run build:ts)');
  const text = readFileSync(built, 'utf8');
  t.match(text, /^\/\/ Generated by scripts\/build\/config-facts\.js/, 'the build generated it (npm run build:ts)');
  t.notMatch(text, /\bimport\b/, 'it imports nothing (not the schema)');
  const generated = (await import(pathToFileURL(built).href)) as typeof import('../../../src/runtime/config-facts.js');
  const keys = WORKER_ENV.flatMap((v) => (v.configKey ? [v.configKey] : []));
  t.ok(keys.length > 5, 'config-keyed rows exist');
  for (const key of keys) {
    t.equal(generated.configDefault(key), configDefault(key), `${key}: default`);
    t.same(generated.configEnum(key), configEnum(key), `${key}: enum`);
  }
  const schedule = configSchema.properties.parallelism.properties.schedule;
  t.same(configEnum('parallelism.schedule'), schedule.enum, 'the source reads the schema');
  t.equal(configDefault('parallelism.schedule'), schedule.default);
  t.throws(() => generated.configDefault('no.such.key'), /not among the generated config facts/);
});
