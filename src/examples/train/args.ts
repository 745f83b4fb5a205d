/** The training program's command line (after `--` in `dtrain launch cfg.yaml -- --steps 100`). */
import { parseArgs } from 'node:util';

export interface TrainArgs {
  steps: number;
  globalBatch: number;
  lr: number;
  weightDecay: number;
  seed: number;
  hidden: number;
  layers: number;
  inputs: number;
  classes: number;
  trainSamples: number;
  evalSamples: number;
  logEvery: number;
  /** steps run before the timed part (train_seconds, samples_per_second, cpu_seconds_all_ranks) starts */
  warmupSteps: number;
  checkpointDir: string | undefined;
  checkpointEvery: number;
  reportDir: string | undefined;
  /** false: average the gradients after the backward instead of during it (--no-overlap) */
  overlap: boolean;
}

/** A bad command line: the program prints one line and exits 2 (the usage code dtrain itself uses). */
export class TrainUsageError extends Error {}

const numeric = {
  steps: ['steps', 300],
  globalBatch: ['global-batch', 128],
  lr: ['lr', 3e-3],
  weightDecay: ['weight-decay', 0],
  seed: ['seed', 1234],
  hidden: ['hidden', 96],
  layers: ['layers', 6],
  inputs: ['inputs', 32],
  classes: ['classes', 8],
  trainSamples: ['train-samples', 16384],
  evalSamples: ['eval-samples', 1024],
  logEvery: ['log-every', 25],
  warmupSteps: ['warmup-steps', 0],
  checkpointEvery: ['checkpoint-every', 0],
} as const satisfies Record<string, readonly [string, number]>;

const usage =
  'options: ' +
  Object.values(numeric)
    .map(([flag, d]) => `--${flag} N (${d})`)
    .join(', ') +
  ', --checkpoint-dir DIR, --report-dir DIR, --no-overlap';

export function parseTrainArgs(argv: string[]): TrainArgs {
  const options: Record<string, { type: 'string' | 'boolean' }> = {
    'checkpoint-dir': { type: 'string' },
    'report-dir': { type: 'string' },
    'no-overlap': { type: 'boolean' },
  };
  for (const [flag] of Object.values(numeric)) options[flag] = { type: 'string' };
  let values: Record<string, string | boolean | undefined>;
  try {
    values = parseArgs({ args: argv, options, strict: true, allowPositionals: false }).values;
  } catch (e) {
    throw new TrainUsageError(`${(e as Error).message}; ${usage}`);
  }
  const out: Record<string, unknown> = {};
  for (const [key, [flag, fallback]] of Object.entries(numeric)) {
    const raw = values[flag] as string | undefined;
    const v = raw === undefined ? fallback : Number(raw);
    if (!Number.isFinite(v) || v < 0) throw new TrainUsageError(`--${flag} ${raw}: expected a non-negative number`);
    if (key !== 'lr' && key !== 'weightDecay' && !Number.isInteger(v))
      throw new TrainUsageError(`--${flag} ${raw}: expected a whole number`);
    out[key] = v;
  }
  const args = {
    ...out,
    checkpointDir: values['checkpoint-dir'],
    reportDir: values['report-dir'],
    overlap: values['no-overlap'] !== true,
  } as TrainArgs;
  if (args.checkpointEvery > 0 && !args.checkpointDir)
    throw new TrainUsageError('--checkpoint-every needs --checkpoint-dir');
  if (args.warmupSteps > 0 && args.warmupSteps >= args.steps)
    throw new TrainUsageError(`--warmup-steps ${args.warmupSteps}: must be fewer than --steps ${args.steps}`);
  if (args.layers < 4) throw new TrainUsageError(`--layers ${args.layers}: the example needs at least 4 layers`);
  if (args.globalBatch < 1 || args.steps < 1)
    throw new TrainUsageError('--global-batch and --steps must be at least 1');
  return args;
}
