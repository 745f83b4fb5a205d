/**
 * Pipeline: runs one training step of a pipeline schedule on this rank of the pipeline group.
 *
 * Sends are issued without waiting (the output buffer is kept alive until the send settles); receives are
 * posted where the program places them, ahead of the compute that needs them, and waited on only by that
 * compute. Each forward's input and whatever the user's forward asks to keep are stashed until the matching
 * backward, then dropped. Gradients of the stage's parameters are the user's backward's to accumulate:
 * the executor calls it once per microbatch and never zeroes anything.
 *
 * A failed step (a peer gone, a timeout, a throwing stage function) leaves receives posted on the group; like
 * NCCL after an error, the pipeline group is then not fit for another step: fail the job.
 */
import { DtrainError, ExitCode } from '../../util/errors.js';
import type { Group } from '../types.js';
import { readWorkerConfig } from '../worker-env.js';
import { opLabel, pipelineSchedule } from './schedule.js';
import { chunkOfVirtual, stageOfVirtual, virtualStage } from './timeline.js';
import { isCompute, type CommOp, type Instruction, type ScheduleShape, type StageSchedule } from './types.js';

export type PipelineArray = Float32Array | Float64Array;

/** What a forward returns: the activation for the next stage, or (last stage) the microbatch's loss. */
export interface StageOutput {
  output?: PipelineArray;
  loss?: number;
  /** anything the backward needs (pre-activations, masks); stashed with the input until the backward */
  saved?: unknown;
}

export interface Stashed {
  /** the activation this forward received; null on the first stage, which reads its own microbatch */
  input: PipelineArray | null;
  saved: unknown;
  chunk: number;
  /**
   * true for this chunk's last backward of the step: the parameter gradients it accumulates are final once it
   * returns, and a backward may hand each layer's to the step's gradient reduction as it finishes it
   */
  last: boolean;
}

/**
 * Where finished gradients go (ShardedAdam.beginReduction's GradReduction): the executor marks chunk c's
 * gradient array (index c) ready after the chunk's last backward of the step.
 */
export interface GradientReadiness {
  ready(array: number, start?: number, end?: number): void;
}

export interface StepOptions {
  /** start the data group's gradient reduction during the backward: each chunk's gradients as they are final */
  gradients?: GradientReadiness;
}

type Awaitable<T> = T | Promise<T>;

export interface PipelineOpRecord {
  stage: number;
  op: Instruction['op'];
  microbatch: number;
  chunk: number;
  /** performance.now() when the op started (a send or receive: when it was posted) and when it finished */
  start: number;
  end: number;
}

export interface PipelineOptions {
  /** the pipeline group: its rank is this stage */
  group: Group;
  /**
   * this stage's program, or the schedule's shape (the program is then built for group.rank); default: the
   * job's schedule, microbatches and virtual stages (`dist.config`, from the environment) over the group's size
   */
  schedule?: StageSchedule | ScheduleShape;
  /**
   * elements in the activation leaving virtual stage k (chunk c of stage s is k = c·stages + s); its gradient has the
   * same size
   */
  activationSize: number | ((virtualStage: number) => number);
  /** element type of activations and gradients on the wire (default float32) */
  dtype?: 'float32' | 'float64';
  /** input is null on the first stage (chunk 0 of stage 0); the last stage returns { loss } */
  forward(input: PipelineArray | null, microbatch: number, chunk: number): Awaitable<StageOutput>;
  /**
   * gradOutput is null on the last stage (the loss starts the backward); returns the gradient of the input (ignored on
   * the first stage)
   */
  backward(
    gradOutput: PipelineArray | null,
    microbatch: number,
    stashed: Stashed,
  ): Awaitable<PipelineArray | null | void>;
  /** called after every op finishes, with its timing; for tests and profiles */
  onOp?: (record: PipelineOpRecord) => void;
  /** per send/receive; default: the group's collective timeout */
  timeoutMs?: number;
}

export interface StepResult {
  /** mean of the microbatch losses, on the rank holding the last chunk; undefined elsewhere */
  loss: number | undefined;
  losses: number[];
  /** compute ops in the order they ran: "F0", "B0", or "F3.1" with chunks */
  executed: string[];
  /** most activations held in the stash at once */
  peakStashed: number;
}

export class PipelineError extends DtrainError {
  constructor(message: string) {
    super(message, ExitCode.jobFailed);
  }
}

export class Pipeline {
  readonly schedule: StageSchedule;
  private readonly opts: PipelineOptions;
  private readonly Float: Float32ArrayConstructor | Float64ArrayConstructor;

  constructor(opts: PipelineOptions) {
    const given: StageSchedule | ScheduleShape = opts.schedule ?? scheduleShapeFromEnv(opts.group.size);
    const schedule = isStageSchedule(given) ? given : pipelineSchedule({ ...given, stage: opts.group.rank });
    if (schedule.stages !== opts.group.size || schedule.stage !== opts.group.rank) {
      throw new PipelineError(
        `the schedule is for stage ${schedule.stage} of ${schedule.stages}, but this rank is ` +
          `${opts.group.rank} of ${opts.group.size} in group "${opts.group.name}"`,
      );
    }
    this.schedule = schedule;
    this.opts = opts;
    this.Float = opts.dtype === 'float64' ? Float64Array : Float32Array;
  }

  /** Runs every microbatch's forward and backward once, in the schedule's order. */
  async step(opts: StepOptions = {}): Promise<StepResult> {
    return new StepRun(this.schedule, this.opts, this.Float, opts.gradients).run();
  }
}

function isStageSchedule(s: StageSchedule | ScheduleShape): s is StageSchedule {
  return Array.isArray((s as StageSchedule).instructions);
}

/**
 * The schedule `dtrain launch` put in the worker's environment (DTRAIN_SCHEDULE, DTRAIN_MICROBATCHES,
 * DTRAIN_VIRTUAL_STAGES, read by worker-env.ts; unset: the config's defaults) over `stages` stages.
 */
export function scheduleShapeFromEnv(stages: number, env: NodeJS.ProcessEnv = process.env): ScheduleShape {
  const c = readWorkerConfig(env);
  return { kind: c.schedule, stages, microbatches: c.microbatches, virtualStages: c.virtualStages };
}

const key = (microbatch: number, chunk: number) => microbatch * 65536 + chunk;

/** One step's state: posted receives, outputs waiting to be sent, the stash. */
class StepRun {
  private readonly stash = new Map<number, Stashed>();
  private readonly received = new Map<string, Promise<PipelineArray>>();
  /** outputs and input-gradients waiting for their send instruction, or (same rank) for the next chunk */
  private readonly produced = new Map<string, PipelineArray>();
  private readonly sends: Promise<void>[] = [];
  private failure: unknown;
  private peakStashed = 0;
  private readonly losses: number[] = [];
  private readonly executed: string[] = [];
  private readonly lastVs: number;
  /** backwards still to run per chunk: the one that brings it to 0 finishes the chunk's gradients */
  private readonly backwardsLeft: number[];

  constructor(
    private readonly s: StageSchedule,
    private readonly o: PipelineOptions,
    private readonly Float: Float32ArrayConstructor | Float64ArrayConstructor,
    private readonly gradients: GradientReadiness | undefined,
  ) {
    this.lastVs = s.stages * s.virtualStages - 1;
    this.backwardsLeft = Array.from({ length: s.virtualStages }, () => s.microbatches);
  }

  async run(): Promise<StepResult> {
    try {
      for (const ins of this.s.instructions) {
        if (this.failure !== undefined) throw this.failure;
        if (isCompute(ins)) {
          if (ins.op === 'forward') await this.forward(ins.microbatch, ins.chunk);
          else await this.backward(ins.microbatch, ins.chunk);
        } else if (ins.op === 'sendActivation' || ins.op === 'sendGradient') this.send(ins);
        else this.postRecv(ins);
      }
      await Promise.all(this.sends);
    } catch (err) {
      // let in-flight sends settle so none rejects unobserved after this step has already failed
      await Promise.allSettled(this.sends);
      throw err;
    }
    if (this.failure !== undefined) throw this.failure;
    if (this.stash.size > 0)
      throw new PipelineError(`step ended with ${this.stash.size} activations never consumed by a backward`);
    const holdsLoss = stageOfVirtual(this.s.stages, this.lastVs) === this.s.stage;
    return {
      loss: holdsLoss ? this.losses.reduce((a, b) => a + b, 0) / this.losses.length : undefined,
      losses: this.losses,
      executed: this.executed,
      peakStashed: this.peakStashed,
    };
  }

  private vs(chunk: number): number {
    return virtualStage(this.s.stages, this.s.stage, chunk);
  }

  private size(vs: number): number {
    const a = this.o.activationSize;
    return typeof a === 'number' ? a : a(vs);
  }

  private label(op: 'forward' | 'backward', microbatch: number, chunk: number): string {
    return opLabel({ op, microbatch, chunk }, this.s.kind === 'interleaved-1f1b');
  }

  private record(op: Instruction['op'], microbatch: number, chunk: number, start: number): void {
    this.o.onOp?.({ stage: this.s.stage, op, microbatch, chunk, start, end: performance.now() });
  }

  /** Where the input of (microbatch, chunk) comes from: a posted receive or this rank's previous chunk. */
  private async input(kind: 'act' | 'grad', microbatch: number, chunk: number): Promise<PipelineArray> {
    const k = `${kind}:${key(microbatch, chunk)}`;
    const local = this.produced.get(`${kind}-in:${key(microbatch, chunk)}`);
    if (local) {
      this.produced.delete(`${kind}-in:${key(microbatch, chunk)}`);
      return local;
    }
    const posted = this.received.get(k);
    if (!posted) {
      throw new PipelineError(
        `stage ${this.s.stage}: ${kind === 'act' ? 'forward' : 'backward'} of microbatch ${microbatch} ` +
          `chunk ${chunk} has no posted receive for its input (the schedule is inconsistent)`,
      );
    }
    this.received.delete(k);
    return posted;
  }

  private async forward(microbatch: number, chunk: number): Promise<void> {
    const vs = this.vs(chunk);
    const input = vs === 0 ? null : await this.input('act', microbatch, chunk);
    const start = performance.now();
    const out = await this.o.forward(input, microbatch, chunk);
    this.executed.push(this.label('forward', microbatch, chunk));
    this.stash.set(key(microbatch, chunk), { input, saved: out?.saved, chunk, last: false });
    this.peakStashed = Math.max(this.peakStashed, this.stash.size);
    if (vs === this.lastVs) {
      if (typeof out?.loss !== 'number')
        throw new PipelineError(`stage ${this.s.stage}: the last stage's forward must return { loss }`);
      this.losses.push(out.loss);
    } else {
      const size = this.size(vs);
      if (!out?.output || out.output.length !== size) {
        throw new PipelineError(
          `stage ${this.s.stage}: forward of microbatch ${microbatch} chunk ${chunk} must return { output } ` +
            `with ${size} elements, got ${out?.output ? out.output.length : 'none'}`,
        );
      }
      this.handOn('act', vs + 1, microbatch, chunk, out.output);
    }
    this.record('forward', microbatch, chunk, start);
  }

  private async backward(microbatch: number, chunk: number): Promise<void> {
    const vs = this.vs(chunk);
    const stashed = this.stash.get(key(microbatch, chunk));
    if (!stashed)
      throw new PipelineError(
        `stage ${this.s.stage}: backward of microbatch ${microbatch} chunk ${chunk} before its forward`,
      );
    const gradOutput = vs === this.lastVs ? null : await this.input('grad', microbatch, chunk);
    const start = performance.now();
    stashed.last = --this.backwardsLeft[chunk] === 0;
    const gradInput = await this.o.backward(gradOutput, microbatch, stashed);
    this.executed.push(this.label('backward', microbatch, chunk));
    this.stash.delete(key(microbatch, chunk));
    if (vs > 0) {
      const size = this.size(vs - 1);
      if (!gradInput || gradInput.length !== size) {
        throw new PipelineError(
          `stage ${this.s.stage}: backward of microbatch ${microbatch} chunk ${chunk} must return the ` +
            `input's gradient with ${size} elements, got ${gradInput ? gradInput.length : 'none'}`,
        );
      }
      this.handOn('grad', vs - 1, microbatch, chunk, gradInput);
    }
    this.record('backward', microbatch, chunk, start);
    if (stashed.last) this.gradients?.ready(chunk);
  }

  /** Keeps a result for its send instruction, or gives it straight to the next chunk when that lives here. */
  private handOn(
    kind: 'act' | 'grad',
    consumerVs: number,
    microbatch: number,
    chunk: number,
    data: PipelineArray,
  ): void {
    if (stageOfVirtual(this.s.stages, consumerVs) === this.s.stage) {
      this.produced.set(`${kind}-in:${key(microbatch, chunkOfVirtual(this.s.stages, consumerVs))}`, data);
    } else {
      this.produced.set(`${kind}-out:${key(microbatch, chunk)}`, data);
    }
  }

  private send(ins: CommOp): void {
    const kind = ins.op === 'sendActivation' ? 'act' : 'grad';
    const k = `${kind}-out:${key(ins.microbatch, ins.chunk)}`;
    const data = this.produced.get(k);
    if (!data)
      throw new PipelineError(
        `stage ${this.s.stage}: ${ins.op} of microbatch ${ins.microbatch} before it was computed`,
      );
    this.produced.delete(k);
    const start = performance.now();
    // the closure keeps `data` alive until the transport is done with it
    const sent = this.o.group.send(data, { peer: ins.peer, tag: ins.tag, ...this.wire() }).then(
      () => this.record(ins.op, ins.microbatch, ins.chunk, start),
      (err) => this.fail(err, ins),
    );
    this.sends.push(sent);
  }

  private postRecv(ins: CommOp): void {
    const kind = ins.op === 'recvActivation' ? 'act' : 'grad';
    // an activation arriving for chunk c left virtual stage vs-1; a gradient, vs+1: both have that boundary's size
    const vs = this.vs(ins.chunk);
    const buf = new this.Float(this.size(kind === 'act' ? vs - 1 : vs));
    const start = performance.now();
    const got = this.o.group.recv(buf, { peer: ins.peer, tag: ins.tag, ...this.wire() }).then(
      () => {
        this.record(ins.op, ins.microbatch, ins.chunk, start);
        return buf;
      },
      (err) => {
        this.fail(err, ins);
        throw this.failure;
      },
    );
    got.catch(() => undefined); // observed by the compute that awaits it, or by run()'s failure check
    this.received.set(`${kind}:${key(ins.microbatch, ins.chunk)}`, got);
  }

  private wire() {
    return this.o.timeoutMs === undefined ? {} : { timeoutMs: this.o.timeoutMs };
  }

  private fail(err: unknown, ins: CommOp): void {
    if (this.failure !== undefined) return;
    const why = err instanceof Error ? err.message : String(err);
    this.failure = new PipelineError(
      `stage ${this.s.stage}: ${ins.op} of microbatch ${ins.microbatch} chunk ${ins.chunk} with stage ` +
        `${ins.peer} failed: ${why}`,
    );
  }
}
