/**
 * `dtrain top [RUN]`: `dtrain status`, live. On a terminal it redraws every second on the alternate screen
 * (stragglers highlighted, `q` or Ctrl-C quits); otherwise it prints one plain table a second. It ends by
 * itself when the run does, or after --iterations tables. A run that does not answer at the start is exit 2.
 */
import type { CommandModule } from 'yargs';
import { UsageError } from '../util/errors.js';

interface TopArgs {
  run?: string;
  iterations?: number;
}

const REFRESH_MS = 1000;

export const topCommand: CommandModule<object, TopArgs> = {
  command: 'top [run]',
  describe: 'follow a running job live: per-rank state, speed, CPU, memory, stragglers highlighted (q quits)',
  builder: (y) =>
    y
      .positional('run', {
        type: 'string',
        describe: 'a run id or its log folder (default: your newest job running on this machine)',
      })
      .option('iterations', { type: 'number', describe: 'stop after this many refreshes' }),
  handler: async (args) => {
    if (args.iterations !== undefined && !(Number.isInteger(args.iterations) && args.iterations > 0))
      throw new UsageError(`--iterations must be a positive integer, got ${String(args.iterations)}`);
    const { locateRun } = await import('../launch/run-query.js');
    const { renderStatus } = await import('./status-table.js');
    const source = await locateRun(args.run);
    const out = process.stdout;
    const tty = Boolean(out.isTTY && process.stdin.isTTY);
    const { Chalk, default: chalk } = await import('chalk');
    const { colorLevel } = await import('./schedule.js');
    const level = tty ? colorLevel(chalk.level) : 0;
    const color = level ? new Chalk({ level }) : undefined;

    let quit: () => void = () => {};
    const quitting = new Promise<void>((resolve) => (quit = resolve));
    const restore = () => {
      if (!tty) return;
      process.stdin.setRawMode(false);
      process.stdin.pause();
      out.write('\x1b[?25h\x1b[?1049l'); // cursor back, main screen back
    };
    if (tty) {
      out.write('\x1b[?1049h\x1b[?25l');
      process.stdin.setRawMode(true);
      process.stdin.resume();
      process.stdin.on('data', (b: Buffer) => {
        const key = b.toString();
        if (key === 'q' || key === 'Q' || key === '\x03') quit();
      });
    }
    let last = '';
    try {
      for (let n = 0; args.iterations === undefined || n < args.iterations; n++) {
        let frame: string;
        let ended = false;
        try {
          const doc = await source.fetch();
          frame = renderStatus(doc, { color, ...(tty ? { maxRows: Math.max(1, (out.rows || 40) - 6) } : {}) });
          ended = doc.state === 'succeeded' || doc.state === 'failed';
        } catch (err) {
          if (!last) throw err; // the run does not answer: one line on stderr, exit 2
          frame = 'the run ended\n';
          ended = true;
        }
        if (tty) out.write('\x1b[H\x1b[2J' + frame + (ended ? '' : '\nq quits\n'));
        else out.write((n ? '\n' : '') + frame);
        last = frame;
        if (ended) break;
        // not unref'd: off a terminal nothing else keeps the process alive until the next table
        const tick = new Promise<'tick'>((r) => setTimeout(() => r('tick'), REFRESH_MS));
        if ((await Promise.race([tick, quitting.then(() => 'quit' as const)])) === 'quit') break;
      }
    } finally {
      restore();
    }
    if (tty && last) out.write(last);
  },
};
