import t from 'tap';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { loadConfig } from '../../../src/config/index.js';
import { ConfigError, formatProblem } from '../../../src/util/errors.js';

const tmp = mkdtempSync(join(tmpdir(), 'dtrain-set-'));
t.teardown(() => rmSync(tmp, { recursive: true, force: true }));
const file = join(tmp, 'job.yaml');
writeFileSync(
  file,
  'entrypoint: node train.js\nnodes:\n  - {host: localhost, slots: 4}\nparallelism: {pipeline: 2, microbatches: 4}\n',
);

const problemsOf = async (sets: string[]) => {
  const err = await loadConfig(file, { sets }).catch((e: unknown) => e);
  if (!(err instanceof ConfigError)) throw new Error(`expected a ConfigError, got ${String(err)}`);
  return err.problems.map(formatProblem);
};

t.test('values parse as YAML scalars and land where the path says', async (t) => {
  const { config, raw } = await loadConfig(file, {
    sets: [
      'parallelism.zero_stage=1',
      'nodes.0.slots=2',
      'backend=cpu',
      'env.WANDB_MODE=offline',
      'heartbeat.timeout=1m',
      'logs.ranks=[0, 1]',
    ],
  });
  t.equal(config.parallelism.zero_stage, 1);
  t.equal(config.nodes[0].nproc, 2, 'nproc follows the overridden slots');
  t.equal(config.parallelism.data, 1);
  t.equal(config.backend, 'cpu');
  t.same(config.env, { WANDB_MODE: 'offline' });
  t.equal(config.heartbeat.timeout, 60_000);
  t.same(config.logs.ranks, [0, 1]);
  t.match(raw, { parallelism: { zero_stage: 1 }, nodes: [{ slots: 2 }] }, 'saved configs keep the overrides');
});

t.test('later overrides win; an empty value is an empty string', async (t) => {
  const { config } = await loadConfig(file, {
    sets: ['parallelism.zero_stage=2', 'parallelism.zero_stage=0', 'env.EMPTY='],
  });
  t.equal(config.parallelism.zero_stage, 0);
  t.equal(config.env.EMPTY, '');
});

t.test('paths the schema does not have, and list items that do not exist, are errors', async (t) => {
  t.same(
    await problemsOf([
      'parallelism.tensr=2',
      'foo.bar=1',
      'nodes.1.slots=2',
      'nodes.x=1',
      'name.first=a',
      'nope',
      'model.params=1',
    ]),
    [
      '--set parallelism.tensr=2: parallelism.tensr: unknown key (did you mean "tensor"?)',
      '--set foo.bar=1: foo: unknown key',
      '--set nodes.1.slots=2: nodes.1: no such item: nodes has 1 item',
      '--set nodes.x=1: nodes.x: nodes is a list: use an index (nodes.0)',
      '--set name.first=a: name.first: name is a single value, it has no "first"',
      '--set nope: expected key.path=value, e.g. --set parallelism.zero_stage=2',
    ],
  );
});

t.test('values are validated like the file, and the error points at the --set', async (t) => {
  t.same(await problemsOf(['parallelism.zero_stage=5', 'master.port=http']), [
    '--set parallelism.zero_stage=5: parallelism.zero_stage: must be one of 0, 1, 2, got 5',
    '--set master.port=http: master.port: must be a port number 1-65535 or "auto", got "http"',
  ]);
  t.same(await problemsOf(['parallelism.data=3']), [
    '--set parallelism.data=3: parallelism.data: data × tensor × pipeline = 3 × 1 × 2 = 6, but the nodes ' +
      'run 4 processes (localhost: 4)',
  ]);
});

t.test('a secret-looking key has its value masked in messages', async (t) => {
  t.same(await problemsOf(['env.HF_TOKEN.x=hf_secret']), [
    '--set env.HF_TOKEN.x=***: env.HF_TOKEN.x: env.HF_TOKEN is a single value, it has no "x"',
  ]);
});

t.test('values read without the YAML parser are exactly what YAML reads', async (t) => {
  const { parseValue } = await import('../../../src/config/overrides.js');
  const { parse } = await import('yaml');
  const samples = [
    '/tmp/logs',
    'logs/run-1',
    'cpu',
    'nccl',
    'auto',
    '_x',
    'a.b-c_d',
    'yes',
    'no',
    'on',
    'off',
    'Yes',
    'y',
    'n',
    'null',
    'Null',
    'NULL',
    'true',
    'True',
    'TRUE',
    'false',
    'False',
    'FALSE',
    'nan',
    'inf',
    '1m',
    '30s',
    'e5',
    '0',
    '1',
    '42',
    '007',
    '1e3',
    '1.5',
    '-1',
    '+1',
    '0x1F',
    '0o17',
    '.inf',
    '.nan',
    '~',
    '123456789012345',
    '1234567890123456',
    '[0, 1]',
    '{a: 1}',
    'a b',
    'a: b',
    '#x',
    '&a',
    '*a',
    '!!str 1',
    "'q'",
    '"q"',
    'x#y',
    '/a b',
    'a,b',
    '',
    ' ',
  ];
  // an error's wording is dtrain's own (an undefined alias is named as such): only that both refuse counts
  const outcome = (f: () => unknown) => {
    try {
      return { value: f() };
    } catch {
      return { error: true };
    }
  };
  for (const s of samples)
    t.same(
      outcome(() => parseValue(s)),
      outcome(() => parse(s)),
      JSON.stringify(s),
    );
});

t.test('prototype keys are refused anywhere in a --set path; the schema alone says what exists', async (t) => {
  for (const set of ['__proto__=x', 'env.__proto__=x', 'parallelism.constructor=1', 'prototype=1']) {
    const [key] = set.split('=');
    const last = key.split('.').pop()!;
    t.same(
      await problemsOf([set]),
      [`--set ${set}: ${key}: "${last}" is not a config key (__proto__, constructor and prototype never are)`],
      set,
    );
  }
  t.same(await problemsOf(['toString=1']), ['--set toString=1: toString: unknown key'], 'no suggestion from Object');
  t.same(await problemsOf(['parallelism.hasOwnProperty=1']), [
    '--set parallelism.hasOwnProperty=1: parallelism.hasOwnProperty: unknown key',
  ]);
  const { config } = await loadConfig(file, { sets: ['env.A=1'] });
  t.equal(Object.getPrototypeOf(config.env), Object.prototype, 'env keeps its prototype');
});

t.test('an env or env_file key named __proto__ is a config error, not silently dropped', async (t) => {
  const f = join(tmp, 'proto.yaml');
  writeFileSync(f, 'entrypoint: node train.js\nenv_file: proto.env\nenv:\n  __proto__: x\n  A: b\n');
  writeFileSync(join(tmp, 'proto.env'), 'constructor=1\n');
  const err = await loadConfig(f).catch((e: unknown) => e);
  t.ok(err instanceof ConfigError);
  t.same((err as ConfigError).problems.map(formatProblem), [
    `${join(tmp, 'proto.env')}:1:1: "constructor" cannot be set: it is not an environment variable dtrain can pass`,
    `${f}:4:3: env.__proto__: "__proto__" cannot be set: it is not an environment variable dtrain can pass`,
  ]);
});
