/**
 * The rendered PBS script, run as PBS would run it: with a PBS_NODEFILE and pbsdsh on PATH (a stand-in
 * that runs the command once per node file entry on this machine). What is under test is the script: the
 * node list, the job secret made inside the job (0600 in a 0700 folder, never in argv or the script, gone
 * afterwards), the controller started on the first node in join mode, one joining agent per node, and the
 * controller's exit status and result file. dtrain's join mode itself is a stand-in (join-stub.mjs).
 */
import t from 'tap';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, readdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { loadConfig } from '../../../src/config/index.js';
import { batchJobFromConfig, resultPath } from '../../../src/batch/batch-job.js';
import { renderPbsScript } from '../../../src/batch/pbs-script.js';

const fixtures = fileURLToPath(new URL('../../fixtures/slurm/', import.meta.url));

t.test('the PBS script starts the controller and one joining agent per node', async (t) => {
  const dir = t.testdir({ 'job.yaml': 'name: pbsjob\nentrypoint: python3 train.py\nnproc_per_node: 2\nrendezvous: {port: 29517}\nscheduler: {kind: pbs, nodes: 3, time: "10"}\n' });
  const loaded = await loadConfig(path.join(dir, 'job.yaml'), { cwd: dir });
  const job = batchJobFromConfig(loaded.config, path.join(dir, 'job.yaml'), { dtrain: [process.execPath, `${fixtures}join-stub.mjs`], stamp: 'S' });
  const script = renderPbsScript(job);
  mkdirSync(job.logsDir, { recursive: true });
  writeFileSync(path.join(job.logsDir, 'pbsjob.pbs'), script);
  // one entry per chunk (mpiprocs=1), node 0 first; names that reach this machine stand for the hosts
  writeFileSync(path.join(dir, 'nodefile'), 'localhost\n127.0.0.2\n127.0.0.3\n');
  const argvLog = path.join(dir, 'argv.log');

  const r = spawnSync('bash', [path.join(job.logsDir, 'pbsjob.pbs')], {
    cwd: '/',
    env: { ...process.env, PATH: `${fixtures}:${process.env.PATH}`, PBS_NODEFILE: path.join(dir, 'nodefile'), PBS_JOBID: '42.server', STUB_ARGV_LOG: argvLog },
    encoding: 'utf8',
    timeout: 60_000,
  });
  t.equal(r.status, 0, r.stderr);
  const result = JSON.parse(readFileSync(resultPath(job), 'utf8'));
  t.same(result.agents, [
    { host: 'localhost', vnode: 0, ok: true },
    { host: '127.0.0.2', vnode: 1, ok: true },
    { host: '127.0.0.3', vnode: 2, ok: true },
  ]);
  t.match(result, { exit_code: 0, secret_mode: '600', secret_dir_mode: '700', secret_length: 64 });

  const calls = readFileSync(argvLog, 'utf8').trim().split('\n').map((l) => JSON.parse(l) as string[]);
  const launch = calls.filter((c) => c[0] === 'launch');
  const agents = calls.filter((c) => c[0] === 'agent');
  t.equal(launch.length, 1);
  t.same(launch[0]!.slice(0, 6), ['launch', job.configFile, '--set', 'rendezvous.port=29517', '--join-agents', '3']);
  t.equal(agents.length, 3);
  for (const a of agents) t.same(a.slice(0, 3), ['agent', '--join', 'localhost:29517']);
  const secretFile = launch[0]![launch[0]!.indexOf('--secret-file') + 1]!;
  t.notOk(existsSync(secretFile), 'the secret is removed when the script ends');
  t.same(readdirSync(job.logsDir).filter((f) => f.startsWith('.dtrain-secret')), []);
  t.notMatch(script, /[0-9a-f]{64}/);
});

t.test('without pbsdsh the script stops before making a secret or starting anything: exit 3', async (t) => {
  const dir = t.testdir({ 'job.yaml': 'name: pbsfail\nentrypoint: x\nrendezvous: {port: 29518}\nscheduler: {kind: pbs, nodes: 1}\n' });
  const loaded = await loadConfig(path.join(dir, 'job.yaml'), { cwd: dir });
  const job = batchJobFromConfig(loaded.config, path.join(dir, 'job.yaml'), { dtrain: [process.execPath, `${fixtures}join-stub.mjs`], stamp: 'S' });
  mkdirSync(job.logsDir, { recursive: true });
  writeFileSync(path.join(dir, 'run.pbs'), renderPbsScript(job));
  writeFileSync(path.join(dir, 'nodefile'), 'localhost\n');
  const r = spawnSync('bash', [path.join(dir, 'run.pbs')], {
    env: { ...process.env, PATH: '/usr/bin:/bin', PBS_NODEFILE: path.join(dir, 'nodefile'), STUB_ARGV_LOG: path.join(dir, 'argv.log') },
    encoding: 'utf8',
    timeout: 60_000,
  });
  t.equal(r.status, 3);
  t.equal(r.stderr, 'dtrain: pbsdsh not found on PATH: the job cannot start agents on its nodes\n');
  t.same(readdirSync(job.logsDir).filter((f) => f.startsWith('.dtrain-secret')), []);
  t.notOk(existsSync(path.join(dir, 'argv.log')), 'no controller started');
});
