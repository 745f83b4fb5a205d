/**
 * ShardedAdam: AdamW with its states sharded over a data-parallel group, as in ZeRO (Rajbhandari et al.).
 * Stage 1 shards m, v (and the fp32 master copy of 16-bit params): gradients are averaged in place with
 * all-reduce, each rank updates its shard, parameters are all-gathered. Stage 2 also shards gradients:
 * reduce-scatter leaves each rank only its shard of the averaged gradients. All communication goes in
 * buckets of at most `bucketBytes`, so the extra memory beyond the shards stays bounded.
 * Stage 0 is DDP: the all-reduce as in stage 1, then every rank updates every parameter (no all-gather).
 *
 * beginReduction() starts those same buckets' collectives while the backward still runs (grad-reduction.ts);
 * step() then waits for them instead of reducing. The values and the shards are the same either way.
 */
import type { Checkpoints, Group } from '../types.js';
import { readWorkerConfig } from '../worker-env.js';
import { OptimizerUsageError } from './errors.js';
import { optimNative, type KernelDType, type OptimNative, type SimdPath } from './native.js';
import {
  flatBuckets,
  intersect,
  partition,
  shardBuckets,
  shardRange,
  type Partition,
  type Range,
} from './partition.js';
import { Segments, type Elements } from './segments.js';
import { loadShards, saveShards, type Hyperparameters, type ShardViews } from './checkpoint.js';
import { completedInline } from '../native.js';
import { GradReduction, type OverlapSink, type OverlapSummary, type ReductionBucket } from './grad-reduction.js';

export type ParamDType = KernelDType;

export interface ShardedAdamOptions {
  group: Group;
  /**
   * default: the job's parallelism.zero_stage (`dist.config.zeroStage`). 0: every rank keeps the whole
   * optimizer state and updates every parameter after the gradient all-reduce (DDP: no parameter all-gather);
   * 1: each rank updates its shard, then the shards are all-gathered; 2: the gradients are reduce-scattered too.
   */
  stage?: 0 | 1 | 2;
  lr?: number;
  betas?: readonly [number, number];
  eps?: number;
  weightDecay?: number;
  /** largest buffer one collective moves (default: DTRAIN_BUCKET_CAP_MB MiB, `dist.config.bucketCapMb`) */
  bucketBytes?: number;
  /** clip gradients to this global L2 norm (computed across all shards) before the update */
  maxGradNorm?: number;
  /** element type of the params: needed for Uint16Array params ('bfloat16' | 'float16') */
  dtype?: ParamDType;
  /** force a kernel path (tests); default: DTRAIN_SIMD, then the CPU */
  simd?: SimdPath;
  /** kernel threads; default OMP_NUM_THREADS, else 1 */
  threads?: number;
  /**
   * Where communication buffers come from: pass `dist.alloc` so the bucket buffers and the stage-2 gradient
   * shard live in shared memory and same-host collectives copy less. Default: ordinary typed arrays.
   */
  alloc?: BufferAllocator;
  /**
   * Pass `dist.checkpoint` to make save() commit the step once `latest` names it, so the job resumes from
   * it. The commit is collective over the world: every rank's optimizer saves at that step (a program
   * that saves more than the optimizer commits itself instead, after its last file).
   */
  checkpoint?: Pick<Checkpoints, 'commit'>;
}

export interface BufferAllocator {
  <T extends Float32Array | Uint16Array>(
    type: { new (buffer: ArrayBuffer, byteOffset: number, length: number): T; BYTES_PER_ELEMENT: number },
    length: number,
  ): T;
}

/** What this rank holds, in bytes. `states` is what stateBytes reports. */
export interface OptimizerMemory {
  /** m and v, plus the fp32 master copy for 16-bit params: this rank's shard only (stage 0: all of them) */
  states: number;
  /** stage 2: this rank's shard of the averaged gradients (0 for stage 1, which averages in place) */
  gradShard: number;
  /** staging buffers for bucketed communication: bounded by bucketBytes, independent of the model */
  buffers: number;
}

/** torch.nn.utils.clip_grad_norm_ adds this to the norm before dividing. */
const CLIP_EPS = 1e-6;

function elementBytes(t: ParamDType): number {
  return t === 'float32' ? 4 : 2;
}

const plainAllocator: BufferAllocator = (type, length) =>
  new type(new ArrayBuffer(length * type.BYTES_PER_ELEMENT), 0, length);

function positive(name: string, x: number | undefined, fallback: number): number {
  const v = x ?? fallback;
  if (typeof v !== 'number' || !Number.isFinite(v) || v <= 0)
    throw new OptimizerUsageError(`${name} must be a positive number, got ${x}`);
  return v;
}

export class ShardedAdam {
  readonly group: Group;
  private readonly checkpoint: Pick<Checkpoints, 'commit'> | undefined;
  readonly stage: 0 | 1 | 2;
  readonly dtype: ParamDType;
  /** the checkpoint's layout, and the shards of stages 1 and 2 */
  readonly partition: Partition;
  /** the flat elements this rank updates (stage 0: all of them) */
  readonly shard: Range;
  /** the flat elements this rank writes to a checkpoint: its shard of `partition` at every stage */
  private readonly savedShard: Range;
  readonly bucketBytes: number;
  lr: number;
  beta1: number;
  beta2: number;
  eps: number;
  weightDecay: number;
  maxGradNorm: number | undefined;
  /** updates applied so far (torch's `step` state) */
  stepCount = 0;
  /** the global gradient norm of the last step, when clipping is on */
  lastGradNorm: number | undefined;

  private readonly native: OptimNative;
  private readonly params: Segments;
  private readonly m: Float32Array;
  private readonly v: Float32Array;
  private readonly master: Float32Array | undefined;
  private gradShard: Float32Array | undefined;
  private reduceStaging: Float32Array | undefined;
  private gatherIn: Elements | undefined;
  private gatherOut: Elements | undefined;
  private readonly simd: SimdPath;
  private readonly threads: number;
  private readonly alloc: BufferAllocator;
  private busy = false;
  /** the step's reduction started by beginReduction(), and the grads it was started for */
  private reduction: { run: GradReduction; grads: readonly Elements[] } | undefined;
  /** one staging buffer per bucket for overlapped reductions (their collectives are in flight together) */
  private readonly overlapStaging: Float32Array[] = [];

  constructor(params: Elements | readonly Elements[], opts: ShardedAdamOptions) {
    if (!opts || !opts.group) throw new OptimizerUsageError('options.group is required');
    const list = Array.isArray(params) ? [...(params as Elements[])] : [params as Elements];
    if (list.length === 0) throw new OptimizerUsageError('no parameters');
    const first = list[0];
    const isF32 = first instanceof Float32Array;
    for (const a of list) {
      if (!(a instanceof Float32Array) && !(a instanceof Uint16Array)) {
        throw new OptimizerUsageError('params must be Float32Array or Uint16Array (bf16/fp16 with options.dtype)');
      }
      if (a instanceof Float32Array !== isF32) throw new OptimizerUsageError('all params must have one element type');
    }
    if (isF32 && (opts.dtype ?? 'float32') !== 'float32') {
      throw new OptimizerUsageError(`Float32Array params cannot have dtype ${opts.dtype}`);
    }
    if (!isF32 && opts.dtype !== 'bfloat16' && opts.dtype !== 'float16') {
      throw new OptimizerUsageError("Uint16Array params need options.dtype 'bfloat16' or 'float16'");
    }
    this.dtype = isF32 ? 'float32' : opts.dtype!;
    const stage = opts.stage ?? readWorkerConfig().zeroStage;
    if (stage !== 0 && stage !== 1 && stage !== 2)
      throw new OptimizerUsageError(`stage must be 0, 1 or 2, got ${String(opts.stage)}`);
    this.stage = stage;
    this.group = opts.group;
    this.checkpoint = opts.checkpoint;
    this.lr = positive('lr', opts.lr, 1e-3);
    const [b1, b2] = opts.betas ?? [0.9, 0.999];
    for (const [name, b] of [
      ['betas[0]', b1],
      ['betas[1]', b2],
    ] as const) {
      if (!(b >= 0 && b < 1)) throw new OptimizerUsageError(`${name} must be in [0, 1), got ${b}`);
    }
    this.beta1 = b1;
    this.beta2 = b2;
    this.eps = positive('eps', opts.eps, 1e-8);
    this.weightDecay = opts.weightDecay ?? 1e-2;
    if (!(this.weightDecay >= 0)) throw new OptimizerUsageError(`weightDecay must be >= 0, got ${opts.weightDecay}`);
    this.maxGradNorm = opts.maxGradNorm === undefined ? undefined : positive('maxGradNorm', opts.maxGradNorm, 1);
    const bucketBytes = opts.bucketBytes ?? readWorkerConfig().bucketCapMb * 1024 * 1024;
    this.bucketBytes = Math.floor(positive('bucketBytes', bucketBytes, 0));
    this.simd = opts.simd ?? 'auto';
    this.threads = opts.threads ?? 0;
    this.alloc = opts.alloc ?? plainAllocator;

    this.native = optimNative();
    this.native.adamwSimd(this.simd); // a forced path this CPU lacks fails here, not mid-training
    this.params = new Segments<Elements>(list);
    this.partition = partition(this.params.numel, this.group.size);
    this.savedShard = shardRange(this.partition, this.group.rank);
    this.shard = stage === 0 ? { start: 0, end: this.params.numel } : this.savedShard;
    const own = this.shard.end - this.shard.start;
    this.m = new Float32Array(own);
    this.v = new Float32Array(own);
    if (this.dtype !== 'float32') {
      this.master = new Float32Array(own);
      this.forOwnParamPieces((param, at, len) => {
        this.native.convertElements({
          src: param,
          srcType: this.dtype,
          dst: this.master!.subarray(at, at + len),
          dstType: 'float32',
        });
      });
    }
  }

  /** This rank's optimizer memory in bytes (m, v and the master copy of its shard): ≈ 1/N of unsharded at stage 1+. */
  get stateBytes(): number {
    return this.m.byteLength + this.v.byteLength + (this.master?.byteLength ?? 0);
  }

  memory(): OptimizerMemory {
    return {
      states: this.stateBytes,
      gradShard: this.gradShard?.byteLength ?? 0,
      buffers:
        (this.reduceStaging?.byteLength ?? 0) +
        (this.gatherIn?.byteLength ?? 0) +
        (this.gatherOut?.byteLength ?? 0) +
        this.overlapStaging.reduce((n, b) => n + (b?.byteLength ?? 0), 0),
    };
  }

  /** The kernel path steps take ('scalar' | 'avx2'). */
  get simdPath(): 'scalar' | 'avx2' {
    return this.native.adamwSimd(this.simd);
  }

  /**
   * One AdamW step from this rank's local gradients (same flat layout as the params: one array or a list of
   * the same total length). Gradients are averaged over the group; params end up updated on every rank.
   * Stage 1 leaves the averaged gradients in `grads`, as DDP does; stage 2 leaves `grads` untouched.
   */
  async step(grads: Elements | readonly Elements[]): Promise<void> {
    const g = this.checkGrads(grads);
    const started = this.reduction;
    if (started && !sameArrays(started.grads, g.segments.arrays)) {
      this.reduction = undefined;
      throw new OptimizerUsageError('step() got other grads than beginReduction() was given');
    }
    this.enter('step');
    try {
      this.reduction = undefined;
      if (started) await started.run.finish();
      else if (this.stage !== 2) await this.allReduceGrads(g.segments);
      else await this.reduceScatterGrads(g.segments);
      let scale = 1;
      if (this.maxGradNorm !== undefined) {
        const norm = await this.globalGradNorm(g.segments);
        this.lastGradNorm = norm;
        const coef = this.maxGradNorm / (norm + CLIP_EPS);
        if (coef < 1) scale = coef;
      }
      const step = this.stepCount + 1;
      this.updateShard(g.segments, step, scale);
      this.stepCount = step;
      await this.gatherParams();
    } finally {
      this.busy = false;
    }
  }

  /**
   * Starts this step's gradient averaging ahead of step(grads), bucket by bucket as the backward finishes them:
   * call ready(array, start?, end?) on the result when those gradient elements are final for the step (after
   * the last microbatch's backward of that layer). Each bucket (bucketBytes) starts its collective once all of
   * it is ready, in one order that every rank shares; step(grads) marks the rest ready, waits, and updates.
   * The grads must not change once marked ready. With `sink`, each finished reduction reports what it overlapped.
   */
  beginReduction(grads: Elements | readonly Elements[], sink?: OverlapSink): GradReduction {
    const g = this.checkGrads(grads);
    if (this.busy || this.reduction)
      throw new OptimizerUsageError('beginReduction() called while a step, save, load or reduction is running');
    const buckets = this.stage !== 2 ? this.allReduceBuckets(g.segments) : this.reduceScatterBuckets(g.segments);
    // the backward finishes the last layers first: post from the end of the flat space
    const run = new GradReduction(
      g.segments,
      buckets.reverse(),
      sink ?? overlapSinkOf(this.group, this.stage !== 2 ? 'allReduce' : 'reduceScatter'),
    );
    this.reduction = { run, grads: g.segments.arrays };
    return run;
  }

  /**
   * Writes a new generation `dir/step_N/gen_K/` (one file per rank, manifest last), points `dir/latest` at it,
   * then commits step N when constructed with `checkpoint` (a refused commit throws; a resize exits 75).
   */
  async save(dir: string): Promise<string> {
    this.enter('save');
    try {
      const saved = await saveShards(dir, {
        group: this.group,
        partition: this.partition,
        shard: this.savedShard,
        step: this.stepCount,
        paramDtype: this.dtype,
        stage: this.stage,
        hyper: this.hyper(),
        views: this.shardViews(this.savedShard),
      });
      await this.checkpoint?.commit(this.stepCount);
      return saved;
    } finally {
      this.busy = false;
    }
  }

  /**
   * Loads `dir` (a checkpoint root with `latest`, or one `step_N/`), re-partitioning the saved shards to this
   * group's size; restores params, m, v, master, the step counter and the hyperparameters, as torch's
   * load_state_dict does. Returns the step directory loaded. Shards are read into scratch arrays first
   * (this rank's shard: 12 bytes a parameter) and copied in only once every rank has read its part, so a
   * failed load (an error on any rank fails it on every rank) leaves params, states and step as they were.
   */
  async load(dir: string): Promise<string> {
    this.enter('load');
    try {
      const target = this.shardViews();
      const scratch: ShardViews = {
        master: target.master.map((a) => new Float32Array(a.length)),
        m: target.m.map((a) => new Float32Array(a.length)),
        v: target.v.map((a) => new Float32Array(a.length)),
      };
      const loaded = await loadShards(dir, {
        group: this.group,
        shard: this.shard,
        numel: this.partition.numel,
        paramDtype: this.dtype,
        views: scratch,
      });
      for (const name of ['master', 'm', 'v'] as const) target[name].forEach((a, i) => a.set(scratch[name][i]));
      this.stepCount = loaded.step;
      this.lr = loaded.hyper.lr;
      this.beta1 = loaded.hyper.beta1;
      this.beta2 = loaded.hyper.beta2;
      this.eps = loaded.hyper.eps;
      this.weightDecay = loaded.hyper.weightDecay;
      if (this.master) {
        this.forOwnParamPieces((param, at, len) => {
          this.native.convertElements({
            src: this.master!.subarray(at, at + len),
            srcType: 'float32',
            dst: param,
            dstType: this.dtype,
          });
        });
      }
      await this.gatherParams();
      return loaded.stepDir;
    } finally {
      this.busy = false;
    }
  }

  private enter(what: string): void {
    if (this.busy) throw new OptimizerUsageError(`${what}() called while another step, save or load is running`);
    this.busy = true;
  }

  private hyper(): Hyperparameters {
    return { lr: this.lr, beta1: this.beta1, beta2: this.beta2, eps: this.eps, weightDecay: this.weightDecay };
  }

  /**
   * m, v and the fp32 master of `range` (inside this rank's shard) as lists of views in flat order (for fp32
   * params: the params).
   */
  private shardViews(range: Range = this.shard): ShardViews {
    const from = range.start - this.shard.start;
    const to = range.end - this.shard.start;
    const master: Float32Array[] = [];
    if (this.master) master.push(this.master.subarray(from, to));
    else this.forOwnParamPieces((param) => master.push(param as Float32Array), range);
    return { master, m: [this.m.subarray(from, to)], v: [this.v.subarray(from, to)] };
  }

  /** Calls fn for each piece of the params inside `range` (this rank's shard), with its offset inside the shard. */
  private forOwnParamPieces(fn: (param: Elements, at: number, len: number) => void, range: Range = this.shard): void {
    for (const p of this.params.pieces(range)) {
      fn(
        this.params.arrays[p.index].subarray(p.local.start, p.local.end),
        p.flat.start - this.shard.start,
        p.flat.end - p.flat.start,
      );
    }
  }

  private checkGrads(grads: Elements | readonly Elements[]): { segments: Segments } {
    const list = Array.isArray(grads) ? [...(grads as Elements[])] : [grads as Elements];
    const f32 = list.every((a) => a instanceof Float32Array);
    const u16 = list.every((a) => a instanceof Uint16Array);
    if (!f32 && !u16)
      throw new OptimizerUsageError('grads must all be Float32Array, or all Uint16Array in the params dtype');
    if (u16 && this.dtype === 'float32') throw new OptimizerUsageError('fp32 params need Float32Array grads');
    const segments = new Segments<Elements>(list);
    if (segments.numel !== this.params.numel) {
      throw new OptimizerUsageError(`grads have ${segments.numel} elements, params ${this.params.numel}`);
    }
    return { segments };
  }

  private gradType(a: Elements): KernelDType {
    return a instanceof Float32Array ? 'float32' : this.dtype;
  }

  /** Copies (and widens) grads[range] into an fp32 buffer at `at`; zero-fills up to `len` (the padding). */
  private gradsToF32(g: Segments, range: Range | undefined, dst: Float32Array, at: number, len: number): void {
    let filled = 0;
    if (range) {
      for (const p of g.pieces(range)) {
        const src = g.arrays[p.index].subarray(p.local.start, p.local.end);
        const to = dst.subarray(at + p.flat.start - range.start, at + p.flat.end - range.start);
        this.native.convertElements({ src, srcType: this.gradType(src), dst: to, dstType: 'float32' });
      }
      filled = range.end - range.start;
    }
    if (filled < len) dst.fill(0, at + filled, at + len);
  }

  /** Stages 0 and 1: average the full gradients in place, bucket by bucket (zero-copy for a one-array fp32 bucket). */
  private async allReduceGrads(g: Segments): Promise<void> {
    if (this.group.size === 1) return;
    const buckets = flatBuckets(g.numel, 4, this.bucketBytes);
    for (const b of buckets) {
      const direct = g.contiguous(b);
      if (direct instanceof Float32Array) {
        await this.group.allReduce(direct, { op: 'avg' });
        continue;
      }
      const len = b.end - b.start;
      this.reduceStaging ??= this.alloc(Float32Array, buckets[0].end);
      const staging = this.reduceStaging.subarray(0, len);
      this.gradsToF32(g, b, staging, 0, len);
      await this.group.allReduce(staging, { op: 'avg' });
      for (const p of g.pieces(b)) {
        const dst = g.arrays[p.index].subarray(p.local.start, p.local.end);
        const src = staging.subarray(p.flat.start - b.start, p.flat.end - b.start);
        this.native.convertElements({ src, srcType: 'float32', dst, dstType: this.gradType(dst) });
      }
    }
  }

  /** Stage 2: each bucket gathers every rank's chunk of its shard into one buffer; reduce-scatter averages it. */
  private async reduceScatterGrads(g: Segments): Promise<void> {
    const { world, shardSize } = this.partition;
    this.gradShard ??= this.alloc(Float32Array, shardSize);
    if (world === 1) {
      this.gradsToF32(g, this.shard, this.gradShard, 0, shardSize);
      return;
    }
    const buckets = shardBuckets(this.partition, 4, this.bucketBytes);
    const chunk = buckets[0].end;
    this.reduceStaging ??= this.alloc(Float32Array, world * chunk);
    for (const b of buckets) {
      const len = b.end - b.start;
      const staging = this.reduceStaging.subarray(0, world * len);
      for (let r = 0; r < world; r++) {
        const base = r * shardSize;
        const range = intersect({ start: base + b.start, end: base + b.end }, { start: 0, end: g.numel });
        this.gradsToF32(g, range, staging, r * len, len);
      }
      await this.group.reduceScatter(staging, this.gradShard.subarray(b.start, b.end), { op: 'avg' });
    }
  }

  private stagingFor(bucket: number, length: number): Float32Array {
    const have = this.overlapStaging[bucket];
    if (have && have.length >= length) return have.subarray(0, length);
    this.overlapStaging[bucket] = this.alloc(Float32Array, length);
    return this.overlapStaging[bucket];
  }

  /** Stage 1's buckets as an overlapped reduction posts them: the same ranges allReduceGrads uses. */
  private allReduceBuckets(g: Segments): ReductionBucket[] {
    if (this.group.size === 1) return [];
    return flatBuckets(g.numel, 4, this.bucketBytes).map((b, i) => ({
      needs: [b],
      bytes: (b.end - b.start) * 4,
      post: () => {
        const direct = g.contiguous(b);
        if (direct instanceof Float32Array) return this.group.allReduce(direct, { op: 'avg' });
        const len = b.end - b.start;
        const staging = this.stagingFor(i, len);
        this.gradsToF32(g, b, staging, 0, len);
        const copyBack = () => {
          for (const p of g.pieces(b)) {
            const dst = g.arrays[p.index].subarray(p.local.start, p.local.end);
            const src = staging.subarray(p.flat.start - b.start, p.flat.end - b.start);
            this.native.convertElements({ src, srcType: 'float32', dst, dstType: this.gradType(dst) });
          }
        };
        const reduced = this.group.allReduce(staging, { op: 'avg' });
        if (reduced !== completedInline) return reduced.then(copyBack);
        copyBack();
        return reduced;
      },
    }));
  }

  /** Stage 2's buckets as an overlapped reduction posts them: the same chunks reduceScatterGrads uses. */
  private reduceScatterBuckets(g: Segments): ReductionBucket[] {
    const { world, shardSize } = this.partition;
    this.gradShard ??= this.alloc(Float32Array, shardSize);
    const shard = this.gradShard;
    if (world === 1)
      return [
        {
          needs: [{ start: 0, end: g.numel }],
          bytes: 0,
          post: () => {
            this.gradsToF32(g, this.shard, shard, 0, shardSize);
            return completedInline;
          },
        },
      ];
    return shardBuckets(this.partition, 4, this.bucketBytes).map((b, i) => {
      const len = b.end - b.start;
      const ranges = Array.from({ length: world }, (_, r) =>
        intersect({ start: r * shardSize + b.start, end: r * shardSize + b.end }, { start: 0, end: g.numel }),
      );
      return {
        needs: ranges.filter((r): r is Range => r !== undefined),
        bytes: world * len * 4,
        post: () => {
          const staging = this.stagingFor(i, world * len);
          ranges.forEach((range, r) => this.gradsToF32(g, range, staging, r * len, len));
          return this.group.reduceScatter(staging, shard.subarray(b.start, b.end), { op: 'avg' });
        },
      };
    });
  }

  /** L2 norm of the averaged gradients over all shards: local sums of squares, summed over the group. */
  private async globalGradNorm(g: Segments): Promise<number> {
    let local = 0;
    const own = this.shard.end - this.shard.start;
    if (this.stage === 2) {
      local = this.native.sumSquares({
        data: this.gradShard!.subarray(0, own),
        dtype: 'float32',
        simd: this.simd,
        threads: this.threads,
      });
    } else {
      for (const p of g.pieces(this.shard)) {
        const data = g.arrays[p.index].subarray(p.local.start, p.local.end);
        local += this.native.sumSquares({ data, dtype: this.gradType(data), simd: this.simd, threads: this.threads });
      }
    }
    // stage 0 summed every element of the averaged gradients already
    if (this.group.size === 1 || this.stage === 0) return Math.sqrt(local);
    const total = new Float64Array([local]);
    await this.group.allReduce(total, { op: 'sum' });
    return Math.sqrt(total[0]);
  }

  /** The fused kernel over each piece of this shard (pieces split at param and grad array boundaries). */
  private updateShard(g: Segments, step: number, gradScale: number): void {
    const common = {
      paramType: this.dtype,
      lr: this.lr,
      beta1: this.beta1,
      beta2: this.beta2,
      eps: this.eps,
      weightDecay: this.weightDecay,
      step,
      gradScale,
      simd: this.simd,
      threads: this.threads,
    };
    const s0 = this.shard.start;
    for (const pp of this.params.pieces(this.shard)) {
      const paramArr = this.params.arrays[pp.index];
      const pieces: Array<{ flat: Range; grad: Elements }> =
        this.stage === 2
          ? [{ flat: pp.flat, grad: this.gradShard!.subarray(pp.flat.start - s0, pp.flat.end - s0) }]
          : g
              .pieces(pp.flat)
              .map((gp) => ({ flat: gp.flat, grad: g.arrays[gp.index].subarray(gp.local.start, gp.local.end) }));
      for (const { flat, grad } of pieces) {
        const at = flat.start - s0;
        const len = flat.end - flat.start;
        const local = flat.start - this.params.offsets[pp.index];
        this.native.adamwStep({
          ...common,
          param: paramArr.subarray(local, local + len),
          master: this.master?.subarray(at, at + len),
          grad,
          gradType: this.gradType(grad),
          m: this.m.subarray(at, at + len),
          v: this.v.subarray(at, at + len),
        });
      }
    }
  }

  /** Every rank contributes its updated shard; each bucket's all-gather fills the other ranks' chunks. */
  private async gatherParams(): Promise<void> {
    const { world, shardSize } = this.partition;
    if (world === 1 || this.stage === 0) return;
    const buckets = shardBuckets(this.partition, elementBytes(this.dtype), this.bucketBytes);
    const chunk = buckets[0].end;
    const type = this.dtype === 'float32' ? Float32Array : Uint16Array;
    this.gatherIn ??= this.alloc<Elements>(type, chunk);
    this.gatherOut ??= this.alloc<Elements>(type, world * chunk);
    const numel = this.params.numel;
    const me = this.group.rank;
    const opts = this.dtype === 'float32' ? {} : { dtype: this.dtype };
    for (const b of buckets) {
      const len = b.end - b.start;
      const input = this.gatherIn.subarray(0, len);
      const output = this.gatherOut.subarray(0, world * len);
      const mine = intersect(
        { start: me * shardSize + b.start, end: me * shardSize + b.end },
        { start: 0, end: numel },
      );
      if (mine) this.params.copyOut(mine, input, 0);
      input.fill(0, mine ? mine.end - mine.start : 0);
      await this.group.allGather(input, output, opts);
      for (let r = 0; r < world; r++) {
        if (r === me) continue;
        const theirs = intersect(
          { start: r * shardSize + b.start, end: r * shardSize + b.end },
          { start: 0, end: numel },
        );
        if (theirs) this.params.copyIn(theirs, output, r * len);
      }
    }
  }
}

function sameArrays(a: readonly Elements[], b: readonly Elements[]): boolean {
  return a.length === b.length && a.every((x, i) => x === b[i]);
}

/** The group's own overlap accounting (NativeGroup's noteOverlap: dist.stats() shows it), when it has one. */
function overlapSinkOf(group: Group, op: 'allReduce' | 'reduceScatter'): OverlapSink | undefined {
  const g = group as Group & { noteOverlap?: (s: OverlapSummary & { op: string }) => void };
  return typeof g.noteOverlap === 'function' ? (s) => g.noteOverlap!({ ...s, op }) : undefined;
}
