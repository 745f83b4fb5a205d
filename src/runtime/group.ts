/**
 * Group: the TypeScript face of one native process group (the `Group` contract of types.ts). Checks
 * arguments, picks the dtype from the buffer (Uint16Array needs an explicit one) and hands the buffers
 * to the addon, which completes small ops inline and large ones from its progress thread.
 */
import {
  collectivesNative,
  completedInline,
  dtypeCode,
  reduceOpCode,
  type CollectivesNative,
  type NativeOpStat,
} from './native.js';
import type { OverlapSummary } from './optim/grad-reduction.js';
import type { CollectiveBuffer, DType, Group, GroupOpStats, HostBuffer, OpOptions, ReduceOp } from './types.js';

export class CollectiveUsageError extends Error {
  override name = 'CollectiveUsageError';
}

export function dtypeOf(buf: CollectiveBuffer, explicit: DType | undefined, what: string): DType {
  if (!ArrayBuffer.isView(buf))
    throw new CollectiveUsageError(
      `${what}: a DeviceBuffer needs the nccl backend; this group runs on the cpu backend (use a typed array)`,
    );
  const natural: DType | undefined =
    buf instanceof Float32Array
      ? 'float32'
      : buf instanceof Float64Array
        ? 'float64'
        : buf instanceof Int32Array
          ? 'int32'
          : buf instanceof BigInt64Array
            ? 'int64'
            : undefined;
  if (buf instanceof Uint16Array) {
    if (explicit !== 'bfloat16' && explicit !== 'float16')
      throw new CollectiveUsageError(`${what}: a Uint16Array needs { dtype: 'bfloat16' } or { dtype: 'float16' }`);
    return explicit;
  }
  if (!natural)
    throw new CollectiveUsageError(
      `${what}: unsupported buffer (use Float32Array, Float64Array, Int32Array, BigInt64Array or Uint16Array)`,
    );
  if (explicit && explicit !== natural)
    throw new CollectiveUsageError(`${what}: dtype '${explicit}' does not match the ${buf.constructor.name} buffer`);
  return natural;
}

function reduceOp(op: ReduceOp | undefined, what: string): number {
  const code = reduceOpCode[op ?? 'sum'];
  if (code === undefined)
    throw new CollectiveUsageError(`${what}: unknown op '${String(op)}' (sum, avg, max, min, prod)`);
  return code;
}

function timeout(opts: { timeoutMs?: number } | undefined): number {
  return opts?.timeoutMs ?? 0; // 0: the job's collective_timeout
}

function groupRank(value: number, size: number, what: string, role: string): number {
  if (!Number.isInteger(value) || value < 0 || value >= size)
    throw new CollectiveUsageError(`${what}: ${role} ${value} is not a rank of this group (0..${size - 1})`);
  return value;
}

export class NativeGroup implements Group {
  private readonly native: CollectivesNative;
  /** per op: what the overlapped gradient reductions on this group added up to */
  private readonly overlap = new Map<string, NonNullable<GroupOpStats['overlap']>>();

  constructor(
    readonly name: string,
    readonly ranks: readonly number[],
    readonly rank: number,
    /** self | shm | tcp | hierarchical: where this group's members live */
    readonly kind: string,
    private readonly handle: number,
  ) {
    this.native = collectivesNative();
  }

  get size(): number {
    return this.ranks.length;
  }

  // Not async: a small all-reduce completes inline, and an async wrapper's extra promise and ticks
  // would be a good part of its cost. Errors still reach the caller as a rejection.
  allReduce(buf: HostBuffer, opts?: OpOptions & { op?: ReduceOp }): Promise<void> {
    try {
      const t = dtypeOf(buf, opts?.dtype, 'allReduce');
      const op = reduceOp(opts?.op, 'allReduce');
      return this.native.allReduce(this.handle, buf, dtypeCode[t], op, timeout(opts)) ?? completedInline;
    } catch (err) {
      return Promise.reject(err);
    }
  }

  // Not async, as allReduce: an overlapped gradient reduction tells an inline completion from one in flight.
  reduceScatter(input: HostBuffer, output: HostBuffer, opts?: OpOptions & { op?: ReduceOp }): Promise<void> {
    try {
      const t = dtypeOf(input, opts?.dtype, 'reduceScatter');
      if (dtypeOf(output, opts?.dtype, 'reduceScatter') !== t)
        throw new CollectiveUsageError('reduceScatter: input and output must have the same type');
      if (input.length !== output.length * this.size)
        throw new CollectiveUsageError(
          `reduceScatter: input has ${input.length} elements, expected output length ${output.length} × group ` +
            `size ${this.size}`,
        );
      const op = reduceOp(opts?.op, 'reduceScatter');
      return this.native.reduceScatter(this.handle, input, output, dtypeCode[t], op, timeout(opts)) ?? completedInline;
    } catch (err) {
      return Promise.reject(err);
    }
  }

  async allGather(input: HostBuffer, output: HostBuffer, opts?: OpOptions): Promise<void> {
    const t = dtypeOf(input, opts?.dtype, 'allGather');
    if (dtypeOf(output, opts?.dtype, 'allGather') !== t)
      throw new CollectiveUsageError('allGather: input and output must have the same type');
    if (output.length !== input.length * this.size)
      throw new CollectiveUsageError(
        `allGather: output has ${output.length} elements, expected input length ${input.length} × group ` +
          `size ${this.size}`,
      );
    const pending = this.native.allGather(this.handle, input, output, dtypeCode[t], timeout(opts));
    if (pending) await pending;
  }

  async broadcast(buf: HostBuffer, opts: OpOptions & { root: number }): Promise<void> {
    const t = dtypeOf(buf, opts?.dtype, 'broadcast');
    const root = groupRank(opts?.root, this.size, 'broadcast', 'root');
    const pending = this.native.broadcast(this.handle, buf, dtypeCode[t], root, timeout(opts));
    if (pending) await pending;
  }

  async send(buf: HostBuffer, opts: OpOptions & { peer: number; tag?: number }): Promise<void> {
    const t = dtypeOf(buf, opts?.dtype, 'send');
    const peer = groupRank(opts?.peer, this.size, 'send', 'peer');
    await this.native.send(this.handle, buf, dtypeCode[t], peer, opts.tag ?? 0, timeout(opts));
  }

  async recv(buf: HostBuffer, opts: OpOptions & { peer: number; tag?: number }): Promise<void> {
    const t = dtypeOf(buf, opts?.dtype, 'recv');
    const peer = groupRank(opts?.peer, this.size, 'recv', 'peer');
    await this.native.recv(this.handle, buf, dtypeCode[t], peer, opts.tag ?? 0, timeout(opts));
  }

  barrier(opts?: { timeoutMs?: number }): Promise<void> {
    try {
      return this.native.barrier(this.handle, timeout(opts)) ?? completedInline;
    } catch (err) {
      return Promise.reject(err);
    }
  }

  /** Adds one finished overlapped reduction (ShardedAdam.beginReduction) to stats(). */
  noteOverlap(s: OverlapSummary & { op: 'allReduce' | 'reduceScatter' }): void {
    const o = this.overlap.get(s.op) ?? { reductions: 0, buckets: 0, inFlightMs: 0, overlappedMs: 0, exposedMs: 0 };
    o.reductions++;
    o.buckets += s.buckets;
    o.inFlightMs += s.inFlightMs;
    o.overlappedMs += s.overlappedMs;
    o.exposedMs += s.exposedMs;
    this.overlap.set(s.op, o);
  }

  /** What each op used so far: transport, algorithm, how many times and how many bytes. */
  stats(): GroupOpStats[] {
    return this.native.stats(this.handle).map((s: NativeOpStat) => {
      const overlap = this.overlap.get(s.op);
      return {
        op: s.op,
        transport: s.transport as GroupOpStats['transport'],
        algorithm: s.algorithm,
        count: s.count,
        bytes: s.bytes,
        ...(overlap && { overlap: { ...overlap } }),
      };
    });
  }
}
