/**
 * The sbatch script for a dtrain job. The script is tiny on purpose: one task per node is allocated
 * for the agents, and the batch shell becomes the controller (`exec dtrain launch`), which finds the
 * allocation itself (src/launch/slurm) and starts one agent per node with srun. Nothing secret is in
 * it: the controller creates the job secret inside the allocation and hands it to agents on stdin.
 */
import { packageVersion } from '../util/version.js';
import { outputPath, resultPath, type BatchJob } from './batch-job.js';
import { shellCommand, shellComment, shellWord } from './shell-quote.js';

/**
 * `USR1@120` → `B:USR1@120`: the signal goes to the batch shell, i.e. the controller (exec'd), which forwards it once
 * to the workers.
 */
export function batchSignal(signal: string): string {
  return signal.startsWith('B:') ? signal : `B:${signal}`;
}

/** `B:USR1@120` → `SIGUSR1`: the signal the controller receives as the scheduler's warning. */
export function warningSignal(signal: string): NodeJS.Signals {
  const name = signal.replace(/^B:/, '').replace(/@.*$/, '');
  return (name.startsWith('SIG') ? name : `SIG${name}`) as NodeJS.Signals;
}

export function renderSlurmScript(job: BatchJob): string {
  const s = job.scheduler;
  const d: string[] = [
    `--job-name=${job.name}`,
    `--nodes=${job.nodes}`,
    // one agent per node; the agent starts that node's workers
    '--ntasks-per-node=1',
  ];
  if (s.cpus_per_task !== undefined) d.push(`--cpus-per-task=${s.cpus_per_task}`);
  if (s.gpus_per_node) d.push(`--gpus-per-node=${s.gpus_per_node}`);
  if (s.mem !== undefined) d.push(`--mem=${s.mem}`);
  if (s.time !== undefined) d.push(`--time=${s.time}`);
  if (s.partition !== undefined) d.push(`--partition=${s.partition}`);
  if (s.account !== undefined) d.push(`--account=${s.account}`);
  if (s.qos !== undefined) d.push(`--qos=${s.qos}`);
  if (s.signal !== undefined) d.push(`--signal=${batchSignal(s.signal)}`);
  // requeue after a preemption (Slurm's) or at the time-limit warning (dtrain's scontrol requeue); each run
  // appends to the output, which Slurm would otherwise truncate when the job starts again
  if (s.requeue) d.push('--requeue', '--open-mode=append');
  // elastic: a failed node must not end the allocation (Slurm's default): the controller drops it and goes on
  if (job.elastic) d.push('--no-kill');
  d.push(`--output=${outputPath(job)}`, `--chdir=${job.workdir}`);
  d.push(...(s.extra ?? []));

  const lines = [
    '#!/bin/bash',
    ...d.map((x) => `#SBATCH ${x}`),
    `# Rendered by dtrain ${packageVersion()} from ${shellComment(job.configFile)}: edit the config, not this file.`,
    'set -eu',
  ];
  if (s.cpus_per_task !== undefined) {
    lines.push(
      '# srun (Slurm 22.05+) no longer inherits --cpus-per-task from the allocation: give it to the agent step.',
      `export SRUN_CPUS_PER_TASK=${s.cpus_per_task}`,
    );
  }
  lines.push(
    '# The controller writes its launch summary here; `dtrain submit --wait` reads it.',
    `export DTRAIN_RESULT_FILE=${shellWord(resultPath(job))}`,
    '# exec: the batch shell becomes the controller, so scancel and --signal reach it directly.',
    `exec ${shellCommand([...job.dtrain, 'launch', job.configFile, ...job.launchSets.flatMap((x) => ['--set', x])])}`,
    '',
  );
  return lines.join('\n');
}
