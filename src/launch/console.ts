/**
 * The controller's console: every relayed line whole, prefixed `[rank N]` (`[host rank N]` when the job
 * spans several hosts), coloured per rank on a TTY (NO_COLOR / FORCE_COLOR respected). One write per
 * batch of lines, so ranks never interleave mid-line; a full stream pauses the workers (line-targets.ts).
 */
import type { Writable } from 'node:stream';
import type { OutputSink } from './line-targets.js';
import { linesOf } from './line-split.js';

const palette = [36, 33, 35, 32, 34, 31, 96, 93, 95, 92, 94, 91];

export function wantsColour(stream: Writable & { isTTY?: boolean }, env = process.env): boolean {
  if (env.FORCE_COLOR !== undefined) return env.FORCE_COLOR !== '0' && env.FORCE_COLOR !== 'false';
  if (env.NO_COLOR !== undefined && env.NO_COLOR !== '') return false;
  return stream.isTTY === true && env.TERM !== 'dumb';
}

export interface ConsoleOptions {
  /** where workers' stdout lines go (stderr under --json) */
  out: Writable;
  err: Writable;
  /** force colour on or off for both streams; by default each stream decides for itself (wantsColour) */
  colour?: boolean;
  /** host of each rank, when the job spans several hosts */
  hostOf?: (rank: number) => string | undefined;
}

export class ConsoleSink implements OutputSink {
  private readonly prefixes = new Map<string, string>();
  private readonly colourOf: Map<Writable, boolean>;
  /** streams whose reader went away (EPIPE: `dtrain launch | head`): their lines are dropped, the job goes on */
  private readonly broken = new Set<Writable>();
  private readonly waiting = new Map<Writable, (() => void)[]>();

  constructor(private readonly opts: ConsoleOptions) {
    // `dtrain launch > out.log` on a terminal: stderr keeps its colours, the file gets none.
    this.colourOf = new Map([opts.out, opts.err].map((s) => [s, opts.colour ?? wantsColour(s)]));
    for (const s of new Set([opts.out, opts.err])) {
      s.setMaxListeners(0);
      s.on('error', () => {
        this.broken.add(s);
        for (const resume of this.waiting.get(s)?.splice(0) ?? []) resume();
      });
    }
  }

  lines(rank: number, stream: 'stdout' | 'stderr', block: Buffer): boolean {
    const target = stream === 'stdout' ? this.opts.out : this.opts.err;
    if (this.broken.has(target)) return true;
    const prefix = this.prefix(rank, this.colourOf.get(target)!);
    const text = linesOf(block);
    let joined = '';
    for (const line of text) joined += prefix + line + '\n';
    return target.write(joined);
  }

  onDrain(stream: 'stdout' | 'stderr', resume: () => void): void {
    const target = stream === 'stdout' ? this.opts.out : this.opts.err;
    if (this.broken.has(target)) return resume();
    let list = this.waiting.get(target);
    if (!list) this.waiting.set(target, (list = []));
    list.push(resume);
    if (list.length === 1) {
      target.once('drain', () => {
        for (const r of this.waiting.get(target)?.splice(0) ?? []) r();
      });
    }
  }

  private prefix(rank: number, colour: boolean): string {
    const key = `${rank}${colour ? 'c' : ''}`;
    let p = this.prefixes.get(key);
    if (p === undefined) {
      const host = this.opts.hostOf?.(rank);
      const label = host ? `[${host} rank ${rank}]` : `[rank ${rank}]`;
      p = colour ? `\x1b[${palette[rank % palette.length]}m${label}\x1b[39m ` : `${label} `;
      this.prefixes.set(key, p);
    }
    return p;
  }
}
