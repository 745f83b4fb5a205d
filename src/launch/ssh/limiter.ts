/**
 * Bounds on concurrent SSH handshakes: `ssh.concurrency` across all hosts, and 6 per host, because OpenSSH's
 * sshd starts dropping unauthenticated connections at MaxStartups (default 10:30:100), and its count of a
 * connection goes down only some time after the client saw authentication succeed (the listener learns it from
 * the session's process, later on a loaded host): 9 at once was seen dropped there.
 */
export const maxPendingPerHost = 6;

export class Limiter {
  private active = 0;
  private waiting: Array<() => void> = [];
  constructor(readonly limit: number) {
    if (!(limit >= 1)) throw new RangeError(`limit must be at least 1, got ${limit}`);
  }

  async run<T>(task: () => Promise<T>): Promise<T> {
    if (this.active >= this.limit) await new Promise<void>((resolve) => this.waiting.push(resolve));
    this.active++;
    try {
      return await task();
    } finally {
      this.active--;
      this.waiting.shift()?.();
    }
  }

  get pending(): number {
    return this.active;
  }
}

/** One global limiter plus one per host key (host:port), created on demand. */
export class HandshakeLimits {
  private readonly global: Limiter;
  private readonly perHost = new Map<string, Limiter>();
  constructor(concurrency: number) {
    this.global = new Limiter(concurrency);
  }

  run<T>(hostKey: string, task: () => Promise<T>): Promise<T> {
    let host = this.perHost.get(hostKey);
    if (!host) this.perHost.set(hostKey, (host = new Limiter(maxPendingPerHost)));
    const h = host;
    return h.run(() => this.global.run(task));
  }
}
