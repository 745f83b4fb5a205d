/**
 * The places a worker's lines go: its per-rank log file, and the console (directly for the in-process
 * agent, or as OutputRecords on a child agent's stdout). Each respects backpressure (see worker.ts).
 */
import { createWriteStream, type WriteStream } from 'node:fs';
import type { Writable } from 'node:stream';
import type { OutputRecord } from './agent-contract.js';
import { cutLongLines, linesOf } from './line-split.js';
import type { LineTarget } from './worker.js';

export class FileTarget implements LineTarget {
  private readonly file: WriteStream;
  readonly closed: Promise<void>;
  /** the file cannot be written (disk full, gone): lines are dropped so the worker is never held up */
  private failed = false;
  private readonly stalled = new Set<() => void>();

  /** `onError`: called once with the reason when the file cannot be opened or written. */
  constructor(path: string, onError?: (message: string) => void) {
    this.file = createWriteStream(path, { flags: 'a', mode: 0o640 });
    this.closed = new Promise((resolve) => {
      this.file.on('close', () => resolve());
      this.file.on('error', (err) => {
        this.failed = true;
        onError?.(err.message);
        // a failed stream never drains: release whoever waits, or the worker blocks on its full pipe
        for (const resume of [...this.stalled]) resume();
        resolve();
      });
    });
  }

  write(lines: Buffer): boolean {
    return this.failed || this.file.write(lines);
  }

  onDrain(resume: () => void): void {
    const once = () => {
      if (!this.stalled.delete(once)) return;
      this.file.off('drain', once);
      resume();
    };
    this.stalled.add(once);
    this.file.once('drain', once);
  }

  end(): Promise<void> {
    this.file.end();
    return this.closed;
  }
}

/** Whole lines of one rank and stream, to be prefixed by whoever prints them. */
export interface OutputSink {
  lines(rank: number, stream: 'stdout' | 'stderr', block: Buffer): boolean;
  onDrain(stream: 'stdout' | 'stderr', resume: () => void): void;
}

/**
 * Longest line relayed to the console (directly, or as an OutputRecord on its way there): longer ones are
 * cut with a note naming the log file, which keeps them whole. Bounds what one line costs the terminal and
 * the controller, whatever a worker writes.
 */
export const CONSOLE_LINE_BYTES = 16 * 1024;

/** The name of a rank's log file in its attempt's log folder. */
export function logFileName(rank: number, stream: 'stdout' | 'stderr'): string {
  return `rank_${rank}.${stream === 'stdout' ? 'out' : 'err'}`;
}

export function sinkTarget(sink: OutputSink, rank: number, stream: 'stdout' | 'stderr'): LineTarget {
  const file = logFileName(rank, stream);
  return {
    write: (block) => sink.lines(rank, stream, cutLongLines(block, CONSOLE_LINE_BYTES, file)),
    onDrain: (resume) => sink.onDrain(stream, resume),
  };
}

/** A child agent's stdout: one NDJSON OutputRecord per batch of lines. */
export class RecordSink implements OutputSink {
  constructor(private readonly out: Writable) {
    out.setMaxListeners(0);
  }

  lines(rank: number, stream: 'stdout' | 'stderr', block: Buffer): boolean {
    const record: OutputRecord = { type: 'out', rank, stream, lines: linesOf(block) };
    return this.out.write(JSON.stringify(record) + '\n');
  }

  onDrain(_stream: 'stdout' | 'stderr', resume: () => void): void {
    this.out.once('drain', resume);
  }
}
