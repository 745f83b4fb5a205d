/**
 * The store's key-value state and its blocked requests (GET/WAIT on missing keys, BARRIER arrivals).
 * No sockets here: a Requester is anything that can take a response, so the same logic serves TCP
 * connections and tests. Every blocked request belongs to exactly one requester and is released by
 * its answer, its timeout, a CANCEL, or release(requester) when the connection closes.
 */
import {
  Op,
  Status,
  maxKeyBytes,
  maxTimeoutMs,
  parseBoundedUint,
  parseInt64,
  type Message,
  type StatusCode,
} from './frame.js';

export interface Requester {
  reply(response: Message): void;
}

interface Blocked {
  requester: Requester;
  id: number;
  timer: NodeJS.Timeout | undefined;
  /** GET: the key whose value is the answer */
  getKey?: string;
  /** WAIT: keys still missing */
  missing?: Set<string>;
  /** BARRIER: the barrier it waits at */
  barrier?: Barrier;
}

interface Barrier {
  name: string;
  count: number;
  arrivals: Set<Blocked>;
}

export interface StoreStateLimits {
  /** key + value bytes held, all keys together */
  maxStoredBytes: number;
  /** blocked requests one requester may hold at once */
  maxBlockedPerRequester: number;
}

/** Blocked requests one connection may hold (an agent's upstream carries all its workers'). */
export const maxBlockedPerConnection = 65536;
const defaultLimits: StoreStateLimits = { maxStoredBytes: 1024 ** 3, maxBlockedPerRequester: maxBlockedPerConnection };
const maxBarrierCount = 1_000_000;
const ok = Status.ok;

export class StoreState {
  private readonly values = new Map<string, Buffer>();
  private storedBytes = 0;
  private readonly keyWaiters = new Map<string, Set<Blocked>>();
  private readonly barriers = new Map<string, Barrier>();
  private readonly blockedBy = new Map<Requester, Map<number, Blocked>>();
  private readonly limits: StoreStateLimits;

  constructor(limits: Partial<StoreStateLimits> = {}) {
    this.limits = { ...defaultLimits, ...limits };
  }

  /** Answers a request now or blocks it; ops only the Unix proxy may answer get notAuthorized. */
  handle(requester: Requester, req: Message): void {
    const { code: op, id, args } = req;
    const answer = (status: StatusCode, out: (Buffer | string)[] = []) =>
      requester.reply({ code: status, id, args: out.map((a) => (typeof a === 'string' ? Buffer.from(a) : a)) });
    const bad = () => answer(Status.badRequest);
    if (this.blockedBy.get(requester)?.has(id)) return bad(); // ids must be unique among pending requests

    switch (op) {
      case Op.set: {
        const key = keyOf(args[0]);
        if (args.length !== 2 || key === undefined) return bad();
        if (!this.store(key, args[1])) return bad();
        return answer(ok);
      }
      case Op.get: {
        const key = keyOf(args[0]);
        const timeout = args.length === 2 ? parseBoundedUint(args[1], maxTimeoutMs) : undefined;
        if (key === undefined || timeout === undefined) return bad();
        const value = this.values.get(key);
        if (value !== undefined) return answer(ok, [value]);
        if (timeout === 0) return answer(Status.notFound);
        return this.block(requester, id, timeout, { getKey: key }, bad);
      }
      case Op.add: {
        const key = keyOf(args[0]);
        const delta = args.length === 2 ? parseInt64(args[1]) : undefined;
        if (key === undefined || delta === undefined) return bad();
        const current = this.values.get(key);
        const base = current === undefined ? 0n : parseInt64(current);
        if (base === undefined) return bad(); // the key holds something that is not a number
        const sum = base + delta;
        if (sum < -(2n ** 63n) || sum > 2n ** 63n - 1n) return bad();
        const text = Buffer.from(sum.toString());
        if (!this.store(key, text)) return bad();
        return answer(ok, [text]);
      }
      case Op.cas: {
        const key = keyOf(args[0]);
        if (args.length !== 3 || key === undefined) return bad();
        const [, expected, desired] = args as [Buffer, Buffer, Buffer];
        const current = this.values.get(key);
        const matches =
          expected.length === 0 ? current === undefined : current !== undefined && current.equals(expected);
        if (matches && !this.store(key, desired)) return bad();
        const after = this.values.get(key);
        return after === undefined ? answer(Status.notFound) : answer(ok, [after]);
      }
      case Op.wait: {
        const timeout = args.length >= 2 ? parseBoundedUint(args[0], maxTimeoutMs) : undefined;
        const keys = args.slice(1).map(keyOf);
        if (timeout === undefined || keys.some((k) => k === undefined)) return bad();
        const missing = new Set((keys as string[]).filter((k) => !this.values.has(k)));
        if (missing.size === 0) return answer(ok);
        if (timeout === 0) return answer(Status.notFound);
        return this.block(requester, id, timeout, { missing }, bad);
      }
      case Op.delete: {
        const key = keyOf(args[0]);
        if (args.length !== 1 || key === undefined) return bad();
        const existed = this.remove(key);
        return answer(ok, [existed ? '1' : '0']);
      }
      case Op.barrier: {
        const name = keyOf(args[0]);
        const count = args.length === 3 ? parseBoundedUint(args[1], maxBarrierCount) : undefined;
        const timeout = args.length === 3 ? parseBoundedUint(args[2], maxTimeoutMs) : undefined;
        if (name === undefined || !count || timeout === undefined) return bad();
        const existing = this.barriers.get(name);
        if (existing && existing.count !== count) return bad(); // callers disagree on the size
        const barrier = existing ?? { name, count, arrivals: new Set<Blocked>() };
        if (barrier.arrivals.size + 1 >= count) {
          // This caller completes the barrier: release everyone, and free the name for the next round.
          this.barriers.delete(name);
          for (const b of barrier.arrivals) this.finish(b, ok);
          return answer(ok);
        }
        if (timeout === 0) return answer(Status.timeout);
        return this.block(requester, id, timeout, { barrier }, bad);
      }
      case Op.check: {
        const keys = args.map(keyOf);
        if (keys.length === 0 || keys.some((k) => k === undefined)) return bad();
        return answer(
          ok,
          (keys as string[]).map((k) => (this.values.has(k) ? '1' : '0')),
        );
      }
      case Op.ping:
        return args.length === 0 ? answer(ok) : bad();
      case Op.cancel: {
        const target = args.length === 1 ? parseBoundedUint(args[0], 0xffffffff) : undefined;
        if (target === undefined) return bad();
        const blocked = this.blockedBy.get(requester)?.get(target);
        if (blocked) this.finish(blocked, Status.cancelled);
        return answer(ok, [blocked ? '1' : '0']);
      }
      case Op.jobKey:
      case Op.whoami:
        return answer(Status.notAuthorized);
      default:
        return bad();
    }
  }

  /** Drops every blocked request of a requester without answering it (its connection is gone). */
  release(requester: Requester): void {
    const mine = this.blockedBy.get(requester);
    if (!mine) return;
    for (const b of [...mine.values()]) this.unblock(b);
    this.blockedBy.delete(requester);
  }

  /** Drops everything blocked, for shutdown. */
  releaseAll(): void {
    for (const r of [...this.blockedBy.keys()]) this.release(r);
  }

  get blockedCount(): number {
    let n = 0;
    for (const m of this.blockedBy.values()) n += m.size;
    return n;
  }

  get keyCount(): number {
    return this.values.size;
  }

  private store(key: string, value: Buffer): boolean {
    const old = this.values.get(key);
    const delta = value.length - (old ? old.length : -key.length);
    if (this.storedBytes + delta > this.limits.maxStoredBytes) return false;
    this.storedBytes += delta;
    // Copy: the argument is a view into a frame buffer that may hold much more than this value.
    const copy = Buffer.from(value);
    this.values.set(key, copy);
    this.wake(key, copy);
    return true;
  }

  private remove(key: string): boolean {
    const old = this.values.get(key);
    if (old === undefined) return false;
    this.storedBytes -= key.length + old.length;
    this.values.delete(key);
    return true;
  }

  private wake(key: string, value: Buffer): void {
    const waiters = this.keyWaiters.get(key);
    if (!waiters) return;
    for (const b of [...waiters]) {
      if (b.getKey !== undefined) this.finish(b, ok, [value]);
      else if (b.missing) {
        b.missing.delete(key);
        waiters.delete(b);
        if (b.missing.size === 0) this.finish(b, ok);
      }
    }
    if (waiters.size === 0) this.keyWaiters.delete(key);
  }

  private block(
    requester: Requester,
    id: number,
    timeoutMs: number,
    what: Pick<Blocked, 'getKey' | 'missing' | 'barrier'>,
    refuse: () => void,
  ): void {
    let mine = this.blockedBy.get(requester);
    if (!mine) this.blockedBy.set(requester, (mine = new Map<number, Blocked>()));
    if (mine.size >= this.limits.maxBlockedPerRequester) return refuse();
    const b: Blocked = { requester, id, timer: undefined, ...what };
    mine.set(id, b);
    for (const key of b.getKey !== undefined ? [b.getKey] : (b.missing ?? [])) {
      let set = this.keyWaiters.get(key);
      if (!set) this.keyWaiters.set(key, (set = new Set()));
      set.add(b);
    }
    if (b.barrier) {
      b.barrier.arrivals.add(b);
      this.barriers.set(b.barrier.name, b.barrier);
    }
    b.timer = setTimeout(() => this.finish(b, Status.timeout), timeoutMs);
  }

  private finish(b: Blocked, status: StatusCode, args: Buffer[] = []): void {
    this.unblock(b);
    b.requester.reply({ code: status, id: b.id, args });
  }

  private unblock(b: Blocked): void {
    clearTimeout(b.timer);
    const mine = this.blockedBy.get(b.requester);
    mine?.delete(b.id);
    if (mine?.size === 0) this.blockedBy.delete(b.requester);
    for (const key of b.getKey !== undefined ? [b.getKey] : (b.missing ?? [])) {
      const set = this.keyWaiters.get(key);
      set?.delete(b);
      if (set?.size === 0) this.keyWaiters.delete(key);
    }
    if (b.barrier) {
      b.barrier.arrivals.delete(b);
      // A barrier nobody waits at any more is forgotten, so a later round may pick another size.
      if (b.barrier.arrivals.size === 0 && this.barriers.get(b.barrier.name) === b.barrier) {
        this.barriers.delete(b.barrier.name);
      }
    }
  }
}

/** Keys are byte strings; latin1 maps each byte to one UTF-16 unit, so the Map key is lossless. */
function keyOf(arg: Buffer | undefined): string | undefined {
  if (arg === undefined || arg.length === 0 || arg.length > maxKeyBytes) return undefined;
  return arg.toString('latin1');
}
