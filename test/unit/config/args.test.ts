import t from 'tap';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { configFromArgs, loadConfig, saveConfig } from '../../../src/config/index.js';
import { ConfigError, formatProblem, UsageError } from '../../../src/util/errors.js';

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
  await saveConfig(fromArgs, file);
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
  await saveConfig(loaded, join(tmp, 'b/copy.yaml'));
  const back = await loadConfig(join(tmp, 'b/copy.yaml'));
  t.same(back.config.nodes, loaded.config.nodes);
  t.same(back.config.env, { X: '1' });
});

t.test('saveConfig never overwrites a file the config reads, nor writes through a link (exit 2)', async (t) => {
  const { mkdirSync, symlinkSync, writeFileSync, chmodSync, statSync } = await import('node:fs');
  const dir = join(tmp, 'inputs');
  mkdirSync(dir);
  writeFileSync(join(dir, 'hosts'), 'w0 slots=2\n');
  writeFileSync(join(dir, 'job.env'), 'X=1\n');
  const source = '# keep this comment\nentrypoint: x\nhostfile: hosts\nenv_file: job.env\n';
  writeFileSync(join(dir, 'job.yaml'), source);
  symlinkSync(dir, join(tmp, 'inputs-link'));
  const loaded = await loadConfig(join(dir, 'job.yaml'));
  const refused = async (file: string) => {
    const err = await saveConfig(loaded, file).then(
      () => undefined,
      (e: unknown) => e as UsageError,
    );
    t.type(err, UsageError, file);
    t.equal(err?.exitCode, 2);
    return err?.message ?? '';
  };
  // the same files spelled otherwise: through a linked folder, with `..`
  t.match(await refused(join(tmp, 'inputs-link/job.yaml')), /is the config this launch reads/);
  t.match(await refused(join(dir, '../inputs/hosts')), /is the hostfile this launch reads/);
  t.match(await refused(join(tmp, 'inputs-link/job.env')), /is the env_file this launch reads/);
  t.equal(readFileSync(join(dir, 'job.yaml'), 'utf8'), source);
  t.equal(readFileSync(join(dir, 'hosts'), 'utf8'), 'w0 slots=2\n');
  t.equal(readFileSync(join(dir, 'job.env'), 'utf8'), 'X=1\n');

  writeFileSync(join(tmp, 'target.txt'), 'not a config\n');
  chmodSync(join(tmp, 'target.txt'), 0o644);
  symlinkSync('target.txt', join(tmp, 'lnk.yaml'));
  t.match(await refused(join(tmp, 'lnk.yaml')), /lnk\.yaml is a symbolic link/);
  symlinkSync('missing.txt', join(tmp, 'dangling.yaml'));
  t.match(await refused(join(tmp, 'dangling.yaml')), /is a symbolic link/);
  t.equal(readFileSync(join(tmp, 'target.txt'), 'utf8'), 'not a config\n');
  t.equal(statSync(join(tmp, 'target.txt')).mode & 0o777, 0o644);
  t.notOk(statSync(join(tmp, 'missing.txt'), { throwIfNoEntry: false }), 'a dangling link makes no file');
});

t.test('saveConfig replaces the file whole (a new file renamed over it), and leaves no tmp file', async (t) => {
  const { linkSync, mkdirSync, readdirSync, writeFileSync } = await import('node:fs');
  const dir = join(tmp, 'replace');
  mkdirSync(dir);
  const loaded = await configFromArgs({ nprocPerNode: 1, entrypoint: ['x'] });
  writeFileSync(join(dir, 'out.yaml'), 'old\n');
  // a second name for the old file: written in place, it would change too
  linkSync(join(dir, 'out.yaml'), join(dir, 'reader-view'));
  await saveConfig(loaded, join(dir, 'out.yaml'));
  t.match(readFileSync(join(dir, 'out.yaml'), 'utf8'), /nproc_per_node: 1/);
  t.equal(readFileSync(join(dir, 'reader-view'), 'utf8'), 'old\n', 'the old file was not rewritten in place');
  t.same(readdirSync(dir).sort(), ['out.yaml', 'reader-view']);

  mkdirSync(join(dir, 'a-folder'));
  const err = await saveConfig(loaded, join(dir, 'a-folder')).catch((e: unknown) => e as UsageError);
  t.type(err, UsageError);
  t.equal(err?.message, `cannot write ${join(dir, 'a-folder')}: it is a directory`);
  t.same(readdirSync(dir).sort(), ['a-folder', 'out.yaml', 'reader-view'], 'no tmp file left beside it');

  const missing = join(dir, 'no-such-folder/out.yaml');
  const noDir = await saveConfig(loaded, missing).catch((e: unknown) => e as UsageError);
  t.equal(noDir?.message, `cannot write ${missing}: no such folder`, 'names the file asked for, not the tmp file');
});

t.test('saveConfig never replaces what is not a regular file (a FIFO, a device such as /dev/null)', async (t) => {
  const { execFileSync } = await import('node:child_process');
  const { lstatSync, mkdirSync, readdirSync } = await import('node:fs');
  const dir = join(tmp, 'special');
  mkdirSync(dir);
  const fifo = join(dir, 'out.yaml');
  execFileSync('mkfifo', [fifo]);
  const loaded = await configFromArgs({ nprocPerNode: 1, entrypoint: ['x'] });
  const err = await saveConfig(loaded, fifo).catch((e: unknown) => e as UsageError);
  t.type(err, UsageError);
  t.equal(err?.exitCode, 2);
  t.equal(err?.message, `cannot write ${fifo}: it is not a regular file`);
  t.ok(lstatSync(fifo).isFIFO(), 'the FIFO is still there');
  t.same(readdirSync(dir), ['out.yaml'], 'no tmp file left beside it');
});
