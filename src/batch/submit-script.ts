/**
 * Hands a rendered script to the scheduler (sbatch --parsable / qsub) and returns the job id.
 * A missing client command and a rejected submission are "could not start" errors (exit 3) that
 * carry the scheduler's own message: it names the bad partition, account or limit better than we can.
 */
import { execaLazy } from '../util/execa-lazy.js';
import { StartError } from '../util/errors.js';
import type { SchedulerKind } from './batch-job.js';

const submitters: Record<SchedulerKind, { command: string; args: (script: string) => string[]; hint: string }> = {
  slurm: { command: 'sbatch', args: (s) => ['--parsable', s], hint: "Slurm's client commands (slurm-client)" },
  pbs: { command: 'qsub', args: (s) => [s], hint: "PBS's client commands" },
};

export interface SubmitOptions {
  cwd: string;
  env?: NodeJS.ProcessEnv;
}

export async function submitScript(kind: SchedulerKind, script: string, opts: SubmitOptions): Promise<string> {
  const s = submitters[kind];
  const execa = await execaLazy();
  const r = await execa(s.command, s.args(script), {
    cwd: opts.cwd,
    env: opts.env,
    extendEnv: opts.env === undefined,
    reject: false,
    stdin: 'ignore',
  });
  if ((r as { code?: string }).code === 'ENOENT') {
    throw new StartError(`${s.command} not found on PATH: dtrain submit needs ${s.hint} on this machine`);
  }
  if (r.exitCode !== 0 || r.failed) {
    const why = (r.stderr || r.stdout || r.shortMessage || '').trim().split('\n').filter(Boolean).join('; ');
    throw new StartError(`${s.command} rejected the job: ${why || `exit code ${r.exitCode}`} (script: ${script})`);
  }
  return parseJobId(kind, String(r.stdout));
}

/** sbatch --parsable prints `id` or `id;cluster`; qsub prints `id.server`, kept whole (qstat/qdel want it). */
export function parseJobId(kind: SchedulerKind, stdout: string): string {
  const line = stdout.trim().split('\n').pop()?.trim() ?? '';
  const id = kind === 'slurm' ? line.split(';')[0] : line;
  const ok = kind === 'slurm' ? /^[0-9]+(_[0-9]+)?$/.test(id) : /^[0-9]+(\[\])?(\.[A-Za-z0-9._-]+)?$/.test(id);
  if (!ok)
    throw new StartError(
      `could not read a job id from the ${kind === 'slurm' ? 'sbatch' : 'qsub'} output: ` +
        `${JSON.stringify(stdout.trim())}`,
    );
  return id;
}
