/**
 * An in-process Group for the pipeline executor's logic tests: every stage is an object in one process and
 * send/recv are Promises. Like dtrain's addon, a channel (source → destination) matches strictly in posting
 * order and then checks the tag: a receive posted out of order fails instead of quietly finding its message.
 * Only point-to-point and barrier exist; the collectives reject, the executor must not need them.
 *
 * 'buffered' sends resolve at once (the data is copied); 'rendezvous' sends resolve only when the receiver
 * has posted the matching receive, the strictest behaviour a real transport may have for large messages.
 */
import type { Group, HostBuffer, OpOptions } from '../../src/runtime/types.js';

export type LoopbackSemantics = 'buffered' | 'rendezvous';

interface Pending {
  src: number;
  dst: number;
  tag: number;
  buf: HostBuffer;
  resolve: () => void;
  reject: (err: Error) => void;
}

export class LoopbackFabric {
  private readonly sends: Pending[] = [];
  private readonly recvs: Pending[] = [];
  private barrierWaiters: (() => void)[] = [];
  readonly groups: LoopbackGroup[];
  messages = 0;
  bytes = 0;
  /** most receives posted and not yet matched at once, per rank */
  readonly peakPostedRecvs: number[];

  constructor(
    readonly size: number,
    readonly semantics: LoopbackSemantics = 'buffered',
  ) {
    this.groups = Array.from({ length: size }, (_, r) => new LoopbackGroup(this, r));
    this.peakPostedRecvs = new Array<number>(size).fill(0);
  }

  send(src: number, dst: number, tag: number, buf: HostBuffer): Promise<void> {
    this.checkPeer(src, dst);
    return new Promise<void>((resolve, reject) => {
      const i = this.recvs.findIndex((r) => r.src === src && r.dst === dst);
      if (i >= 0) {
        const [r] = this.recvs.splice(i, 1);
        this.deliver(buf, tag, r.buf, r.tag, resolve, reject, r);
        return;
      }
      if (this.semantics === 'buffered') {
        this.sends.push({
          src,
          dst,
          tag,
          buf: buf.slice(),
          resolve: () => undefined,
          reject: () => undefined,
        });
        resolve();
      } else {
        this.sends.push({ src, dst, tag, buf, resolve, reject });
      }
    });
  }

  recv(dst: number, src: number, tag: number, buf: HostBuffer): Promise<void> {
    this.checkPeer(dst, src);
    return new Promise<void>((resolve, reject) => {
      const i = this.sends.findIndex((s) => s.src === src && s.dst === dst);
      if (i >= 0) {
        const [s] = this.sends.splice(i, 1);
        this.deliver(s.buf, s.tag, buf, tag, s.resolve, s.reject, { resolve, reject });
        return;
      }
      this.recvs.push({ src, dst, tag, buf, resolve, reject });
      const posted = this.recvs.filter((r) => r.dst === dst).length;
      this.peakPostedRecvs[dst] = Math.max(this.peakPostedRecvs[dst], posted);
    });
  }

  barrier(): Promise<void> {
    return new Promise<void>((resolve) => {
      this.barrierWaiters.push(resolve);
      if (this.barrierWaiters.length === this.size) {
        const all = this.barrierWaiters;
        this.barrierWaiters = [];
        all.forEach((w) => w());
      }
    });
  }

  /** Messages or receives nobody matched: a correct step leaves none. */
  unmatched(): { sends: number; recvs: number } {
    return { sends: this.sends.length, recvs: this.recvs.length };
  }

  private deliver(
    from: HostBuffer,
    sentTag: number,
    to: HostBuffer,
    wantedTag: number,
    sent: () => void,
    sendFailed: (e: Error) => void,
    recv: { resolve: () => void; reject: (e: Error) => void },
  ): void {
    const problem =
      sentTag !== wantedTag
        ? `tag mismatch: the oldest message on the channel has tag ${sentTag}, the oldest receive wants ${wantedTag}`
        : from.constructor !== to.constructor || from.length !== to.length
          ? `size mismatch: sent ${from.length} × ${from.constructor.name}, receive posted for ${to.length} ` +
            `× ${to.constructor.name}`
          : undefined;
    if (problem) {
      const err = new Error(problem);
      sendFailed(err);
      recv.reject(err);
      return;
    }
    (to as Float64Array).set(from as Float64Array);
    this.messages++;
    this.bytes += from.byteLength;
    // Settle on a later turn, as a transport completing on its progress thread would.
    setImmediate(() => {
      sent();
      recv.resolve();
    });
  }

  private checkPeer(me: number, peer: number): void {
    if (!Number.isInteger(peer) || peer < 0 || peer >= this.size || peer === me) {
      throw new Error(`rank ${me}: peer ${peer} is not another rank of this ${this.size}-rank group`);
    }
  }
}

export class LoopbackGroup implements Group {
  readonly name = 'pipeline';
  readonly size: number;
  readonly ranks: readonly number[];

  constructor(
    private readonly fabric: LoopbackFabric,
    readonly rank: number,
  ) {
    this.size = fabric.size;
    this.ranks = Array.from({ length: fabric.size }, (_, i) => i);
  }

  send(buf: HostBuffer, opts: OpOptions & { peer: number; tag?: number }): Promise<void> {
    return this.fabric.send(this.rank, opts.peer, opts.tag ?? 0, buf);
  }
  recv(buf: HostBuffer, opts: OpOptions & { peer: number; tag?: number }): Promise<void> {
    return this.fabric.recv(this.rank, opts.peer, opts.tag ?? 0, buf);
  }
  barrier(): Promise<void> {
    return this.fabric.barrier();
  }
  allReduce(): Promise<void> {
    return unsupported('allReduce');
  }
  reduceScatter(): Promise<void> {
    return unsupported('reduceScatter');
  }
  allGather(): Promise<void> {
    return unsupported('allGather');
  }
  broadcast(): Promise<void> {
    return unsupported('broadcast');
  }
}

function unsupported(op: string): Promise<void> {
  return Promise.reject(new Error(`${op} is not available in the loopback pipeline group`));
}
