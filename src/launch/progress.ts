/**
 * Start-up progress: an ora spinner on a TTY ("3/4 workers running"), plain lines otherwise. Always on
 * stderr, so stdout stays the workers' (or the --json document's). ora loads only on a TTY.
 */
import type { Writable } from 'node:stream';
import { wantsColour } from './console.js';

export interface Progress {
  running(n: number, world: number, attempt: number): void;
  note(line: string): void;
  stop(): void;
}

export async function createProgress(
  stream: Writable & { isTTY?: boolean; columns?: number },
  quiet: boolean,
): Promise<Progress> {
  if (quiet) return { running() {}, note() {}, stop() {} };
  // A terminal that reports no width (a pty nobody sized) sends ora's line clearing into a loop: plain lines.
  if (!stream.isTTY || !stream.columns) {
    let announced = -1;
    return {
      running(n, world, attempt) {
        if (n === world && announced !== attempt) {
          announced = attempt;
          stream.write(`dtrain: ${n}/${world} workers running${attempt ? ` (attempt ${attempt})` : ''}\n`);
        }
      },
      note: (line) => stream.write(`dtrain: ${line}\n`),
      stop() {},
    };
  }
  const { default: ora } = await import('ora');
  const spinner = ora({ stream, text: 'starting workers', color: wantsColour(stream) ? 'cyan' : false }).start();
  return {
    running(n, world, attempt) {
      spinner.text = `${n}/${world} workers running${attempt ? ` (attempt ${attempt})` : ''}`;
      if (n === world) spinner.stopAndPersist({ symbol: '✔' });
    },
    note(line) {
      if (spinner.isSpinning) spinner.clear();
      stream.write(`dtrain: ${line}\n`);
      if (spinner.isSpinning) spinner.render();
    },
    stop: () => {
      if (spinner.isSpinning) spinner.stop();
    },
  };
}
