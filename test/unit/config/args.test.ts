import t from 'tap';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { configFromArgs, loadConfig, saveConfig } from '../../../src/config/index.js';
import { ConfigError, formatProblem } from '../../../src/util/errors.js';

const tmp = mkdtempSync(join(tmpdir(), 'dtrain-args-'));
t.teardown(() => rmSync(tmp, { recursive: true, force: true }));

t.test('torchrun habits: --nproc-per-node 4 -- python3 train.py', async (t) => {
  const { config, warnings } = await configFromArgs({
    nprocPerNode: 4,
    entrypoint: ['python3', 'train.py', '--lr', '0.1'],
  });
  t.same(warnings, []);
  t.equal(config.name, 'dtrain');
  t.same(config.entrypoint, ['python3', 'train.py', '--lr', '0.1'], 'argv kept as given, not re-split');
  t.match(config.nodes, [{ host: 'localhost', nproc: 4, local: true }]);
  t.equal(config.parallelism.data, 4);
});

t.test('--nnodes with --hosts; masters and restarts map to their keys', async (t) => {
  const { config } = await configFromArgs({
    nprocPerNode: 2,
    nnodes: 2,
    hosts: ['node-a', 'node-b'],
    masterPort: 29600,
    maxRestarts: 3,
    entrypoint: ['python3', 'train.py'],
  });
  t.same(
    config.nodes.map((n) => [n.host, n.nproc, n.local]),
    [
      ['node-a', 2, false],
      ['node-b', 2, false],
    ],
  );
  t.equal(config.master.port, 29600);
  t.equal(config.restarts.max, 3);
});

t.test('flag problems name the flag', async (t) => {
  const err = await configFromArgs({ nprocPerNode: 0, entrypoint: ['x'], masterPort: 99999, sets: [] }).catch(
    (e: unknown) => e,
  );
  t.type(err, ConfigError);
  t.same((err as ConfigError).problems.map(formatProblem), [
    '--nproc-per-node: nproc_per_node: must be an integer from 1 to 4096 or "auto", got 0',
    '--master-port: master.port: must be a port number 1-65535 or "auto", got 99999',
  ]);
  const nn = await configFromArgs({ nnodes: 2, entrypoint: ['x'] }).catch((e: unknown) => e);
  t.same((nn as ConfigError).problems.map(formatProblem), [
    '--nnodes: is 2, but no --hosts were given (name them: --hosts a,b)',
  ]);
  const none = await configFromArgs({ entrypoint: [] }).catch((e: unknown) => e);
  t.match((none as ConfigError).message, /name the command to run after --/);
});

t.test('saveConfig writes a config that loads back to the same thing', async (t) => {
  const fromArgs = await configFromArgs({
    nprocPerNode: 2,
    entrypoint: ['python3', 'train.py', 'it has spaces'],
    sets: ['parallelism.zero_stage=1'],
  });
  const file = join(tmp, 'saved.yaml');
  saveConfig(fromArgs, file);
  const text = readFileSync(file, 'utf8');
  t.match(text, /^# yaml-language-server: \$schema=\S+dtrain\.schema\.json\n/);
  t.notMatch(text, /heartbeat/, 'defaults are not spelled out');
  const back = await loadConfig(file, { cwd: process.cwd() });
  t.same({ ...back.config, name: 'dtrain' }, fromArgs.config);
});

t.test('saveConfig keeps hostfile and env_file working from another folder', async (t) => {
  const { mkdirSync, writeFileSync } = await import('node:fs');
  mkdirSync(join(tmp, 'a'));
  mkdirSync(join(tmp, 'b'));
  writeFileSync(join(tmp, 'a/hosts'), 'w0 slots=2\n');
  writeFileSync(join(tmp, 'a/job.env'), 'X=1\n');
  writeFileSync(join(tmp, 'a/job.yaml'), 'entrypoint: x\nhostfile: hosts\nenv_file: job.env\n');
  const loaded = await loadConfig(join(tmp, 'a/job.yaml'));
  saveConfig(loaded, join(tmp, 'b/copy.yaml'));
  const back = await loadConfig(join(tmp, 'b/copy.yaml'));
  t.same(back.config.nodes, loaded.config.nodes);
  t.same(back.config.env, { X: '1' });
});
