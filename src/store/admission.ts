/**
 * Who gets into the store, written once (PROTOCOL.md "Admission" documents the same numbers). Strangers
 * cost a slot, never the job: connections that have not proved the job key share a small budget of
 * their own and a short deadline, an authenticated connection never counts against that budget, and a
 * full budget evicts its oldest connection rather than turning the newest away. An agent spends one
 * round trip unauthenticated, so idle strangers are always older than it; one evicted anyway is told
 * "busy" and tries again (connectWithRetry).
 */

/** Connections still authenticating at once; a new one beyond this evicts the oldest. */
export const preAuthBudget = 64;
/** A connection must finish the handshake within this long of connecting. */
export const handshakeDeadlineMs = 5000;
/** Clients that were turned away wait this long before the first retry, doubling up to retryMaxDelayMs. */
export const retryFirstDelayMs = 50;
export const retryMaxDelayMs = 2000;

/** The unauthenticated connections, oldest first, within their budget. */
export class PreAuthQueue<T> {
  private readonly waiting = new Set<T>();

  constructor(private readonly budget: number) {}

  get size(): number {
    return this.waiting.size;
  }

  /** Admits `conn`; returns the connection it displaced (the oldest) when the budget was full. */
  admit(conn: T): T | undefined {
    let evicted: T | undefined;
    if (this.waiting.size >= this.budget) {
      for (const oldest of this.waiting) {
        evicted = oldest; // a Set iterates in insertion order: the first is the oldest
        break;
      }
      if (evicted !== undefined) this.waiting.delete(evicted);
    }
    this.waiting.add(conn);
    return evicted;
  }

  /** `conn` authenticated or closed: it no longer counts. */
  leave(conn: T): void {
    this.waiting.delete(conn);
  }
}

/** The pause before retry number `attempt` (0-based): exponential, with jitter so retries spread out. */
export function retryDelayMs(attempt: number): number {
  const ceiling = Math.min(retryMaxDelayMs, retryFirstDelayMs * 2 ** Math.min(attempt, 16));
  return Math.round(ceiling * (0.5 + Math.random() / 2));
}
