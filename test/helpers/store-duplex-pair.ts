/**
 * Two connected in-memory Duplex streams (Node 20 has no stream.duplexPair). Writes on one side are
 * read on the other, asynchronously like a socket. Used to drive the store server without the kernel,
 * and to stand in for an SSH-forwarded channel, which is also a plain Duplex.
 */
import { Duplex } from 'node:stream';

class Side extends Duplex {
  peer!: Side;
  constructor() {
    // Like a TCP socket: when the peer ends, end too (so both sides close without a timer).
    super({ allowHalfOpen: false });
  }
  override _read(): void {}
  override _write(chunk: Buffer, _enc: BufferEncoding, done: (err?: Error | null) => void): void {
    const peer = this.peer;
    queueMicrotask(() => {
      if (!peer.destroyed) peer.push(chunk);
      done();
    });
  }
  override _final(done: (err?: Error | null) => void): void {
    queueMicrotask(() => {
      if (!this.peer.destroyed) this.peer.push(null);
      done();
    });
  }
  override _destroy(err: Error | null, done: (err?: Error | null) => void): void {
    const peer = this.peer;
    queueMicrotask(() => {
      if (!peer.destroyed) peer.destroy();
    });
    done(err);
  }
}

export function duplexPair(): [Duplex, Duplex] {
  const a = new Side();
  const b = new Side();
  a.peer = b;
  b.peer = a;
  return [a, b];
}
