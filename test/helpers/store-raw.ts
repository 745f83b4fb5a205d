/**
 * A byte-level store peer for attack and fuzz tests: it frames and reads raw bodies itself, so a test
 * can send what no honest client would (tampered, replayed, oversized, trickled frames) and see exactly
 * what the server answers, or that it closed.
 */
import net from 'node:net';
import type { Duplex } from 'node:stream';
import { ClientHandshake, type Session } from '../../src/store/auth.js';
import { FrameReader, frame } from '../../src/store/frame.js';

export class RawPeer {
  readonly bodies: Buffer[] = [];
  closed = false;
  private readonly reader = new FrameReader(2 ** 31);
  private wake: (() => void) | undefined;
  readonly closedPromise: Promise<void>;

  constructor(readonly stream: Duplex) {
    stream.on('data', (chunk: Buffer) => {
      this.bodies.push(...this.reader.push(chunk));
      this.wake?.();
    });
    stream.on('error', () => {});
    this.closedPromise = new Promise((resolve) =>
      stream.once('close', () => {
        this.closed = true;
        this.wake?.();
        resolve();
      }),
    );
  }

  static async tcp(port: number): Promise<RawPeer> {
    const socket = net.connect({ host: '127.0.0.1', port, noDelay: true });
    await new Promise<void>((resolve, reject) => {
      socket.once('connect', resolve);
      socket.once('error', reject);
    });
    return new RawPeer(socket);
  }

  send(body: Buffer): void {
    this.writeRaw(frame(body));
  }

  writeRaw(bytes: Buffer): void {
    if (!this.closed && !this.stream.destroyed) this.stream.write(bytes);
  }

  /** The next body from the server, 'closed' if it closed first, 'timeout' if neither came in time. */
  async next(timeoutMs = 2000): Promise<Buffer | 'closed' | 'timeout'> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      if (this.bodies.length) return this.bodies.shift()!;
      if (this.closed) return 'closed';
      const left = deadline - Date.now();
      if (left <= 0) return 'timeout';
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, left);
        this.wake = () => {
          clearTimeout(timer);
          resolve();
        };
      });
      this.wake = undefined;
    }
  }

  destroy(): void {
    this.stream.destroy();
  }
}

/** Runs the honest handshake by hand and returns the peer with its session (welcome already checked). */
export async function authenticateRaw(peer: RawPeer, jobKey: Buffer): Promise<Session> {
  const hs = new ClientHandshake(jobKey);
  peer.send(hs.hello());
  const challenge = await peer.next();
  if (!Buffer.isBuffer(challenge)) throw new Error(`no challenge: ${challenge}`);
  peer.send(hs.answerChallenge(challenge));
  const welcome = await peer.next();
  if (!Buffer.isBuffer(welcome)) throw new Error(`no welcome: ${welcome}`);
  const session = hs.session();
  session.open(welcome);
  return session;
}
