// End to end through the built CLI (bin/dtrain → dist/): exit codes, stdout/stderr split, no stack traces.
import t from 'tap';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parse } from 'yaml';
import { compileSchema, createAjv } from '../../../src/config/ajv.js';

const root = fileURLToPath(new URL('../../../', import.meta.url));
const built = existsSync(join(root, 'dist/cli/main.js')) && existsSync(join(root, 'dist/config/load.js'));
if (!built) {
  t.plan(0, 'dist/ is not built: run `npx tsc -p .` (npm install does it)');
} else {
  const tmp = mkdtempSync(join(tmpdir(), 'dtrain-cli-'));
  t.teardown(() => rmSync(tmp, { recursive: true, force: true }));
  const dtrain = (...args: string[]) => {
    const r = spawnSync(process.execPath, [join(root, 'bin/dtrain'), ...args], {
      cwd: tmp,
      encoding: 'utf8',
      env: { ...process.env, NO_COLOR: '1' },
    });
    return { code: r.status, stdout: r.stdout, stderr: r.stderr };
  };
  const quickstart = join(root, 'configs/quickstart.yaml');

  t.test('--help lists the commands, --version prints the version: exit 0', async (t) => {
    const help = dtrain('--help');
    t.equal(help.code, 0, help.stderr);
    for (const cmd of ['launch', 'validate', 'submit', 'schedule', 'bench', 'doctor', 'schema'])
      t.match(help.stdout, new RegExp(`dtrain ${cmd}\\b`));
    t.notMatch(help.stdout, /dtrain agent/, 'the internal agent command stays hidden');
    const version = dtrain('--version');
    t.equal(version.code, 0);
    t.equal(version.stdout.trim(), JSON.parse(readFileSync(join(root, 'package.json'), 'utf8')).version);
  });

  t.test('with a model section: per-rank memory in the table and in --json', async (t) => {
    const multinode = join(root, 'configs/multinode.yaml');
    const r = dtrain('validate', multinode);
    t.equal(r.code, 0, r.stderr);
    t.match(
      r.stdout,
      /rank\s+local\s+pipeline\s+data\s+tensor\s+params\s+grads\s+optim\s+activ\s+total GB\n\s+0\s+0\s+0\s+0\s+0\s+[\d.]+\s+[\d.]+\s+[\d.]+\s+[\d.]+\s+[\d.]+\n/,
    );
    const j = JSON.parse(dtrain('validate', multinode, '--json').stdout);
    for (const rank of j.ranks) {
      const m = rank.memory;
      t.ok(m.params > 0 && m.grads > 0 && m.optimizer > 0 && m.activations > 0, `rank ${rank.rank} has every part`);
      t.equal(m.total, m.params + m.grads + m.optimizer + m.activations, `rank ${rank.rank}: total is the sum`);
    }
    const quick = JSON.parse(dtrain('validate', quickstart, '--json').stdout);
    t.equal(quick.ranks[0].memory, undefined, 'no model section: no memory estimate');
  });

  t.test('validate prints the table, exit 0', async (t) => {
    const r = dtrain('validate', quickstart);
    t.equal(r.code, 0, r.stderr);
    t.match(r.stdout, /^quickstart: world 4 = data 2 × tensor 1 × pipeline 2, ZeRO 1, 1f1b, 4 microbatches\n/);
    t.match(r.stdout, /node 0 {2}localhost {2}4 processes {2}\(local\)/);
    t.equal(r.stderr, '');
  });

  t.test('validate --json prints one JSON document: the plan', async (t) => {
    const r = dtrain('validate', quickstart, '--json', '--set', 'parallelism.zero_stage=2');
    t.equal(r.code, 0, r.stderr);
    const doc = JSON.parse(r.stdout);
    t.match(doc, {
      name: 'quickstart',
      world_size: 4,
      parallelism: { data: 2, pipeline: 2, zero_stage: 2 },
      warnings: [],
    });
    t.equal(doc.ranks.length, 4);
    t.same(doc.ranks[2].command, ['node', '--single-threaded', 'scripts/examples/train.js']);
  });

  t.test('warnings go to stderr, exit 0', async (t) => {
    const r = dtrain('validate', quickstart, '--set', 'parallelism.microbatches=1');
    t.equal(r.code, 0);
    t.match(
      r.stderr,
      /^warning: --set parallelism.microbatches=1: parallelism\.microbatches: 1 microbatch for 2 pipeline stages/,
      'the warning points at the --set',
    );
  });

  const bad = join(tmp, 'bad.yaml');
  writeFileSync(bad, 'entrypoint: node train.js\nparallelism:\n  tensr: 2\n  zero_stage: 3\n');

  t.test('an invalid config: every error line on stderr, exit 2, no stack trace', async (t) => {
    const r = dtrain('validate', 'bad.yaml');
    t.equal(r.code, 2);
    t.equal(r.stdout, '');
    t.equal(
      r.stderr,
      'bad.yaml:3:3: parallelism.tensr: unknown key (did you mean "tensor"?)\nbad.yaml:4:15: ' +
        'parallelism.zero_stage: must be one of 0, 1, 2, got 3\n',
    );
  });

  t.test('--json errors: {errors:[{file,line,col,path,message}]} on stdout, exit 2', async (t) => {
    const r = dtrain('validate', 'bad.yaml', '--json');
    t.equal(r.code, 2);
    t.same(JSON.parse(r.stdout), {
      errors: [
        {
          file: 'bad.yaml',
          line: 3,
          col: 3,
          path: 'parallelism.tensr',
          message: 'unknown key (did you mean "tensor"?)',
        },
        {
          file: 'bad.yaml',
          line: 4,
          col: 15,
          path: 'parallelism.zero_stage',
          message: 'must be one of 0, 1, 2, got 3',
        },
      ],
    });
  });

  writeFileSync(
    join(tmp, 'mixed.yaml'),
    'entrypoint: node train.js\ncollective_timeout: 5 minutes\nnodes: [{host: localhost, slots: ' +
      '4}]\nparallelism: {tensor: 3}\n',
  );

  t.test('schema and semantic problems together: one line each, exit 2, in --json too', async (t) => {
    const r = dtrain('validate', 'mixed.yaml');
    t.equal(r.code, 2);
    t.equal(r.stdout, '');
    t.equal(
      r.stderr,
      'mixed.yaml:2:21: collective_timeout: must be a duration such as 30s, 5m, 1h or a number of seconds, ' +
        'got "5 minutes"\n' +
        'mixed.yaml:4:14: parallelism: tensor × pipeline = 3 × 1 = 3 does not divide the world size 4 ' +
        '(localhost: 4)\n',
    );
    const j = dtrain('validate', 'mixed.yaml', '--json');
    t.equal(j.code, 2);
    t.same(
      JSON.parse(j.stdout).errors.map((e: { line: number; col: number; path: string }) => [e.line, e.col, e.path]),
      [
        [2, 21, 'collective_timeout'],
        [4, 14, 'parallelism'],
      ],
    );
  });

  t.test('a missing file, a bad --set and a missing argument are exit 2 without stack traces', async (t) => {
    for (const args of [['validate', 'nope.yaml'], ['validate', quickstart, '--set', 'foo=1'], ['validate']]) {
      const r = dtrain(...args);
      t.equal(r.code, 2, args.join(' '));
      t.notMatch(r.stderr, /\n\s+at /, 'no stack trace');
    }
    t.equal(dtrain('validate', 'nope.yaml').stderr, 'nope.yaml: cannot read the config: no such file\n');
  });

  t.test(
    'launch flags that name nothing: --hosts of commas, an empty program after --: exit 2, one line',
    async (t) => {
      const hosts = dtrain('launch', '--dry-run', '--hosts', ',,,', '--', 'true');
      t.equal(hosts.code, 2);
      t.equal(hosts.stderr, 'dtrain: --hosts ",,," names no host\n', 'not taken for localhost');
      const empty = dtrain('launch', '--dry-run', '--nproc-per-node', '1', '--', '', 'x');
      t.equal(empty.code, 2);
      t.equal(empty.stderr, 'the command after --: entrypoint.0: the program to run is an empty string\n');
      writeFileSync(join(tmp, 'empty-program.yaml'), 'entrypoint: ["", "x"]\n');
      t.equal(
        dtrain('validate', 'empty-program.yaml').stderr,
        'empty-program.yaml:1:14: entrypoint.0: the program to run is an empty string\n',
      );
    },
  );

  t.test('scheduler values bound for #SBATCH lines are checked by validate, at their place', async (t) => {
    writeFileSync(
      join(tmp, 'sched.yaml'),
      'entrypoint: x\nscheduler:\n  kind: slurm\n  partition: "gpu large"\n' +
        '  extra: ["--exclusive", "nodash", "-x\\ny"]\n',
    );
    for (const args of [
      ['validate', 'sched.yaml'],
      ['submit', 'sched.yaml', '--dry-run'],
    ]) {
      const r = dtrain(...args);
      t.equal(r.code, 2, args[0]);
      t.equal(
        r.stderr,
        'sched.yaml:4:14: scheduler.partition: must be a single word (no spaces or line breaks), got "gpu large"\n' +
          `sched.yaml:5:26: scheduler.extra.1: must be an option starting with '-', on one line, got "nodash"\n` +
          `sched.yaml:5:36: scheduler.extra.2: must be an option starting with '-', on one line, got "-x\\ny"\n`,
        `${args[0]}: every problem at its line and column`,
      );
    }
  });

  t.test('env_file lines get the env checks: validate and launch --dry-run say file:line:col, exit 2', async (t) => {
    writeFileSync(join(tmp, 'job.env'), 'HF_HOME=/data/hf\nMASTER_PORT=29500\nDTRAIN_SPIN=hunter2\n');
    writeFileSync(join(tmp, 'envfile.yaml'), 'entrypoint: node train.js\nenv_file: job.env\n');
    const lines = [
      'job.env:2:1: MASTER_PORT is set by dtrain for every worker from master.port: set that key instead',
      'job.env:3:13: DTRAIN_SPIN: must be a non-negative integer',
    ];
    for (const args of [['validate'], ['launch', '--dry-run']]) {
      const r = dtrain(args[0], 'envfile.yaml', ...args.slice(1));
      t.equal(r.code, 2, args.join(' '));
      t.equal(r.stdout, '');
      t.equal(r.stderr, lines.map((l) => l + '\n').join(''), 'one line per problem, no stack trace');
    }
    const r = dtrain('validate', 'envfile.yaml', '--json');
    t.equal(r.code, 2);
    t.notMatch(r.stdout, /hunter2/, 'the value is never echoed');
    t.same(JSON.parse(r.stdout).errors[1], {
      file: 'job.env',
      line: 3,
      col: 13,
      path: '',
      message: 'DTRAIN_SPIN: must be a non-negative integer',
    });
  });

  t.test('schema prints the JSON Schema', async (t) => {
    const r = dtrain('schema');
    t.equal(r.code, 0);
    const schema = JSON.parse(r.stdout);
    t.equal(schema.$schema, 'https://json-schema.org/draft/2020-12/schema');
    t.ok(schema.properties.parallelism.properties.zero_stage);
  });

  t.test('the standalone validator from the build behaves like the runtime-compiled one', async (t) => {
    const file = join(root, 'dist/config/schema-validator.js');
    t.ok(existsSync(file), 'npm run build:ts writes dist/config/schema-validator.js');
    if (!existsSync(file)) return;
    const standalone = (await import(file)).default as ((d: unknown) => boolean) & { errors?: unknown[] | null };
    const runtime = compileSchema(createAjv());
    const corpus = join(root, 'test/fixtures/config/invalid');
    const parsable = (text: string) => {
      try {
        return [parse(text) as unknown];
      } catch {
        return []; // YAML errors never reach the validator
      }
    };
    const docs = readdirSync(corpus)
      .filter((f) => f.endsWith('.yaml'))
      .flatMap((f) => parsable(readFileSync(join(corpus, f), 'utf8')));
    t.ok(docs.length > 20);
    docs.push({ entrypoint: 'x' }, parse(readFileSync(join(root, 'configs/multinode.yaml'), 'utf8')));
    for (const doc of docs) {
      const [a, b] = [structuredClone(doc), structuredClone(doc)];
      t.equal(standalone(a), runtime(b));
      t.same(standalone.errors ?? null, runtime.errors ?? null);
      t.same(a, b, 'same defaults applied');
    }
  });
}
