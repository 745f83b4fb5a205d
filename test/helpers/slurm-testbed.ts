/**
 * Integration-test access to scripts/testbed/slurm.sh: each test file starts its own one-node cluster in
 * its own folder on its own ports (so a developer's cluster, or another file's, never collides) and stops
 * it at the end. Needs root and Debian's slurm-wlm + munge; `slurmSkipReason()` says why a machine cannot
 * run these tests (CI sets DTRAIN_REQUIRE_INTEGRATION=1 to turn that into a failure).
 */
import { execFileSync, spawnSync, type SpawnSyncReturns } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

export const repoRoot = fileURLToPath(new URL('../..', import.meta.url));
const script = `${repoRoot}scripts/testbed/slurm.sh`;
export const dtrainBin = `${repoRoot}bin/dtrain`;

export function slurmSkipReason(): string | undefined {
  if (process.getuid?.() !== 0) return 'needs root (slurmd starts jobs as their owner)';
  for (const tool of ['/usr/sbin/slurmctld', '/usr/sbin/slurmd', '/usr/sbin/munged', '/usr/bin/sbatch']) {
    if (!existsSync(tool)) return `needs slurm-wlm and munge (${tool} missing)`;
  }
  if (!existsSync(`${repoRoot}dist/cli/submit.js`)) return 'needs the build (npm run build)';
  return undefined;
}

export interface SlurmTestbed {
  dir: string;
  /** process.env plus SLURM_CONF: give it to every Slurm client and to dtrain */
  env: NodeJS.ProcessEnv;
  down(): void;
}

export function slurmUp(tag: string): SlurmTestbed {
  const n = process.pid % 500;
  const dir = `/tmp/dtrain-slurm-${tag}-${process.pid}`;
  const env = {
    ...process.env,
    DTRAIN_SLURM_DIR: dir,
    DTRAIN_SLURM_CTLD_PORT: String(17000 + 2 * n),
    DTRAIN_SLURM_D_PORT: String(17001 + 2 * n),
  };
  const down = () => void spawnSync(script, ['down'], { env, stdio: 'ignore' });
  try {
    execFileSync(script, ['up'], { env, encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
  } catch (err) {
    down();
    throw err;
  }
  return { dir, env: { ...env, SLURM_CONF: `${dir}/slurm.conf` }, down };
}

/** Runs a Slurm client command (squeue, scontrol, scancel) against the testbed. */
export function slurm(tb: SlurmTestbed, argv: string[]): string {
  return execFileSync(argv[0], argv.slice(1), { env: tb.env, encoding: 'utf8' });
}

/** Runs the built CLI with the node running the tests (PATH need not contain node). */
export function dtrain(
  args: string[],
  opts: { env: NodeJS.ProcessEnv; cwd: string; timeoutMs?: number },
): SpawnSyncReturns<string> {
  return spawnSync(process.execPath, [dtrainBin, ...args], {
    env: opts.env,
    cwd: opts.cwd,
    encoding: 'utf8',
    timeout: opts.timeoutMs ?? 120_000,
  });
}

/**
 * Whether the built `dtrain launch` uses the allocation inside a Slurm job (src/launch/slurm's node
 * source, applySlurmAllocation): until it does, jobs from `dtrain submit` cannot run workers.
 */
export function launchKnowsSlurm(): boolean {
  return builtMentions('dist/launch/slurm/node-source.js', 'applySlurmAllocation');
}

/** Whether the built `dtrain launch` starts other nodes' agents with srun (startSrunNodes). */
export function launchUsesSrun(): boolean {
  return builtMentions('dist/launch/slurm/node-source.js', 'startSrunNodes');
}

function builtMentions(file: string, name: string): boolean {
  try {
    return readFileSync(`${repoRoot}${file}`, 'utf8').includes(name);
  } catch {
    return false;
  }
}
