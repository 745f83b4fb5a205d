/**
 * A process group on the NCCL backend: the `Group` contract over one NCCL communicator. Device buffers go
 * to NCCL as they are; typed arrays are staged through this group's device buffers (copied in and out on
 * the communicator's thread, in the same queued job as the op, so the JS thread never waits on a copy).
 */
import { DeviceBuffer, dtypeBytes, dtypeCode } from '../device/device-buffer.js';
import { CollectiveUsageError, dtypeOf } from '../group.js';
import { reduceOpCode } from '../native.js';
import type { DType, Group, GroupOpStats, HostBuffer, OpOptions, ReduceOp } from '../types.js';
import { ncclOpKind, type NcclErrorCode, type NcclNative, type NcclOpName } from './native.js';

/** A buffer the NCCL backend accepts: a device buffer or a typed array (staged). */
export type NcclBuffer = HostBuffer | DeviceBuffer;

/** An NCCL op failed: `code` says how (ETIMEOUT: the watchdog aborted the communicator). */
export class NcclOpError extends Error {
  override name = 'NcclOpError';
  constructor(
    message: string,
    readonly code: NcclErrorCode,
  ) {
    super(message);
  }
}

const why: Record<NcclErrorCode, string> = {
  ETIMEOUT: 'watchdog timeout',
  ENCCL: 'NCCL error',
  ECUDA: 'CUDA error',
  EARG: 'bad argument',
  EUNKNOWN: 'error',
};

/** Turns a rejection of the bindings into one line naming the op, the group and the reason. */
export function ncclFailure(what: string, err: unknown): NcclOpError {
  const e = err as { code?: NcclErrorCode; message?: string };
  const code = e.code && e.code in why ? e.code : 'EUNKNOWN';
  return new NcclOpError(`${what} failed (${why[code]}): ${e.message ?? String(err)}`, code);
}

interface Operand {
  ptr: number;
  dtype: DType;
  length: number;
  /** the typed array to stage from/to, when the caller passed one */
  host: HostBuffer | null;
}

export class NcclGroup implements Group {
  readonly transport = 'nccl' as const;
  private readonly counters = new Map<string, GroupOpStats>();
  /** staging buffers for typed arrays: [0] input, [1] output, grown on demand */
  private readonly staging: (DeviceBuffer | undefined)[] = [undefined, undefined];
  /** outgrown staging buffers, freed once no queued op can still use them */
  private retired: DeviceBuffer[] = [];
  private inFlight = 0;
  private barrierBuf: DeviceBuffer | undefined;
  private closed = false;

  constructor(
    private readonly native: NcclNative,
    readonly name: string,
    readonly ranks: readonly number[],
    readonly rank: number,
    readonly device: number,
    /** the communicator's handle in the bindings */
    readonly handle: number,
  ) {}

  get size(): number {
    return this.ranks.length;
  }

  async allReduce(buf: NcclBuffer, opts?: OpOptions & { op?: ReduceOp }): Promise<void> {
    const b = this.operand(buf, opts?.dtype, 'allReduce');
    const op = this.reduceOp(opts?.op, 'allReduce');
    const stage = b.host ? this.stage(0, b) : b.ptr;
    await this.run('allReduce', stage, stage, b.length, b.dtype, op, b.host, b.host);
  }

  async reduceScatter(input: NcclBuffer, output: NcclBuffer, opts?: OpOptions & { op?: ReduceOp }): Promise<void> {
    const i = this.operand(input, opts?.dtype, 'reduceScatter');
    const o = this.operand(output, opts?.dtype, 'reduceScatter');
    if (i.dtype !== o.dtype) throw new CollectiveUsageError('reduceScatter: input and output must have the same type');
    if (i.length !== o.length * this.size)
      throw new CollectiveUsageError(
        `reduceScatter: input has ${i.length} elements, expected output length ${o.length} × group size ${this.size}`,
      );
    const op = this.reduceOp(opts?.op, 'reduceScatter');
    await this.run(
      'reduceScatter',
      i.host ? this.stage(0, i) : i.ptr,
      o.host ? this.stage(1, o) : o.ptr,
      o.length,
      i.dtype,
      op,
      i.host,
      o.host,
    );
  }

  async allGather(input: NcclBuffer, output: NcclBuffer, opts?: OpOptions): Promise<void> {
    const i = this.operand(input, opts?.dtype, 'allGather');
    const o = this.operand(output, opts?.dtype, 'allGather');
    if (i.dtype !== o.dtype) throw new CollectiveUsageError('allGather: input and output must have the same type');
    if (o.length !== i.length * this.size)
      throw new CollectiveUsageError(
        `allGather: output has ${o.length} elements, expected input length ${i.length} × group size ${this.size}`,
      );
    await this.run(
      'allGather',
      i.host ? this.stage(0, i) : i.ptr,
      o.host ? this.stage(1, o) : o.ptr,
      i.length,
      i.dtype,
      0,
      i.host,
      o.host,
    );
  }

  async broadcast(buf: NcclBuffer, opts: OpOptions & { root: number }): Promise<void> {
    const b = this.operand(buf, opts?.dtype, 'broadcast');
    const root = this.groupRank(opts?.root, 'broadcast', 'root');
    const stage = b.host ? this.stage(0, b) : b.ptr;
    // Only the root's data matters on the way in.
    await this.run('broadcast', stage, stage, b.length, b.dtype, root, this.rank === root ? b.host : null, b.host);
  }

  async send(buf: NcclBuffer, opts: OpOptions & { peer: number; tag?: number }): Promise<void> {
    const b = this.operand(buf, opts?.dtype, 'send');
    const peer = this.p2pPeer(opts?.peer, 'send');
    const tag = this.tag(opts.tag, 'send');
    await this.run('send', b.host ? this.stage(0, b) : b.ptr, 0, b.length, b.dtype, peer, b.host, null, 'send', tag);
  }

  async recv(buf: NcclBuffer, opts: OpOptions & { peer: number; tag?: number }): Promise<void> {
    const b = this.operand(buf, opts?.dtype, 'recv');
    const peer = this.p2pPeer(opts?.peer, 'recv');
    const tag = this.tag(opts.tag, 'recv');
    await this.run('recv', 0, b.host ? this.stage(1, b) : b.ptr, b.length, b.dtype, peer, null, b.host, 'recv', tag);
  }

  /** NCCL has no barrier: an all-reduce of one int32 on the device orders every member. */
  async barrier(): Promise<void> {
    this.barrierBuf ??= DeviceBuffer.alloc('int32', 1, { device: this.device });
    await this.run(
      'barrier',
      this.barrierBuf.ptr,
      this.barrierBuf.ptr,
      1,
      'int32',
      reduceOpCode.sum,
      null,
      null,
      'allReduce',
    );
  }

  stats(): GroupOpStats[] {
    return [...this.counters.values()].map((s) => ({ ...s }));
  }

  /** Destroys the communicator after its queued ops and frees this group's device buffers. */
  async destroy(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    try {
      await this.native.ncclCommDestroy(this.handle);
    } finally {
      for (const b of [...this.staging, ...this.retired, this.barrierBuf]) b?.free();
    }
  }

  private operand(buf: NcclBuffer, explicit: DType | undefined, what: string): Operand {
    if (this.closed) throw new CollectiveUsageError(`${what}: group '${this.name}' is closed`);
    if (buf instanceof DeviceBuffer) {
      if (explicit && explicit !== buf.dtype)
        throw new CollectiveUsageError(`${what}: dtype '${explicit}' does not match the ${buf.dtype} device buffer`);
      if (buf.device !== this.device)
        throw new CollectiveUsageError(
          `${what}: the buffer is on device ${buf.device}, this rank's communicator on device ${this.device}`,
        );
      return { ptr: buf.ptr, dtype: buf.dtype, length: buf.length, host: null };
    }
    return { ptr: 0, dtype: dtypeOf(buf, explicit, what), length: buf.length, host: buf };
  }

  /** The device address of staging buffer `slot`, large enough for `b`. */
  private stage(slot: 0 | 1, b: Operand): number {
    const bytes = b.length * dtypeBytes[b.dtype];
    const have = this.staging[slot];
    if (!have || have.bytes < bytes) {
      if (have) this.retired.push(have);
      // Staging buffers are raw bytes: the op's dtype travels with the op, not with the buffer.
      this.staging[slot] = DeviceBuffer.alloc(
        'int32',
        Math.max(1, Math.ceil(Math.max(bytes, 2 * (have?.bytes ?? 0)) / 4)),
        { device: this.device },
      );
    }
    return this.staging[slot]!.ptr;
  }

  private reduceOp(op: ReduceOp | undefined, what: string): number {
    const code = reduceOpCode[op ?? 'sum'];
    if (code === undefined)
      throw new CollectiveUsageError(`${what}: unknown op '${String(op)}' (sum, avg, max, min, prod)`);
    return code;
  }

  private groupRank(value: number, what: string, role: string): number {
    if (!Number.isInteger(value) || value < 0 || value >= this.size)
      throw new CollectiveUsageError(`${what}: ${role} ${value} is not a rank of this group (0..${this.size - 1})`);
    return value;
  }

  /**
   * NCCL matches point-to-point messages in posting order per peer (as dtrain's CPU transports do); the tag
   * travels in the message's envelope and the receiver checks it.
   */
  private tag(tag: number | undefined, what: string): number {
    if (tag === undefined) return 0;
    if (!Number.isSafeInteger(tag) || tag < 0)
      throw new CollectiveUsageError(`${what}: tag ${tag} is not a non-negative integer`);
    return tag;
  }

  private p2pPeer(peer: number, what: string): number {
    const p = this.groupRank(peer, what, 'peer');
    // A blocking send to oneself on one ordered queue could never meet its receive.
    if (p === this.rank)
      throw new CollectiveUsageError(`${what}: peer ${p} is this rank; the nccl backend has no send to self`);
    return p;
  }

  private async run(
    name: string,
    send: number,
    recv: number,
    count: number,
    dtype: DType,
    arg: number,
    hostIn: HostBuffer | null,
    hostOut: HostBuffer | null,
    kind: NcclOpName = name as NcclOpName,
    tag = 0,
  ): Promise<void> {
    this.inFlight++;
    try {
      await this.native.ncclRun(
        this.handle,
        ncclOpKind[kind],
        send,
        recv,
        count,
        dtypeCode[dtype],
        arg,
        hostIn,
        hostOut,
        tag,
      );
    } catch (err) {
      throw ncclFailure(`${name} on group '${this.name}' (rank ${this.rank} of ${this.size})`, err);
    } finally {
      if (--this.inFlight === 0 && this.retired.length) {
        for (const b of this.retired) b.free();
        this.retired = [];
      }
    }
    const algorithm = hostIn || hostOut ? 'nccl-staged' : 'nccl';
    const s = this.counters.get(`${name}/${algorithm}`) ?? {
      op: name,
      transport: 'nccl',
      algorithm,
      count: 0,
      bytes: 0,
    };
    s.count++;
    s.bytes += count * dtypeBytes[dtype];
    this.counters.set(`${name}/${algorithm}`, s);
  }
}
