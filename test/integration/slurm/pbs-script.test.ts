/**
 * The rendered PBS script, run as PBS would run it: with a PBS_NODEFILE and pbsdsh on PATH (a stand-in
 * that runs the command once per node file entry on this machine, test/fixtures/join/pbsdsh), and the
 * real dtrain in join mode: the controller on the first node waits for one joining agent per node, the
 * job runs on all of them, and the script exits with the controller's status. Also under test: the job
 * secret made inside the job (the agents and controller refuse a file others can read, so success shows
 * it was private), never in the script, gone afterwards; the result file `dtrain submit --wait` reads.
 */
import t from 'tap';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, readdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { loadConfig } from '../../../src/config/index.js';
import { batchJobFromConfig, resultPath } from '../../../src/batch/batch-job.js';
import { renderPbsScript } from '../../../src/batch/pbs-script.js';
import { freePort } from '../../../src/launch/ports.js';

const root = fileURLToPath(new URL('../../../', import.meta.url));
const standIns = path.join(root, 'test/fixtures/join');
const dtrain = [process.execPath, path.join(root, 'bin/dtrain')];

// CI (DTRAIN_REQUIRE_INTEGRATION) builds first: there a missing dist/ is a failure, not a skip
if (!existsSync(path.join(root, 'dist/cli/main.js')) && !process.env.DTRAIN_REQUIRE_INTEGRATION) {
  t.plan(0, 'dist/ is not built (npx tsc -p .)');
  process.exit(0);
}

interface RankResult {
  rank: number;
  host: string;
  exit_code: number;
}

t.test(
  'the PBS script runs the job in join mode: the controller on the first node, one joining agent per node',
  async (t) => {
    const port = await freePort();
    const entry =
      `node -e "console.log('PBS ' + JSON.stringify([process.env.RANK, process.env.GROUP_RANK, ` +
      `process.env.WORLD_SIZE, process.env.MASTER_ADDR]))"`;
    const dir = t.testdir({
      'job.yaml':
        `name: pbsjob\nentrypoint: ${entry}\nnproc_per_node: 2\nrendezvous: {port: ${port}, ` +
        `timeout: 30s}\nscheduler: {kind: pbs, nodes: 3, time: "10"}\n`,
    });
    const loaded = await loadConfig(path.join(dir, 'job.yaml'), { cwd: dir });
    const job = batchJobFromConfig(loaded.config, path.join(dir, 'job.yaml'), { dtrain, stamp: 'S' });
    t.equal(job.joinPort, port);
    const script = renderPbsScript(job);
    mkdirSync(job.logsDir, { recursive: true });
    writeFileSync(path.join(job.logsDir, 'pbsjob.pbs'), script);
    // one entry per chunk (mpiprocs=1), node 0 first; names that reach this machine stand for the hosts
    writeFileSync(path.join(dir, 'nodefile'), 'localhost\n127.0.0.2\n127.0.0.3\n');

    const r = spawnSync('bash', [path.join(job.logsDir, 'pbsjob.pbs')], {
      cwd: '/',
      env: {
        ...process.env,
        NO_COLOR: '1',
        PATH: `${standIns}:${process.env.PATH}`,
        PBS_NODEFILE: path.join(dir, 'nodefile'),
        PBS_JOBID: '42.server',
      },
      encoding: 'utf8',
      timeout: 60_000,
    });
    t.equal(r.status, 0, r.stderr);
    const result = JSON.parse(readFileSync(resultPath(job), 'utf8')) as {
      exit_code: number;
      attempts: { ranks: RankResult[] }[];
    };
    t.equal(result.exit_code, 0);
    const ranks = result.attempts[0].ranks;
    t.same(
      ranks.map((x) => [x.rank, x.exit_code]),
      [0, 1, 2, 3, 4, 5].map((k) => [k, 0]),
    );
    // every node file entry became one node of 2 ranks (node order is join order: all are this machine)
    const hosts = [ranks[0].host, ranks[2].host, ranks[4].host];
    t.same([...hosts].sort(), ['127.0.0.2', '127.0.0.3', 'localhost']);
    for (let k = 0; k < 6; k++) t.equal(ranks[k].host, hosts[k >> 1], `rank ${k} on node ${k >> 1}`);

    const seen = r.stdout
      .split('\n')
      .filter((l) => l.includes('] PBS '))
      .map((l) => JSON.parse(l.slice(l.indexOf('] PBS ') + 6)) as string[]);
    t.same(
      seen.sort(),
      [0, 1, 2, 3, 4, 5].map((k) => [String(k), String(k >> 1), '6', '127.0.0.1']),
    );

    t.same(
      readdirSync(job.logsDir).filter((f) => f.startsWith('.dtrain-secret')),
      [],
      'the secret is removed when the script ends',
    );
    t.notMatch(script, /[0-9a-f]{64}/);
    t.match(script, `--join-agents "$nnodes" --secret-file "$secret_dir/secret"`);
  },
);

t.test('without pbsdsh the script stops before making a secret or starting anything: exit 3', async (t) => {
  const port = await freePort();
  const dir = t.testdir({
    'job.yaml': `name: pbsfail\nentrypoint: x\nrendezvous: {port: ${port}}\nscheduler: {kind: pbs, nodes: 1}\n`,
  });
  const loaded = await loadConfig(path.join(dir, 'job.yaml'), { cwd: dir });
  const job = batchJobFromConfig(loaded.config, path.join(dir, 'job.yaml'), { dtrain, stamp: 'S' });
  mkdirSync(job.logsDir, { recursive: true });
  writeFileSync(path.join(dir, 'run.pbs'), renderPbsScript(job));
  writeFileSync(path.join(dir, 'nodefile'), 'localhost\n');
  const r = spawnSync('bash', [path.join(dir, 'run.pbs')], {
    env: { ...process.env, PATH: '/usr/bin:/bin', PBS_NODEFILE: path.join(dir, 'nodefile') },
    encoding: 'utf8',
    timeout: 60_000,
  });
  t.equal(r.status, 3);
  t.equal(r.stderr, 'dtrain: pbsdsh not found on PATH: the job cannot start agents on its nodes\n');
  t.same(
    readdirSync(job.logsDir).filter((f) => f.startsWith('.dtrain-secret')),
    [],
  );
  t.notOk(existsSync(resultPath(job)), 'no controller started (it would have written the result file)');
});

t.test('dtrain submit to PBS: qsub missing, a rejected job, and the job id qsub prints', async (t) => {
  // A stand-in qsub: what a PBS server answers (no PBS server here); the script it is given is checked too.
  const dir = t.testdir({
    'job.yaml': 'name: pbsq\nentrypoint: node w.js\nscheduler: {kind: pbs, nodes: 1, partition: work}\n',
    bin: {},
  });
  const bin = path.join(dir, 'bin');
  const qsub = (body: string) => writeFileSync(path.join(bin, 'qsub'), `#!/bin/sh\n${body}\n`, { mode: 0o755 });
  const submit = (env: Record<string, string>) =>
    spawnSync(dtrain[0], [dtrain[1], 'submit', 'job.yaml', '--json'], {
      cwd: dir,
      env: { ...process.env, ...env },
      encoding: 'utf8',
      timeout: 30_000,
    });

  let r = submit({ PATH: '/nonexistent' });
  t.equal(r.status, 3, r.stderr);
  t.match(r.stderr, /^dtrain: qsub not found on PATH/m);
  t.notMatch(r.stderr, /\n\s+at /, 'no stack trace');
  t.match(JSON.parse(r.stdout), { exit_code: 3 });

  qsub('echo "qsub: Unknown queue MSG=requested queue not found" >&2; exit 170');
  r = submit({ PATH: `${bin}:/usr/bin:/bin` });
  t.equal(r.status, 3, r.stderr);
  t.match(JSON.parse(r.stdout), { exit_code: 3, error: /qsub rejected the job: qsub: Unknown queue/ });

  qsub('grep -q "^#PBS -q work$" "$1" || { echo "no queue directive" >&2; exit 1; }; echo 4242.pbs-server');
  r = submit({ PATH: `${bin}:/usr/bin:/bin` });
  t.equal(r.status, 0, r.stderr);
  t.match(JSON.parse(r.stdout), { job_id: '4242.pbs-server' });
});
