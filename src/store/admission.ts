/**
 * Who gets into the store, written once (PROTOCOL.md "Admission" documents the same numbers). One policy for
 * every connection, agent or stranger alike (the store cannot tell them apart before the proof): until it
 * proves the job key a connection counts against a budget of unauthenticated connections and has a short
 * deadline; once it has, it never counts against that budget and is never evicted for anyone. A full budget
 * evicts its oldest connection rather than turning the newest away: an agent spends one round trip
 * unauthenticated, so idle strangers are always older than it; one evicted anyway is told "busy" and tries
 * again (retryAdmission, client.ts).
 *
 * The budget is as large as the listen backlog, so that a burst of agents (10,000 joining at once) that the
 * kernel hands over in one turn of the event loop never evicts its own members; strangers may hold at most
 * a quarter of the file descriptors the store's process may open, so they never starve the agents of them.
 */

/** Connections still authenticating at once (at most); a new one beyond this evicts the oldest. */
export const preAuthBudget = 4096;
/** The budget never drops below this, however low the open-file limit. */
export const minPreAuthBudget = 64;
/** The share of the process's open-file limit that strangers may hold (open-files.ts). */
export const preAuthShareOfOpenFiles = 1 / 4;
/** The listen backlog the store asks for (Linux caps it at net.core.somaxconn). */
export const listenBacklog = preAuthBudget;
/** A connection must finish the handshake within this long of connecting. */
export const handshakeDeadlineMs = 5000;
/** Clients that were turned away wait this long before the first retry, doubling up to retryMaxDelayMs. */
export const retryFirstDelayMs = 50;
export const retryMaxDelayMs = 2000;

/** The unauthenticated budget of a process that may open `openFiles` files (undefined: not known). */
export function preAuthBudgetFor(openFiles: number | undefined): number {
  if (openFiles === undefined || !(openFiles > 0)) return preAuthBudget;
  return Math.max(minPreAuthBudget, Math.min(preAuthBudget, Math.floor(openFiles * preAuthShareOfOpenFiles)));
}

/**
 * The unauthenticated connections, oldest first, within their budget, each with the time it was admitted,
 * so one timer for the oldest serves every handshake deadline (a timer per connection costs a store
 * admitting thousands of agents at once).
 */
export class PreAuthQueue<T> {
  /** a Map iterates in insertion order: the first is the oldest */
  private readonly waiting = new Map<T, number>();

  constructor(private readonly budget: number) {}

  get size(): number {
    return this.waiting.size;
  }

  /** Admits `conn` at `now` (monotonic ms); returns the one it displaced (the oldest) when the budget was full. */
  admit(conn: T, now = performance.now()): T | undefined {
    let evicted: T | undefined;
    if (this.waiting.size >= this.budget) {
      for (const oldest of this.waiting.keys()) {
        evicted = oldest;
        break;
      }
      if (evicted !== undefined) this.waiting.delete(evicted);
    }
    this.waiting.set(conn, now);
    return evicted;
  }

  /** `conn` authenticated or closed: it no longer counts. */
  leave(conn: T): void {
    this.waiting.delete(conn);
  }

  /** When the oldest still waiting was admitted; undefined when none is. */
  get oldestAdmittedAt(): number | undefined {
    for (const at of this.waiting.values()) return at;
    return undefined;
  }

  /** Those admitted at or before `cutoff`, oldest first. */
  admittedBy(cutoff: number): T[] {
    const out: T[] = [];
    for (const [conn, at] of this.waiting) {
      if (at > cutoff) break;
      out.push(conn);
    }
    return out;
  }
}

/** The pause before retry number `attempt` (0-based): exponential, with jitter so retries spread out. */
export function retryDelayMs(attempt: number): number {
  const ceiling = Math.min(retryMaxDelayMs, retryFirstDelayMs * 2 ** Math.min(attempt, 16));
  return Math.round(ceiling * (0.5 + Math.random() / 2));
}
