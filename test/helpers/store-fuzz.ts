/**
 * Structure-aware generators and a spec oracle for fuzzing the store. The oracle is written from
 * PROTOCOL.md, not from the server's code, so a server that accepts what the spec refuses is caught.
 */
import { Op } from '../../src/store/frame.js';

/** Seeded PRNG (mulberry32): a failing seed reproduces the same frames. */
export class Rng {
  constructor(private state: number) {}
  next(): number {
    let t = (this.state = (this.state + 0x6d2b79f5) | 0);
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  }
  int(n: number): number {
    return Math.floor(this.next() * n);
  }
  range(lo: number, hi: number): number {
    return lo + this.int(hi - lo + 1);
  }
  chance(p: number): boolean {
    return this.next() < p;
  }
  pick<T>(xs: readonly T[]): T {
    return xs[this.int(xs.length)];
  }
  bytes(n: number): Buffer {
    const b = Buffer.allocUnsafe(n);
    for (let i = 0; i < n; i++) b[i] = this.int(256);
    return b;
  }
  seed(): number {
    return this.int(2 ** 32);
  }
}

// ---- request bodies: op:u8 id:u32 argc:u8 {len:u32 bytes}×argc (PROTOCOL.md) ----

export function body(op: number, id: number, args: Buffer[]): Buffer {
  const parts: Buffer[] = [Buffer.of(op, 0, 0, 0, 0, args.length)];
  parts[0].writeUInt32BE(id >>> 0, 1);
  for (const a of args) {
    const len = Buffer.alloc(4);
    len.writeUInt32BE(a.length);
    parts.push(len, a);
  }
  return Buffer.concat(parts);
}

const keyPool = Array.from({ length: 24 }, (_, i) => Buffer.from(`k${i}`));
const nasty = [
  '',
  '-0',
  '+1',
  '01',
  '-1',
  '1.5',
  '1e3',
  ' 1',
  '0x10',
  '2147483648',
  '4294967296',
  '9223372036854775808',
  '-9223372036854775809',
  '99999999999999999999999',
  'NaN',
  '\u0000',
  'k'.repeat(4097),
  '٣',
].map((s) => Buffer.from(s));

function key(rng: Rng): Buffer {
  if (rng.chance(0.9)) return rng.pick(keyPool);
  return rng.bytes(rng.range(1, 40));
}

function smallTimeout(rng: Rng): Buffer {
  return Buffer.from(String(rng.chance(0.7) ? 0 : rng.range(1, 3)));
}

/** A request the spec accepts, with small timeouts so blocked ones end soon. */
export function validRequest(rng: Rng, id: number): Buffer {
  const op = rng.pick([
    Op.set,
    Op.set,
    Op.get,
    Op.get,
    Op.add,
    Op.cas,
    Op.wait,
    Op.delete,
    Op.barrier,
    Op.check,
    Op.ping,
    Op.cancel,
  ]);
  switch (op) {
    case Op.set:
      return body(op, id, [key(rng), rng.bytes(rng.range(0, 48))]);
    case Op.get:
      return body(op, id, [key(rng), smallTimeout(rng)]);
    case Op.add:
      return body(op, id, [key(rng), Buffer.from(String(rng.range(-1000, 1000)))]);
    case Op.cas:
      return body(op, id, [
        key(rng),
        rng.chance(0.3) ? Buffer.alloc(0) : rng.bytes(rng.range(0, 4)),
        rng.bytes(rng.range(0, 16)),
      ]);
    case Op.wait:
      return body(op, id, [smallTimeout(rng), ...Array.from({ length: rng.range(1, 3) }, () => key(rng))]);
    case Op.delete:
      return body(op, id, [key(rng)]);
    case Op.barrier:
      return body(op, id, [Buffer.from(`b${rng.int(4)}`), Buffer.from(String(rng.range(1, 3))), smallTimeout(rng)]);
    case Op.check:
      return body(
        op,
        id,
        Array.from({ length: rng.range(1, 5) }, () => key(rng)),
      );
    case Op.ping:
      return body(op, id, []);
    default:
      return body(Op.cancel, id, [Buffer.from(String(rng.int(2 ** 32)))]);
  }
}

/** Parses a body the spec's way: undefined when the framing inside it is broken. */
export function parseBody(b: Buffer): { op: number; id: number; args: Buffer[] } | undefined {
  if (b.length < 6) return undefined;
  const argc = b[5];
  const args: Buffer[] = [];
  let at = 6;
  for (let i = 0; i < argc; i++) {
    if (b.length - at < 4) return undefined;
    const len = b.readUInt32BE(at);
    at += 4;
    if (b.length - at < len) return undefined;
    args.push(b.subarray(at, at + len));
    at += len;
  }
  return at === b.length ? { op: b[0], id: b.readUInt32BE(1), args } : undefined;
}

/**
 * Mutates a valid body in one of the ways that reach different parts of a parser. Most mutations keep
 * the framing intact (bad values, wrong ops, wrong arity): those reach the op handlers and keep the
 * connection open; the rest break the framing, which costs a new connection each.
 */
export function mutate(rng: Rng, valid: Buffer): Buffer {
  const b = Buffer.from(valid);
  const parsed = parseBody(valid)!;
  switch (rng.chance(0.7) ? rng.pick([8, 9, 10]) : rng.pick([0, 1, 2, 3, 4, 5, 6, 7, 11])) {
    case 0: {
      for (let i = rng.range(1, 4); i > 0; i--) b[rng.int(b.length)] ^= 1 << rng.int(8);
      return b;
    }
    case 1:
      b[rng.int(b.length)] = rng.int(256);
      return b;
    case 2:
      return b.subarray(0, rng.int(b.length));
    case 3:
      return Buffer.concat([b, rng.bytes(rng.range(1, 8))]);
    case 4: {
      const at = rng.int(b.length + 1);
      return Buffer.concat([b.subarray(0, at), rng.bytes(rng.range(1, 6)), b.subarray(at)]);
    }
    case 5: {
      const from = rng.int(b.length);
      return Buffer.concat([b.subarray(0, from), b.subarray(from + rng.range(1, 8))]);
    }
    case 6:
      b[5] = rng.chance(0.5) ? rng.int(256) : Math.max(0, b[5] + rng.pick([-1, 1]));
      return b;
    case 7: {
      if (parsed.args.length === 0 || b.length < 10) return Buffer.concat([b, Buffer.of(0, 0, 0)]);
      const at = 6; // first arg's length field
      b.writeUInt32BE(rng.chance(0.5) ? rng.int(2 ** 32) : Math.max(0, b.readUInt32BE(at) + rng.pick([-1, 1, 2])), at);
      return b;
    }
    case 8: {
      if (parsed.args.length === 0) return body(parsed.op, parsed.id, [rng.pick(nasty)]);
      const args = [...parsed.args];
      args[rng.int(args.length)] = rng.pick(nasty);
      return body(parsed.op, parsed.id, args);
    }
    case 9:
      return body(rng.chance(0.5) ? rng.int(256) : rng.pick([0, 11, 15, 16, 17, 18, 255]), parsed.id, parsed.args);
    case 10: {
      const args = [...parsed.args];
      if (args.length > 0 && rng.chance(0.5)) args.splice(rng.int(args.length), 1);
      else args.push(rng.chance(0.5) ? key(rng) : rng.pick(nasty));
      return body(parsed.op, parsed.id, args);
    }
    default:
      return Buffer.concat([b.subarray(0, rng.int(b.length)), validRequest(rng, parsed.id).subarray(rng.range(1, 6))]);
  }
}

/** Overwrites the id field (bytes 1..4) when there is one, so answers can be matched. */
export function stampId(b: Buffer, id: number): Buffer {
  if (b.length >= 5) b.writeUInt32BE(id >>> 0, 1);
  return b;
}

export type Expectation =
  /** broken framing inside the body: the server must close the connection, answering nothing */
  | { kind: 'malformed' }
  /** parses, but breaks a rule: must answer exactly "bad request" */
  | { kind: 'invalid' }
  /** proxy-only op on the TCP store: must answer "not authorized" */
  | { kind: 'proxyOnly' }
  /** the spec accepts it; blocking ones may answer later (or never, if their connection ends first) */
  | { kind: 'valid'; op: number; blocking: boolean; argc: number };

const uintText = /^(0|[1-9][0-9]*)$/;
const intText = /^-?(0|[1-9][0-9]*)$/;

function isKey(a: Buffer | undefined): boolean {
  return a !== undefined && a.length >= 1 && a.length <= 4096;
}
function uint(a: Buffer | undefined, max: number): number | undefined {
  if (!a || a.length > 10) return undefined;
  const s = a.toString('latin1');
  return uintText.test(s) && Number(s) <= max ? Number(s) : undefined;
}
function int64(a: Buffer | undefined): boolean {
  if (!a || a.length > 20) return false;
  const s = a.toString('latin1');
  if (!intText.test(s) || s === '-0') return false;
  const n = BigInt(s);
  return n >= -(2n ** 63n) && n < 2n ** 63n;
}

const maxTimeout = 2 ** 31 - 1;

/** What the spec says the TCP store must do with this body. */
export function expect(b: Buffer): Expectation {
  const p = parseBody(b);
  if (!p) return { kind: 'malformed' };
  const { op, args } = p;
  const valid = (blocking: boolean): Expectation => ({ kind: 'valid', op, blocking, argc: args.length });
  const invalid: Expectation = { kind: 'invalid' };
  switch (op) {
    case Op.set:
      return args.length === 2 && isKey(args[0]) ? valid(false) : invalid;
    case Op.get: {
      const t = uint(args[1], maxTimeout);
      return args.length === 2 && isKey(args[0]) && t !== undefined ? valid(t > 0) : invalid;
    }
    case Op.add:
      return args.length === 2 && isKey(args[0]) && int64(args[1]) ? valid(false) : invalid;
    case Op.cas:
      return args.length === 3 && isKey(args[0]) ? valid(false) : invalid;
    case Op.wait: {
      const t = uint(args[0], maxTimeout);
      return args.length >= 2 && t !== undefined && args.slice(1).every(isKey) ? valid(t > 0) : invalid;
    }
    case Op.delete:
      return args.length === 1 && isKey(args[0]) ? valid(false) : invalid;
    case Op.barrier: {
      const count = uint(args[1], 1_000_000);
      const t = uint(args[2], maxTimeout);
      return args.length === 3 && isKey(args[0]) && !!count && t !== undefined ? valid(t > 0) : invalid;
    }
    case Op.check:
      return args.length >= 1 && args.every(isKey) ? valid(false) : invalid;
    case Op.ping:
      return args.length === 0 ? valid(false) : invalid;
    case Op.cancel:
      return args.length === 1 && uint(args[0], 0xffffffff) !== undefined ? valid(false) : invalid;
    case Op.jobKey:
    case Op.whoami:
      return { kind: 'proxyOnly' };
    default:
      return invalid;
  }
}

/** Checks an "ok" answer has the shape the spec gives that op; returns a problem or undefined. */
export function okShapeProblem(e: Extract<Expectation, { kind: 'valid' }>, args: Buffer[]): string | undefined {
  const flag = (a: Buffer) => a.length === 1 && (a[0] === 0x30 || a[0] === 0x31);
  switch (e.op) {
    case Op.get:
      return args.length === 1 ? undefined : `GET ok with ${args.length} args`;
    case Op.add:
      return args.length === 1 && int64(args[0]) ? undefined : 'ADD ok without a decimal';
    case Op.cas:
      return args.length === 1 ? undefined : 'CAS ok without the value';
    case Op.delete:
    case Op.cancel:
      return args.length === 1 && flag(args[0]) ? undefined : `${e.op} ok without a 0/1 flag`;
    case Op.check:
      return args.length === e.argc && args.every(flag) ? undefined : 'CHECK ok with wrong flags';
    case Op.jobKey:
      return args.length === 1 && args[0].length >= 16 ? undefined : 'JOB_KEY ok without a key';
    case Op.whoami:
      return args.length === 2 && /^a\d+\/$/.test(args[1].toString())
        ? undefined
        : 'WHOAMI ok without attempt and prefix';
    default:
      return args.length === 0 ? undefined : `op ${e.op} ok with ${args.length} args`;
  }
}
