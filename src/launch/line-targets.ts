/**
 * The places a worker's lines go: its per-rank log file, and the console (directly for the in-process
 * agent, or as OutputRecords on a child agent's stdout). Each respects backpressure (see worker.ts).
 */
import { createWriteStream, type WriteStream } from 'node:fs';
import type { Writable } from 'node:stream';
import type { OutputRecord } from './agent-contract.js';
import { linesOf } from './line-split.js';
import type { LineTarget } from './worker.js';

export class FileTarget implements LineTarget {
  private readonly file: WriteStream;
  readonly closed: Promise<void>;

  constructor(path: string) {
    this.file = createWriteStream(path, { flags: 'a', mode: 0o640 });
    this.closed = new Promise((resolve) => {
      this.file.on('close', () => resolve());
      this.file.on('error', () => resolve());
    });
  }

  write(lines: Buffer): boolean {
    return this.file.write(lines);
  }

  onDrain(resume: () => void): void {
    this.file.once('drain', resume);
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

export function sinkTarget(sink: OutputSink, rank: number, stream: 'stdout' | 'stderr'): LineTarget {
  return {
    write: (block) => sink.lines(rank, stream, block),
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
