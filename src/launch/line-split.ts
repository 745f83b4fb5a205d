/**
 * Cuts a byte stream into whole lines so that relayed output is never split or interleaved mid-line.
 * A line longer than `maxLine` is cut there (with a newline added) rather than held without bound:
 * the memory cap matters more than one pathological line.
 */
const newline = 0x0a;

export class LineSplitter {
  private carry: Buffer | null = null;

  constructor(private readonly maxLine = 1 << 20) {}

  /** The complete lines in carry + chunk (each ending in '\n'), or null when none completed yet. */
  push(chunk: Buffer): Buffer | null {
    const last = chunk.lastIndexOf(newline);
    if (last < 0) {
      this.carry = this.carry ? Buffer.concat([this.carry, chunk]) : chunk;
      if (this.carry.length < this.maxLine) return null;
      const cut = Buffer.concat([this.carry, Buffer.from('\n')]);
      this.carry = null;
      return cut;
    }
    const head = chunk.subarray(0, last + 1);
    const whole = this.carry ? Buffer.concat([this.carry, head]) : head;
    this.carry = last + 1 < chunk.length ? Buffer.from(chunk.subarray(last + 1)) : null;
    return whole;
  }

  /** At end of stream: the unterminated last line, newline added, or null. */
  flush(): Buffer | null {
    if (!this.carry) return null;
    const rest = Buffer.concat([this.carry, Buffer.from('\n')]);
    this.carry = null;
    return rest;
  }
}

/** Splits a buffer of whole lines (each ending in '\n') into strings without the newlines. */
export function linesOf(block: Buffer): string[] {
  const text = block.toString('utf8');
  return text.slice(0, -1).split('\n');
}

/** The last `n` lines of a block of whole lines, scanning from the end (cheap for large blocks). */
export function lastLines(block: Buffer, n: number): string[] {
  let end = block.length - 1; // the final '\n'
  const out: string[] = [];
  while (end >= 0 && out.length < n) {
    const start = block.lastIndexOf(newline, end - 1) + 1;
    out.push(block.toString('utf8', start, end));
    end = start - 1;
  }
  return out.reverse();
}
