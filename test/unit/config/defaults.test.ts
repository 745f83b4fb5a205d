import t from 'tap';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { configSchema, loadConfig } from '../../../src/config/index.js';
import { createAjv, compileSchema } from '../../../src/config/ajv.js';
import { ConfigError, formatProblem } from '../../../src/util/errors.js';

const tmp = mkdtempSync(join(tmpdir(), 'dtrain-config-'));
t.teardown(() => rmSync(tmp, { recursive: true, force: true }));
const write = (name: string, text: string) => {
  const p = join(tmp, name);
  writeFileSync(p, text);
  return p;
};

t.test('a minimal config gets every default from the schema', async (t) => {
  const { config, warnings } = await loadConfig(write('tiny job.yaml', 'entrypoint: python3 train.py --lr 0.1\n'), {
    cwd: tmp,
  });
  t.same(warnings, []);
  t.equal(config.name, 'tiny-job', 'name from the file name, made valid');
  t.same(config.entrypoint, ['python3', 'train.py', '--lr', '0.1']);
  t.equal(config.workdir, tmp);
  t.same(config.env, {});
  t.equal(config.nodes.length, 1);
  t.match(config.nodes[0], { host: 'localhost', local: true });
  t.same(config.parallelism, {
    data: config.nodes[0].nproc,
    tensor: 1,
    pipeline: 1,
    zero_stage: 0,
    microbatches: 1,
    schedule: '1f1b',
    virtual_stages: 1,
  });
  t.equal(config.backend, 'auto');
  t.same(config.master, { addr: 'auto', port: 'auto' });
  t.same(config.rendezvous, { addr: 'auto', port: 'auto', timeout: 60_000 });
  t.same(config.heartbeat, { interval: 5_000, timeout: 30_000 });
  t.equal(config.collective_timeout, 300_000);
  t.same(config.restarts, { max: 0, backoff: 5_000 });
  t.equal(config.shutdown_grace, 30_000);
  t.same(config.logs, { dir: './logs', tee: true, ranks: 'all' });
  t.equal(config.ssh.port, undefined, 'no default: ~/.ssh/config may name the port');
  t.equal(config.ssh.remote_dtrain, undefined, "no value: the remote script tries this dtrain's path, then PATH");
  t.match(config.ssh, {
    strict_host_key_checking: 'yes',
    connect_timeout: 10_000,
    concurrency: 32,
    forward_env: ['NCCL_*', 'CUDA_*', 'UCX_*', 'PYTHON*'],
  });
  t.equal(config.scheduler, undefined);
  t.equal(config.model, undefined);
});

t.test('durations: units, combinations and plain seconds become milliseconds', async (t) => {
  const { config } = await loadConfig(
    write(
      'd.yaml',
      'entrypoint: [a]\nheartbeat: {interval: 1.5, timeout: 1m30s}\ncollective_timeout: 2h\nshutdown_grace: 250ms\n',
    ),
  );
  t.same(config.heartbeat, { interval: 1500, timeout: 90_000 });
  t.equal(config.collective_timeout, 7_200_000);
  t.equal(config.shutdown_grace, 250);
});

t.test('env_file then env (env wins), values as strings; paths relative to the config', async (t) => {
  write('job.env', 'A=from-file\nexport B="quoted value"\n# c\n');
  const { config } = await loadConfig(write('e.yaml', 'entrypoint: [a]\nenv_file: job.env\nenv: {A: 1, C: true}\n'));
  t.same(config.env, { A: '1', B: 'quoted value', C: 'true' });
  const numbers = await loadConfig(write('n.yaml', 'entrypoint: [a]\nenv: {LR: 1.10, MASK: 0x1F, BIG: 1e3, N: 7}\n'), {
    sets: ['env.V=2.50'],
  });
  t.same(
    numbers.config.env,
    { LR: '1.10', MASK: '0x1F', BIG: '1e3', N: '7', V: '2.50' },
    'numbers reach workers as written',
  );
  t.equal(config.env_file, join(tmp, 'job.env'));
});

t.test('env_file lines are held to the env rules: names on every line, values where they take effect', async (t) => {
  // env overrides an invalid env_file value, and the last of a repeated key is the one a worker gets
  write('shared.env', 'DTRAIN_BUCKET_CAP_MB=0\nDTRAIN_SIMD=fast\nDTRAIN_SIMD=avx2\nMY_VAR=x\n');
  const { config } = await loadConfig(
    write('ok.yaml', 'entrypoint: [a]\nenv_file: shared.env\nenv: {DTRAIN_BUCKET_CAP_MB: 50}\n'),
  );
  t.same(config.env, { DTRAIN_BUCKET_CAP_MB: '50', DTRAIN_SIMD: 'avx2', MY_VAR: 'x' });

  write('bad.env', 'DTRAIN_SIMD=avx2\nDTRAIN_SIMD=fast\nRANK=1\nDTRAIN_SPIN=5\nDTRAIN_HIERARCHICAL=2\n');
  const bad = write(
    'bad.yaml',
    'entrypoint: [a]\nenv_file: bad.env\nenv:\n  RANK: 1\n  DTRAIN_SPIN: -1\n  DTRAIN_HIERARCHICAL: [1]\n',
  );
  const err = await loadConfig(bad).catch((e: unknown) => e);
  t.ok(err instanceof ConfigError, String(err));
  t.same((err as ConfigError).problems.map(formatProblem), [
    `${bad}:4:3: env.RANK: RANK is set by dtrain for every worker; it cannot be configured`,
    `${bad}:5:16: env.DTRAIN_SPIN: must be a non-negative integer`,
    `${bad}:6:24: env.DTRAIN_HIERARCHICAL: must be a single value (string, number, true or false), got a list`,
    `${join(tmp, 'bad.env')}:2:13: DTRAIN_SIMD: must be one of auto, scalar, avx2, avx512`,
    `${join(tmp, 'bad.env')}:3:1: RANK is set by dtrain for every worker; it cannot be configured`,
  ]);
});

t.test('the schema is valid draft 2020-12 under ajv strict mode', async (t) => {
  t.equal(configSchema.$schema, 'https://json-schema.org/draft/2020-12/schema');
  t.doesNotThrow(() => compileSchema(createAjv()));
});

t.test('configs/dtrain.schema.json (for editors) is the schema, up to date', async (t) => {
  const shipped = JSON.parse(
    readFileSync(fileURLToPath(new URL('../../../configs/dtrain.schema.json', import.meta.url)), 'utf8'),
  );
  t.same(
    shipped,
    JSON.parse(JSON.stringify(configSchema)),
    'regenerate: node bin/dtrain schema > configs/dtrain.schema.json',
  );
});

t.test('every shipped example config is valid and carries the schema comment', async (t) => {
  const dir = fileURLToPath(new URL('../../../configs/', import.meta.url));
  const { readdirSync } = await import('node:fs');
  const examples = readdirSync(dir).filter((f) => f.endsWith('.yaml'));
  t.ok(examples.includes('quickstart.yaml'));
  for (const f of examples) {
    const text = readFileSync(join(dir, f), 'utf8');
    t.match(text.split('\n')[0], /^# yaml-language-server: \$schema=\.\/dtrain\.schema\.json$/, `${f}: schema comment`);
    await t.resolves(loadConfig(join(dir, f)), `${f} loads`);
  }
});

t.test('quickstart: 4 local workers, data 2 x pipeline 2, ZeRO-1, 1f1b, 4 microbatches, cpu', async (t) => {
  const { config, warnings } = await loadConfig(
    fileURLToPath(new URL('../../../configs/quickstart.yaml', import.meta.url)),
  );
  t.same(warnings, []);
  t.match(config, {
    entrypoint: ['node', 'scripts/examples/train.js'],
    backend: 'cpu',
    nodes: [{ host: 'localhost', nproc: 4, local: true }],
    parallelism: { data: 2, tensor: 1, pipeline: 2, zero_stage: 1, schedule: '1f1b', microbatches: 4 },
  });
});

t.test('x- keys hold YAML anchors (merge keys work) and are otherwise ignored', async (t) => {
  const { config } = await loadConfig(
    write(
      'anchors.yaml',
      'x-gpu-node: &gpu {slots: 8, user: trainer}\nentrypoint: x\nnodes:\n  - {<<: *gpu, host: a}\n  - {<<: ' +
        '*gpu, host: b, slots: 4}\n',
    ),
  );
  t.same(
    config.nodes.map((n) => [n.host, n.nproc, n.user]),
    [
      ['a', 8, 'trainer'],
      ['b', 4, 'trainer'],
    ],
  );
});

t.test('ssh port: node entry, then the ssh section, then ~/.ssh/config, then 22', async (t) => {
  const { resolveTarget, sshSettingsFromConfig } = await import('../../../src/launch/ssh/target.js');
  const { parseSshConfig } = await import('../../../src/launch/ssh/ssh-config.js');
  const sshConfig = parseSshConfig('Host far\n  Port 2222\n');
  const portOf = async (yaml: string, host: string) => {
    const { config } = await loadConfig(write('p.yaml', `entrypoint: [a]\n${yaml}`));
    const node = config.nodes.find((n) => n.host === host)!;
    return resolveTarget(node, sshSettingsFromConfig(config.ssh), sshConfig, {}).port;
  };
  t.equal(
    await portOf('nodes: [{host: far}]\n', 'far'),
    2222,
    "~/.ssh/config's Port is used when the config names none",
  );
  t.equal(await portOf('nodes: [{host: near}]\n', 'near'), 22, 'else 22');
  t.equal(
    await portOf('nodes: [{host: far}]\nssh: {port: 2200}\n', 'far'),
    2200,
    'the ssh section beats ~/.ssh/config',
  );
  t.equal(
    await portOf('nodes: [{host: far, port: 2201}]\nssh: {port: 2200}\n', 'far'),
    2201,
    'the node entry beats both',
  );
});

t.test('~/ in ssh.identity_file and ssh.known_hosts is the home folder', async (t) => {
  const { homedir } = await import('node:os');
  const { config } = await loadConfig(
    write('k.yaml', 'entrypoint: [a]\nssh: {identity_file: ~/.ssh/id_job, known_hosts: "~/cluster/known_hosts"}\n'),
  );
  t.equal(config.ssh.identity_file, join(homedir(), '.ssh', 'id_job'));
  t.equal(config.ssh.known_hosts, join(homedir(), 'cluster', 'known_hosts'));
  const plain = await loadConfig(
    write('k2.yaml', 'entrypoint: [a]\nssh: {identity_file: /keys/id, known_hosts: ~user/kh}\n'),
  );
  t.equal(plain.config.ssh.identity_file, '/keys/id');
  t.equal(plain.config.ssh.known_hosts, '~user/kh', 'only ~ and ~/ (as OpenSSH without a user database lookup)');
});
