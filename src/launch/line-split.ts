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

/** What replaces the rest of a line cut at a limit (`file` names where the whole line is). */
export function cutNote(bytes: number, file?: string): string {
  return file ? `… [cut: ${bytes} bytes, whole line in ${file}]` : `… [cut: ${bytes} bytes]`;
}

/**
 * The last `n` lines of a block of whole lines, scanning from the end (cheap for large blocks); a line over
 * `maxBytes` keeps its first `maxBytes` bytes and a cut note.
 */
export function lastLines(block: Buffer, n: number, maxBytes = Infinity): string[] {
  let end = block.length - 1; // the final '\n'
  const out: string[] = [];
  while (end >= 0 && out.length < n) {
    const start = block.lastIndexOf(newline, end - 1) + 1;
    const length = end - start;
    out.push(
      length > maxBytes
        ? block.toString('utf8', start, start + maxBytes) + cutNote(length)
        : block.toString('utf8', start, end),
    );
    end = start - 1;
  }
  return out.reverse();
}

/** The last line of `block` (whole lines) that contains `mark`, cut at `maxBytes`; undefined: none. */
export function lastLineWith(block: Buffer, mark: Buffer, maxBytes = Infinity): string | undefined {
  const at = block.lastIndexOf(mark);
  if (at < 0) return undefined;
  const start = block.lastIndexOf(newline, at) + 1;
  const nl = block.indexOf(newline, at);
  const end = nl < 0 ? block.length : nl;
  return block.toString('utf8', start, Math.min(end, start + maxBytes));
}

/** `block` (whole lines) with every line over `maxBytes` cut there and a note naming `file` appended. */
export function cutLongLines(block: Buffer, maxBytes: number, file: string): Buffer {
  if (block.length <= maxBytes) return block;
  const parts: Buffer[] = [];
  let start = 0;
  let keptFrom = 0;
  while (start < block.length) {
    const nl = block.indexOf(newline, start);
    const end = nl < 0 ? block.length : nl;
    if (end - start > maxBytes) {
      parts.push(block.subarray(keptFrom, start + maxBytes), Buffer.from(cutNote(end - start, file)));
      keptFrom = end;
    }
    start = end + 1;
  }
  if (parts.length === 0) return block;
  parts.push(block.subarray(keptFrom));
  return Buffer.concat(parts);
}
