/**
 * The worker environment contract (shared/design.md): torchrun's variables plus dtrain's. The plan holds
 * every value it can know; the few known only at launch are AUTO there, and workerEnv() fills them.
 */
import type { Plan } from './types.js';

/** Placeholder for a value the launch decides. */
export const AUTO = 'auto';

/** Variables dtrain sets itself: a config's env may not set them. */
export const WORKER_ENV_KEYS = [
  'RANK',
  'LOCAL_RANK',
  'WORLD_SIZE',
  'LOCAL_WORLD_SIZE',
  'GROUP_RANK',
  'GROUP_WORLD_SIZE',
  'ROLE_RANK',
  'ROLE_WORLD_SIZE',
  'ROLE_NAME',
  'MASTER_ADDR',
  'MASTER_PORT',
  'TORCHELASTIC_RESTART_COUNT',
  'TORCHELASTIC_MAX_RESTARTS',
  'TORCHELASTIC_RUN_ID',
  'TORCHELASTIC_USE_AGENT_STORE',
  'TORCHELASTIC_ERROR_FILE',
  'DTRAIN_STORE',
  'DTRAIN_RUN_ID',
  'DTRAIN_NODE_RANK',
  'DTRAIN_DATA_RANK',
  'DTRAIN_DATA_SIZE',
  'DTRAIN_PIPELINE_RANK',
  'DTRAIN_PIPELINE_SIZE',
  'DTRAIN_TENSOR_RANK',
  'DTRAIN_TENSOR_SIZE',
  'DTRAIN_ZERO_STAGE',
  'DTRAIN_MICROBATCHES',
  'DTRAIN_SCHEDULE',
  'DTRAIN_VIRTUAL_STAGES',
  'DTRAIN_BACKEND',
  'DTRAIN_COLLECTIVE_TIMEOUT',
  'DTRAIN_RENDEZVOUS_TIMEOUT',
] as const;

/** Contract variables that come from a config key: a config's env naming one is told to set that key. */
export const CONFIG_KEY_OF: Partial<Record<(typeof WORKER_ENV_KEYS)[number], string>> = {
  DTRAIN_BACKEND: 'backend',
  DTRAIN_ZERO_STAGE: 'parallelism.zero_stage',
  DTRAIN_MICROBATCHES: 'parallelism.microbatches',
  DTRAIN_SCHEDULE: 'parallelism.schedule',
  DTRAIN_COLLECTIVE_TIMEOUT: 'collective_timeout',
  DTRAIN_RENDEZVOUS_TIMEOUT: 'rendezvous.timeout',
  TORCHELASTIC_MAX_RESTARTS: 'restarts.max',
};

/** What the launcher knows once it is running; keys the plan already fixed (a given master port) stay. */
export interface LaunchFacts {
  masterAddr: string;
  masterPort: number;
  runId: string;
  restartCount: number;
  /** TORCHELASTIC_ERROR_FILE for this rank */
  errorFile: string;
  /** unix:/path of this node's agent store proxy */
  store: string;
}

/** The complete environment for one worker at launch: the plan's, with every AUTO filled from facts. */
export function workerEnv(plan: Plan, rank: number, facts: LaunchFacts): Record<string, string> {
  const r = plan.ranks[rank];
  if (!r || r.rank !== rank) throw new RangeError(`rank ${rank} is not in the plan (world size ${plan.world_size})`);
  const env = { ...r.env };
  const fill: Record<string, string> = {
    MASTER_ADDR: facts.masterAddr,
    MASTER_PORT: String(facts.masterPort),
    TORCHELASTIC_RUN_ID: facts.runId,
    DTRAIN_RUN_ID: facts.runId,
    TORCHELASTIC_RESTART_COUNT: String(facts.restartCount),
    TORCHELASTIC_ERROR_FILE: facts.errorFile,
    DTRAIN_STORE: facts.store,
  };
  for (const [k, v] of Object.entries(fill)) if (env[k] === AUTO) env[k] = v;
  return env;
}

// Which values are secret and how they are shown is one rule, in util/secret-names.ts.
export { isSecretName, maskSecrets } from '../util/secret-names.js';
