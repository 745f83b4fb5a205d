/**
 * The PBS (PBS Pro / OpenPBS) script for a dtrain job: experimental. PBS has no srun, so the job uses
 * join mode: the controller runs on the first node and waits for one agent per node; pbsdsh starts
 * `dtrain agent --join head:port --secret-file F` on every node of PBS_NODEFILE. The secret is created
 * inside the job, in a 0700 folder under the logs folder (shared with the other nodes), and removed at
 * the end; it never appears in the script, in argv or in an environment.
 */
import { packageVersion } from '../util/version.js';
import { slurmTimeToSeconds, pbsWalltime } from './batch-time.js';
import { outputPath, resultPath, type BatchJob } from './batch-job.js';
import { shellCommand, shellComment, shellWord } from './shell-quote.js';

/** Slurm-style amounts (64G, 512M, 1024 = MB) → PBS sizes (64gb, 512mb, 1024mb). */
export function pbsMem(mem: string): string {
  const m = /^([0-9]+)([KMGT]?)$/.exec(mem);
  if (!m) throw new Error(`not an amount: ${mem}`);
  return `${m[1]}${(m[2] || 'M').toLowerCase()}b`;
}

/** Settings PBS has no equivalent for: reported once at submission rather than silently dropped. */
export function pbsWarnings(job: BatchJob): string[] {
  const w: string[] = [];
  if (job.scheduler.qos !== undefined) w.push('scheduler.qos has no PBS equivalent and is ignored');
  if (job.scheduler.signal !== undefined) w.push('scheduler.signal has no PBS equivalent and is ignored');
  return w;
}

export function renderPbsScript(job: BatchJob): string {
  const s = job.scheduler;
  const ncpus = s.cpus_per_task ?? (typeof job.nprocPerNode === 'number' ? job.nprocPerNode : 1);
  // mpiprocs=1 lists each chunk once in PBS_NODEFILE, so pbsdsh starts exactly one agent per node.
  let select = `select=${job.nodes}:ncpus=${ncpus}:mpiprocs=1`;
  if (s.gpus_per_node) select += `:ngpus=${s.gpus_per_node}`;
  if (s.mem !== undefined && s.mem !== '0') select += `:mem=${pbsMem(s.mem)}`;
  const d: string[] = [`-N ${job.name}`, `-l ${select}`, '-l place=scatter'];
  if (s.time !== undefined) d.push(`-l walltime=${pbsWalltime(slurmTimeToSeconds(s.time))}`);
  if (s.partition !== undefined) d.push(`-q ${s.partition}`);
  if (s.account !== undefined) d.push(`-A ${s.account}`);
  d.push('-j oe', `-o ${outputPath(job)}`);
  d.push(...(s.extra ?? []));

  const port = String(job.joinPort);
  const secretFile = '"$secret_dir/secret"';
  return [
    '#!/bin/bash',
    ...d.map((x) => `#PBS ${x}`),
    `# Rendered by dtrain ${packageVersion()} from ${shellComment(job.configFile)} (PBS support is experimental): ` +
      'edit the config, not this file.',
    'set -eu',
    `cd ${shellWord(job.workdir)}`,
    'command -v pbsdsh >/dev/null || { echo "dtrain: pbsdsh not found on PATH: the job cannot start agents ' +
      'on its nodes" >&2; exit 3; }',
    `export DTRAIN_RESULT_FILE=${shellWord(resultPath(job))}`,
    '# Each node once, in PBS_NODEFILE order; the first is where this script (the controller) runs.',
    'hosts=$(awk \'!seen[$0]++\' "$PBS_NODEFILE")',
    'nnodes=$(printf \'%s\\n\' "$hosts" | wc -l)',
    'head_node=$(printf \'%s\\n\' "$hosts" | head -n 1)',
    '# The job secret is made here, inside the job, readable only by this user; the agents read it',
    '# from the shared file system. It is removed when the script ends.',
    `secret_dir=$(umask 077 && mktemp -d ${shellWord(job.logsDir)}/.dtrain-secret-XXXXXX)`,
    'trap \'rm -rf "$secret_dir"\' EXIT',
    `(umask 077 && head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \\n' > ${secretFile})`,
    `${shellCommand([...job.dtrain, 'launch', job.configFile, '--set', `rendezvous.port=${port}`])} ` +
      `--join-agents "$nnodes" --secret-file ${secretFile} &`,
    'controller=$!',
    'trap \'kill -TERM "$controller" 2>/dev/null\' TERM INT USR1',
    `pbsdsh -- ${shellCommand([...job.dtrain, 'agent'])} --join "$head_node:${port}" --secret-file ${secretFile} &`,
    'agents=$!',
    'status=0',
    'wait "$controller" || status=$?',
    '# a trapped signal ends `wait` early: keep waiting while the controller shuts the workers down',
    'while kill -0 "$controller" 2>/dev/null; do wait "$controller" || status=$?; done',
    '# the agents end when their controller does; collect them so none outlives the job script',
    'wait "$agents" || true',
    'exit "$status"',
    '',
  ].join('\n');
}
