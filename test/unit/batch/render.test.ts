import t, { type Test } from 'tap';
import path from 'node:path';
import { spawnSync } from 'node:child_process';
import { existsSync, writeFileSync } from 'node:fs';
import { loadConfig } from '../../../src/config/index.js';
import { batchJobFromConfig, resultPath, type BatchJob } from '../../../src/batch/batch-job.js';
import { renderSlurmScript, batchSignal, warningSignal } from '../../../src/batch/slurm-script.js';
import { renderPbsScript, pbsMem, pbsWarnings } from '../../../src/batch/pbs-script.js';
import { ConfigError } from '../../../src/util/errors.js';

async function caught(p: Promise<unknown>): Promise<unknown> {
  try {
    await p;
  } catch (err) {
    return err;
  }
  return undefined;
}

const dtrain = ['/opt/node/bin/node', '/shared/dtrain/bin/dtrain'];

async function jobFrom(t: Test, yaml: string, kind?: 'slurm' | 'pbs'): Promise<BatchJob> {
  const dir = t.testdir({ 'job.yaml': yaml });
  const file = path.join(dir, 'job.yaml');
  const loaded = await loadConfig(file, { cwd: dir });
  return batchJobFromConfig(loaded.config, file, { dtrain, kind, stamp: 'STAMP' });
}

const full = `
name: llm
entrypoint: python train.py --lr 3e-4
nproc_per_node: 4
shutdown_grace: 20s
scheduler:
  kind: slurm
  nodes: 2
  partition: gpu
  account: proj42
  qos: high
  time: "02:00:00"
  gpus_per_node: 4
  cpus_per_task: 32
  mem: 64G
  signal: USR1@120
  extra: ["--exclusive", "--constraint=a100"]
`;

t.test('slurm script: one agent task per node, every scheduler key, no secret', async (t) => {
  const job = await jobFrom(t, full);
  const s = renderSlurmScript(job);
  const directives = s
    .split('\n')
    .filter((l) => l.startsWith('#SBATCH '))
    .map((l) => l.slice(8));
  t.same(directives, [
    '--job-name=llm',
    '--nodes=2',
    '--ntasks-per-node=1',
    '--cpus-per-task=32',
    '--gpus-per-node=4',
    '--mem=64G',
    '--time=02:00:00',
    '--partition=gpu',
    '--account=proj42',
    '--qos=high',
    '--signal=B:USR1@120',
    `--output=${job.base}.out`,
    `--chdir=${job.workdir}`,
    '--exclusive',
    '--constraint=a100',
  ]);
  t.match(s, /^#!\/bin\/bash\n/);
  t.match(s, /\nexport SRUN_CPUS_PER_TASK=32\n/);
  t.match(s, `export DTRAIN_RESULT_FILE=${resultPath(job)}\n`);
  t.match(s, /\nexec \/opt\/node\/bin\/node \/shared\/dtrain\/bin\/dtrain launch \S+job\.yaml\n$/);
  // directives must come before the first command or sbatch ignores them
  t.ok(s.indexOf('#SBATCH') < s.indexOf('set -eu') && s.lastIndexOf('#SBATCH') < s.indexOf('set -eu'));
  t.notMatch(s, /export \w*(SECRET|KEY|TOKEN)|job_key/i);
});

t.test('slurm script: optional keys left out, SRUN_CPUS_PER_TASK only with cpus_per_task', async (t) => {
  const job = await jobFrom(t, 'entrypoint: node w.js\nnproc_per_node: 2\nscheduler: {kind: slurm}\n');
  const s = renderSlurmScript(job);
  const directives = s
    .split('\n')
    .filter((l) => l.startsWith('#SBATCH '))
    .map((l) => l.slice(8).split('=')[0]);
  t.same(directives, ['--job-name', '--nodes', '--ntasks-per-node', '--output', '--chdir']);
  t.notMatch(s, /\nexport SRUN_CPUS_PER_TASK/);
});

t.test('paths with spaces and quotes are quoted in commands', async (t) => {
  const dir = t.testdir({
    "it's a job.yaml": 'entrypoint: node w.js\nworkdir: /data/runs\nscheduler: {kind: slurm}\n',
  });
  const file = path.join(dir, "it's a job.yaml");
  const loaded = await loadConfig(file, { cwd: dir });
  const s = renderSlurmScript(batchJobFromConfig(loaded.config, file, { dtrain, stamp: 'S' }));
  t.match(s, `launch '${dir}/it'\\''s a job.yaml'\n`);
});

t.test('signal: B: is added so the batch shell (the exec-ed controller) gets it', async (t) => {
  t.equal(batchSignal('USR1@120'), 'B:USR1@120');
  t.equal(batchSignal('B:TERM@60'), 'B:TERM@60');
});

t.test('the warning the controller receives: the signal name of scheduler.signal', async (t) => {
  t.equal(warningSignal('USR1@120'), 'SIGUSR1');
  t.equal(warningSignal('B:USR2'), 'SIGUSR2');
  t.equal(warningSignal('B:SIGTERM@60'), 'SIGTERM');
});

t.test('requeue: --requeue after the signal; false or unset leaves it out', async (t) => {
  const yaml = (r: string) => `entrypoint: node w.js\nscheduler: {kind: slurm, signal: USR1@90${r}}\n`;
  t.match(
    renderSlurmScript(await jobFrom(t, yaml(', requeue: true'))),
    '#SBATCH --signal=B:USR1@90\n#SBATCH --requeue\n#SBATCH --open-mode=append\n',
  );
  t.notMatch(renderSlurmScript(await jobFrom(t, yaml(', requeue: false'))), '#SBATCH --requeue');
  t.notMatch(renderSlurmScript(await jobFrom(t, yaml(''))), '#SBATCH --requeue');
});

t.test('elastic: --no-kill keeps the allocation when a node fails; other jobs keep the default', async (t) => {
  const yaml = 'entrypoint: x\nscheduler: {kind: slurm, nodes: 2}\n';
  const elastic = renderSlurmScript(await jobFrom(t, yaml + 'elastic: {min_nodes: 1}\n'));
  t.match(elastic, '#SBATCH --ntasks-per-node=1\n#SBATCH --no-kill\n#SBATCH --output=');
  t.notMatch(renderSlurmScript(await jobFrom(t, yaml)), '#SBATCH --no-kill');
});

t.test('--scheduler overrides kind and stands in for a missing section', async (t) => {
  t.equal((await jobFrom(t, full, 'pbs')).kind, 'pbs');
  const job = await jobFrom(t, 'entrypoint: node w.js\n', 'slurm');
  t.equal(job.kind, 'slurm');
  t.equal(job.nodes, 1);
  const err = await caught(jobFrom(t, 'entrypoint: node w.js\n'));
  t.ok(err instanceof ConfigError);
  t.match((err as ConfigError).problems[0], { path: 'scheduler', message: /needs a scheduler section/ });
});

t.test('directive values must be single words; extra entries must be options', async (t) => {
  const err = await caught(
    jobFrom(
      t,
      'entrypoint: x\nscheduler: {kind: slurm, partition: "gpu long", extra: ["exclusive", "--a\\n#SBATCH --b"]}\n',
    ),
  );
  t.ok(err instanceof ConfigError);
  t.same(
    (err as ConfigError).problems.map((p) => p.path),
    ['scheduler.partition', 'scheduler.extra.0', 'scheduler.extra.1'],
  );
  t.equal((err as ConfigError).exitCode, 2);
});

t.test('invalid scheduler fields are rejected by the schema with their path', async (t) => {
  const cases: [string, string][] = [
    ['scheduler: {kind: lsf}', 'scheduler.kind'],
    ['scheduler: {kind: slurm, time: "2 hours"}', 'scheduler.time'],
    ['scheduler: {kind: slurm, mem: 64GB}', 'scheduler.mem'],
    ['scheduler: {kind: slurm, nodes: 0}', 'scheduler.nodes'],
    ['scheduler: {kind: slurm, signal: "usr1 at 120"}', 'scheduler.signal'],
    ['scheduler: {kind: slurm, partitoin: gpu}', 'scheduler'],
  ];
  for (const [yaml, where] of cases) {
    const dir = t.testdir({ 'job.yaml': `entrypoint: node w.js\n${yaml}\n` });
    const err = await caught(loadConfig(path.join(dir, 'job.yaml')));
    t.ok(err instanceof ConfigError, yaml);
    t.ok(
      (err as ConfigError).problems?.some((p) => p.path.startsWith(where)),
      `${yaml} → ${where}: ${(err as Error).message}`,
    );
  }
});

t.test('pbs script: select with ncpus/ngpus/mem, walltime, queue, account, join mode over pbsdsh', async (t) => {
  const job = await jobFrom(t, full, 'pbs');
  const s = renderPbsScript(job);
  const directives = s
    .split('\n')
    .filter((l) => l.startsWith('#PBS '))
    .map((l) => l.slice(5));
  t.same(directives, [
    '-N llm',
    '-l select=2:ncpus=32:mpiprocs=1:ngpus=4:mem=64gb',
    '-l place=scatter',
    '-l walltime=02:00:00',
    '-q gpu',
    '-A proj42',
    '-j oe',
    `-o ${job.base}.out`,
  ]);
  t.same(job.warnings, [
    'scheduler.extra (--exclusive --constraint=a100) is for slurm, not pbs: left out of the script',
  ]);
  t.match(
    s,
    /pbsdsh -- \/opt\/node\/bin\/node \/shared\/dtrain\/bin\/dtrain agent --join "\$head_node:29400" --secret-file "\$secret_dir\/secret"/,
  );
  t.match(s, /dtrain launch \S+job\.yaml --set rendezvous\.port=29400 --join-agents "\$nnodes" --secret-file/);
  t.notMatch(s, /[0-9a-f]{32}/, 'no secret value in the script');
  t.same(pbsWarnings(job), [
    'scheduler.qos has no PBS equivalent and is ignored',
    'scheduler.signal has no PBS equivalent and is ignored',
  ]);
});

t.test('pbs: extra lines of a pbs section pass through as they are', async (t) => {
  const job = await jobFrom(t, 'entrypoint: x\nscheduler: {kind: pbs, extra: ["-W group_list=ml", "-m abe"]}\n', 'pbs');
  const s = renderPbsScript(job);
  t.match(s, '#PBS -W group_list=ml\n#PBS -m abe\n');
  t.same(job.warnings, []);
});

t.test('pbs: ncpus defaults to nproc_per_node; a fixed rendezvous port is the join port', async (t) => {
  const job = await jobFrom(
    t,
    'entrypoint: x\nnproc_per_node: 3\nrendezvous: {port: 4242}\nscheduler: {kind: pbs, nodes: 2, time: ' +
      '"1-00:30:00"}\n',
  );
  const s = renderPbsScript(job);
  t.match(s, '#PBS -l select=2:ncpus=3:mpiprocs=1\n');
  t.match(s, '#PBS -l walltime=24:30:00\n');
  t.match(s, '--join "$head_node:4242"');
});

t.test('pbs memory units', async (t) => {
  t.equal(pbsMem('64G'), '64gb');
  t.equal(pbsMem('512M'), '512mb');
  t.equal(pbsMem('1024'), '1024mb');
  t.equal(pbsMem('2T'), '2tb');
});

t.test('script, output and result live together under logs.dir', async (t) => {
  const job = await jobFrom(t, 'name: a\nentrypoint: x\nlogs: {dir: out/logs}\nscheduler: {kind: slurm}\n');
  t.equal(job.logsDir, path.join(job.workdir, 'out/logs'));
  t.equal(job.base, path.join(job.logsDir, 'a-STAMP'));
});

t.test('a config path with a line break and $(...) stays inside the comment of both scripts', async (t) => {
  const dir = t.testdir({});
  const marker = path.join(dir, 'injected');
  const file = path.join(dir, 'job\n$(touch injected)\n.yaml');
  writeFileSync(file, 'entrypoint: python train.py\nscheduler: {kind: slurm, nodes: 1}\n');
  const loaded = await loadConfig(file, { cwd: dir });
  for (const kind of ['slurm', 'pbs'] as const) {
    const job = batchJobFromConfig(loaded.config, file, { dtrain, kind, stamp: 'STAMP' });
    const script = kind === 'slurm' ? renderSlurmScript(job) : renderPbsScript(job);
    const lines = script.split('\n');
    const rendered = lines.findIndex((l) => l.startsWith('# Rendered by dtrain'));
    t.match(lines[rendered], 'job\\n$(touch injected)\\n.yaml', `${kind}: escaped, on one line`);
    t.equal(lines[rendered + 1], 'set -eu', `${kind}: the next line is the script's own`);
    // what bash makes of the script's head: comments only, nothing run
    spawnSync('bash', ['-c', lines.slice(0, lines.indexOf('set -eu')).join('\n')], { cwd: dir });
    t.notOk(existsSync(marker), `${kind}: nothing from the path was run`);
  }
});
