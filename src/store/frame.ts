/**
 * The store's frame codec, shared by the server, the TS client and the Unix proxy.
 * PROTOCOL.md is the one place the wire format is described; each encoder here sits next to its
 * decoder so a change to one is seen beside the other.
 *
 *   frame     = len:u32be body[len]
 *   request   = op:u8 id:u32 argc:u8 { arglen:u32 argbytes }×argc
 *   response  = status:u8 id:u32 argc:u8 { arglen:u32 argbytes }×argc
 */

export const Op = {
  set: 1,
  get: 2,
  add: 3,
  cas: 4,
  wait: 5,
  delete: 6,
  barrier: 7,
  check: 8,
  ping: 9,
  cancel: 10,
  jobKey: 16,
  whoami: 17,
} as const;
export type OpCode = (typeof Op)[keyof typeof Op];

export const Status = {
  ok: 0,
  timeout: 1,
  notFound: 2,
  badRequest: 3,
  notAuthorized: 4,
  cancelled: 5,
  /** the agent's proxy refused a worker over its share of in-flight requests; one arg says why */
  overLimit: 6,
} as const;
export type StatusCode = (typeof Status)[keyof typeof Status];

export const opNames: Record<number, string> = Object.fromEntries(
  Object.entries(Op).map(([name, code]) => [code, name.toUpperCase()]),
);

/** Largest body accepted once a connection is trusted (TCP after auth, or the Unix proxy). */
export const maxBodyBytes = 64 * 1024 * 1024;
/** Largest body accepted on TCP before authentication: handshake messages are far smaller. */
export const maxPreAuthBodyBytes = 256;
/** Longest timeout a blocking op may ask for: Node timers overflow above 2^31-1 ms. */
export const maxTimeoutMs = 2 ** 31 - 1;
/** Keys longer than this are refused: real keys are short paths like `a0/rank/3/addr`. */
export const maxKeyBytes = 4096;

const headerBytes = 6; // op|status:u8 id:u32 argc:u8

export interface Message {
  /** op for a request, status for a response */
  code: number;
  id: number;
  args: Buffer[];
}
export type Request = Message;
export type Response = Message;

export class FrameError extends Error {
  override name = 'FrameError';
}

/** Encodes a request or response body (they share one layout), without the length prefix. */
export function encodeBody(code: number, id: number, args: readonly (Buffer | string)[]): Buffer {
  return encodeBodyInside(code, id, args, 0, 0);
}

/**
 * encodeBody's bytes at offset `before` of a buffer with `after` more bytes left for the caller, so a
 * length prefix or an envelope goes around the body without another copy.
 */
export function encodeBodyInside(
  code: number,
  id: number,
  args: readonly (Buffer | string)[],
  before: number,
  after: number,
): Buffer {
  if (args.length > 255) throw new FrameError(`too many arguments (${args.length}, at most 255)`);
  const bufs = args.map((a) => (typeof a === 'string' ? Buffer.from(a) : a));
  let size = headerBytes;
  for (const b of bufs) size += 4 + b.length;
  const out = Buffer.allocUnsafe(before + size + after);
  out.writeUInt8(code, before);
  out.writeUInt32BE(id >>> 0, before + 1);
  out.writeUInt8(bufs.length, before + 5);
  let at = before + headerBytes;
  for (const b of bufs) {
    out.writeUInt32BE(b.length, at);
    b.copy(out, at + 4);
    at += 4 + b.length;
  }
  return out;
}

/** Decodes what encodeBody wrote; throws FrameError on any inconsistency (the caller closes). */
export function decodeBody(body: Buffer): Message {
  if (body.length < headerBytes) throw new FrameError(`body of ${body.length} bytes is shorter than a header`);
  const code = body.readUInt8(0);
  const id = body.readUInt32BE(1);
  const argc = body.readUInt8(5);
  const args: Buffer[] = [];
  let at = headerBytes;
  for (let i = 0; i < argc; i++) {
    if (at + 4 > body.length) throw new FrameError(`argument ${i} length runs past the body`);
    const len = body.readUInt32BE(at);
    at += 4;
    if (len > body.length - at) throw new FrameError(`argument ${i} (${len} bytes) runs past the body`);
    args.push(body.subarray(at, at + len));
    at += len;
  }
  if (at !== body.length) throw new FrameError(`${body.length - at} trailing bytes after ${argc} arguments`);
  return { code, id, args };
}

/** frame(encodeBody(code, id, args)) without the intermediate body. */
export function encodeFrame(code: number, id: number, args: readonly (Buffer | string)[]): Buffer {
  const out = encodeBodyInside(code, id, args, 4, 0);
  out.writeUInt32BE(out.length - 4, 0);
  return out;
}

/** Prefixes a body with its u32be length. */
export function frame(body: Buffer): Buffer {
  const out = Buffer.allocUnsafe(4 + body.length);
  out.writeUInt32BE(body.length, 0);
  body.copy(out, 4);
  return out;
}

/**
 * Splits a byte stream into frame bodies. The length is checked as soon as its 4 bytes arrive, so an
 * oversized frame is refused before any of it is buffered. Chunks are kept in a list and joined once
 * per frame, so a 64 MiB body arriving in 64 KiB pieces costs one copy, not thousands.
 */
export class FrameReader {
  private chunks: Buffer[] = [];
  private buffered = 0;

  constructor(public maxBody: number) {}

  /** Adds a chunk and returns every complete body; throws FrameError when a length exceeds maxBody. */
  push(chunk: Buffer): Buffer[] {
    return [...this.bodies(chunk)];
  }

  /**
   * Adds a chunk and yields its complete bodies one at a time, each checked against maxBody as it is
   * reached: a handshake that raises the limit mid-chunk (a PROOF followed by requests) applies to the
   * frames after it. Bodies not taken stay buffered for the next call.
   */
  *bodies(chunk: Buffer): Generator<Buffer, void, undefined> {
    this.add(chunk);
    for (let body = this.next(); body !== undefined; body = this.next()) yield body;
  }

  /** Adds a chunk; take its bodies with next(). */
  add(chunk: Buffer): void {
    this.chunks.push(chunk);
    this.buffered += chunk.length;
  }

  /**
   * The next complete body, or undefined until more bytes arrive; checked against maxBody as it is
   * reached (bodies()'s rule). Throws FrameError when a length exceeds maxBody.
   */
  next(): Buffer | undefined {
    if (this.buffered < 4) return undefined;
    const len = this.peekLength();
    if (len > this.maxBody) throw new FrameError(`frame of ${len} bytes exceeds the limit of ${this.maxBody}`);
    if (this.buffered < 4 + len) return undefined;
    const whole = this.chunks.length === 1 ? this.chunks[0] : Buffer.concat(this.chunks, this.buffered);
    const end = 4 + len;
    if (end === whole.length) {
      this.chunks.length = 0;
      this.buffered = 0;
    } else {
      this.chunks = [whole.subarray(end)];
      this.buffered = whole.length - end;
    }
    return whole.subarray(4, end);
  }

  /** Bytes received but not yet part of a complete frame. */
  get pending(): number {
    return this.buffered;
  }

  private peekLength(): number {
    const first = this.chunks[0];
    if (first.length >= 4) return first.readUInt32BE(0);
    const joined = Buffer.concat(this.chunks, this.buffered);
    this.chunks = [joined];
    return joined.readUInt32BE(0);
  }
}

const decimalInt = /^-?(0|[1-9][0-9]{0,18})$/;
const int64Min = -(2n ** 63n);
const int64Max = 2n ** 63n - 1n;

/** Parses an int64 in canonical ASCII decimal; undefined when it is not one. */
export function parseInt64(arg: Buffer): bigint | undefined {
  if (arg.length === 0 || arg.length > 20) return undefined;
  const text = arg.toString('latin1');
  if (!decimalInt.test(text) || text === '-0') return undefined;
  const n = BigInt(text);
  return n >= int64Min && n <= int64Max ? n : undefined;
}

/** Parses a non-negative decimal up to max; undefined when it is not one. */
export function parseBoundedUint(arg: Buffer, max: number): number | undefined {
  if (arg.length === 0 || arg.length > 10) return undefined;
  const text = arg.toString('latin1');
  if (!/^(0|[1-9][0-9]*)$/.test(text)) return undefined;
  const n = Number(text);
  return n <= max ? n : undefined;
}

/**
 * How long the server may legitimately hold a request before answering (its timeout argument), so a
 * client can tell a blocked request from a lost connection. 0 for ops that answer at once.
 */
export function serverHoldMs(op: number, args: readonly Buffer[]): number {
  const arg = op === Op.get ? args[1] : op === Op.wait ? args[0] : op === Op.barrier ? args[2] : undefined;
  if (arg === undefined) return 0;
  return parseBoundedUint(arg, maxTimeoutMs) ?? 0;
}
