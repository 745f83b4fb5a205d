/**
 * The pipeline schedule's vocabulary. A schedule is one ordered program per stage; compute ops name a
 * microbatch and a model chunk (chunks > 0 only with interleaved 1F1B, where each rank holds `virtualStages`
 * non-adjacent slices of the model), and the communication ops name the peer stage inside the pipeline group.
 */
export type ScheduleKind = '1f1b' | 'gpipe' | 'interleaved-1f1b';
export const scheduleKinds: readonly ScheduleKind[] = ['1f1b', 'gpipe', 'interleaved-1f1b'];

export interface ScheduleShape {
  kind: ScheduleKind;
  /** ranks in the pipeline group */
  stages: number;
  /** microbatches per training step */
  microbatches: number;
  /** model chunks per rank; 1 except for interleaved-1f1b */
  virtualStages?: number;
}

export interface ScheduleSpec extends ScheduleShape {
  /** this rank's index in the pipeline group */
  stage: number;
}

export type ComputeKind = 'forward' | 'backward';

export interface ComputeOp {
  op: ComputeKind;
  microbatch: number;
  chunk: number;
}

export type CommKind = 'sendActivation' | 'recvActivation' | 'sendGradient' | 'recvGradient';

/**
 * A transfer between two stages. `chunk` is the local chunk the data belongs to: the producing chunk for a
 * send, the consuming chunk for a receive. `tag` is the same on both ends of one message.
 */
export interface CommOp {
  op: CommKind;
  microbatch: number;
  chunk: number;
  peer: number;
  tag: number;
}

export type Instruction = ComputeOp | CommOp;

export interface StageSchedule {
  kind: ScheduleKind;
  stages: number;
  microbatches: number;
  virtualStages: number;
  stage: number;
  /** run in this order; every stage's program is sorted by one global key, so blocking p2p cannot deadlock */
  instructions: Instruction[];
  /** most forward activations held at once (forwards run minus backwards run), counted per chunk */
  peakInFlight: number;
}

export function isCompute(i: Instruction): i is ComputeOp {
  return i.op === 'forward' || i.op === 'backward';
}
