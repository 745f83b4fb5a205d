/**
 * The example's checkpoints. Layout under the checkpoint directory:
 *   stage_S/step_N/gen_K/… ShardedAdam's checkpoint of stage S (its data group's shards of the fp32 master
 *                         copy = the stage's layers, m and v), with its own manifest; re-saving a step writes
 *                         a new generation beside the committed one, so a crash mid-save never loses step N
 *   stage_S/model_step_N.bin  the stage's layers whole (fp32, little-endian, slice by slice), written by its
 *                         data rank 0: readable without the optimizer, and checked against it on resume
 *   train_step_N.json     what every rank shares: step, data position (epoch, cursor, the epoch's Rng
 *                         state), the layer split, the global batch
 *   latest.json           {step: N}, replaced atomically by world rank 0 after every stage committed step N
 *                         (then the ranks commit step N to the job: dist.checkpoint.commit)
 *
 * Each stage's ShardedAdam also keeps its own `latest`, but stages commit one after another; only the
 * top-level latest.json says that ALL stages have step N, so a failure between two stages' saves resumes
 * from the previous step everywhere. Every file here is replaced by rename, never rewritten in place
 * (writeFileDurably: the rename is on disk before latest.json may name what it wrote).
 */
import { readFile } from 'node:fs/promises';
import { Buffer } from 'node:buffer';
import { join } from 'node:path';
import { makeDirs, writeFileDurably, type Group, type ShardedAdam } from 'dtrain';
import type { DataPosition } from './data.js';

export interface TrainState {
  step: number;
  data: DataPosition;
  globalBatch: number;
  /** [first, end) layer index per pipeline stage */
  stages: Array<{ first: number; end: number }>;
  seed: number;
}

const LATEST = 'latest.json';

/** The stage's parameters as one little-endian fp32 byte string (this file format's only supported host order). */
function modelBytes(params: readonly Float32Array[]): Buffer {
  return Buffer.concat(params.map((p) => Buffer.from(p.buffer, p.byteOffset, p.byteLength)));
}

export async function saveCheckpoint(
  dir: string,
  stage: number,
  opt: ShardedAdam,
  params: readonly Float32Array[],
  groups: { world: Group; data: Group },
  state: TrainState,
): Promise<void> {
  const stageDir = join(dir, `stage_${stage}`);
  await makeDirs(stageDir);
  await opt.save(stageDir);
  if (groups.data.rank === 0)
    await writeFileDurably(join(stageDir, `model_step_${state.step}.bin`), modelBytes(params));
  const world = groups.world;
  await world.barrier();
  if (world.rank === 0) {
    await writeFileDurably(join(dir, `train_step_${state.step}.json`), JSON.stringify(state, null, 2) + '\n');
    await writeFileDurably(join(dir, LATEST), JSON.stringify({ step: state.step }) + '\n');
  }
  // nobody runs ahead of the commit: a failure right after this point resumes from this step
  await world.barrier();
}

/** The state of the last committed step, or undefined when there is none yet. */
export async function readLatest(dir: string): Promise<TrainState | undefined> {
  let text: string;
  try {
    text = await readFile(join(dir, LATEST), 'utf8');
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw e;
  }
  const { step } = JSON.parse(text) as { step: number };
  return readState(dir, step);
}

/** The state saved with step `step` (the job's last commit names it). */
export async function readState(dir: string, step: number): Promise<TrainState> {
  return JSON.parse(await readFile(join(dir, `train_step_${step}.json`), 'utf8')) as TrainState;
}

/** A checkpoint whose parts disagree (model file vs optimizer shards): not resumed from. */
export class CheckpointMismatchError extends Error {}

export async function loadCheckpoint(
  dir: string,
  stage: number,
  opt: ShardedAdam,
  params: readonly Float32Array[],
  state: TrainState,
): Promise<void> {
  const stageDir = join(dir, `stage_${stage}`);
  await opt.load(join(stageDir, `step_${state.step}`));
  const file = join(stageDir, `model_step_${state.step}.bin`);
  if (!(await readFile(file)).equals(modelBytes(params)))
    throw new CheckpointMismatchError(
      `${file} differs from the parameters in ${stageDir}/step_${state.step}: the checkpoint is inconsistent`,
    );
}
