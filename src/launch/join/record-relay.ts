/**
 * Workers' output from a joined agent to the controller's console, through the store (a joined agent
 * has no stdout the controller reads, unlike an SSH channel or an srun step). The agent side is a
 * Writable the agent's RecordSink writes NDJSON OutputRecords into; each batch of writes becomes one
 * store value. The controller side reads the values in order, deletes them, acknowledges them, and feeds
 * them to relayRecords like an agent's stdout. Flow control: at most `recordWindow` values in flight.
 */
import { PassThrough, Writable } from 'node:stream';
import type { StoreClient } from '../../store/index.js';
import type { OutputSink } from '../line-targets.js';
import { getForever } from '../local-node.js';
import { relayRecords } from '../store-node.js';
import { joinKeys, recordWindow } from './join-contract.js';

/** Agent side. `written` counts the values stored so far (JoinDone.records once the writer finished). */
export class StoreRecordWriter extends Writable {
  written = 0;

  constructor(
    private readonly store: StoreClient,
    private readonly nodeRank: number,
  ) {
    super({ highWaterMark: 256 * 1024 });
  }

  override _writev(chunks: { chunk: Buffer }[], done: (err?: Error | null) => void): void {
    this.put(Buffer.concat(chunks.map((c) => c.chunk))).then(() => done(), done);
  }

  override _write(chunk: Buffer, _enc: BufferEncoding, done: (err?: Error | null) => void): void {
    this.put(chunk).then(() => done(), done);
  }

  private async put(value: Buffer): Promise<void> {
    const seq = this.written;
    if (seq >= recordWindow) {
      const ack = joinKeys.ack(this.nodeRank, seq - recordWindow);
      await getForever(this.store, ack, 5000);
      await this.store.delete(ack);
    }
    await this.store.set(joinKeys.out(this.nodeRank, seq), value);
    this.written = seq + 1;
  }
}

/** Controller side: relays one node's records until stopped; `consumed` counts the values relayed. */
export class StoreRecordReader {
  consumed = 0;
  private stopped = false;
  private readonly waiters = new Set<() => void>();

  constructor(
    private readonly store: StoreClient,
    private readonly nodeRank: number,
    console: OutputSink | null,
  ) {
    const lines = new PassThrough();
    relayRecords(lines, console);
    void this.pump(lines).finally(() => lines.end());
  }

  /** Resolves once `count` values have been relayed, or after `timeoutMs`. */
  async drained(count: number, timeoutMs: number): Promise<void> {
    const end = Date.now() + timeoutMs;
    while (this.consumed < count && !this.stopped && Date.now() < end) {
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, Math.max(1, end - Date.now()));
        this.waiters.add(() => (clearTimeout(timer), resolve()));
      });
    }
  }

  stop(): void {
    this.stopped = true;
    this.wake();
  }

  private wake(): void {
    for (const w of this.waiters) w();
    this.waiters.clear();
  }

  private async pump(lines: PassThrough): Promise<void> {
    for (let seq = 0; !this.stopped; seq++) {
      let value: Buffer;
      try {
        value = await getForever(this.store, joinKeys.out(this.nodeRank, seq), 5000);
        await this.store.delete(joinKeys.out(this.nodeRank, seq));
        await this.store.set(joinKeys.ack(this.nodeRank, seq), '');
      } catch {
        return; // the store is closing with the job
      }
      if (!lines.write(value)) await new Promise((resolve) => lines.once('drain', resolve));
      this.consumed = seq + 1;
      this.wake();
    }
  }
}
