/**
 * `dtrain schedule`: draw a pipeline schedule (terminal timeline, SVG, or JSON). Parsing and checks here;
 * the schedule, its simulation and both pictures live in src/runtime/pipeline.
 */
import type { CommandModule } from 'yargs';
import { UsageError } from '../util/errors.js';
import { printJson } from './exit-point.js';

/** stage × microbatch × chunk cells: beyond this the simulation takes seconds and no picture is readable */
const MAX_DRAWN = 1_000_000;

interface ScheduleArgs {
  kind: unknown;
  stages: unknown;
  microbatches: unknown;
  'virtual-stages': unknown;
  json?: boolean;
  svg?: unknown;
}

export const scheduleCommand: CommandModule<object, ScheduleArgs> = {
  command: 'schedule',
  describe: 'draw a pipeline schedule: terminal timeline, --svg picture or --json, with its bubble fraction',
  builder: (y) =>
    y
      .option('kind', { type: 'string', demandOption: true, describe: '1f1b | gpipe | interleaved-1f1b' })
      .option('stages', { type: 'string', demandOption: true, describe: 'pipeline stages (ranks)' })
      .option('microbatches', { type: 'string', demandOption: true, describe: 'microbatches per step' })
      .option('virtual-stages', { type: 'string', default: '1', describe: 'model chunks per stage (interleaved-1f1b)' })
      .option('json', { type: 'boolean', default: false, describe: 'print one JSON document' })
      .option('svg', { type: 'string', describe: 'also write the timeline as an SVG picture to this file' })
      .example('$0 schedule --kind 1f1b --stages 4 --microbatches 8 --svg 1f1b.svg', '')
      .example('$0 schedule --kind interleaved-1f1b --stages 4 --microbatches 8 --virtual-stages 2', ''),
  handler: async (args) => {
    const shape = {
      kind: single('kind', args.kind) as '1f1b',
      stages: count('stages', args.stages),
      microbatches: count('microbatches', args.microbatches),
      virtualStages: count('virtual-stages', args['virtual-stages']),
    };
    const ops = shape.stages * shape.microbatches * shape.virtualStages;
    if (ops > MAX_DRAWN) {
      throw new UsageError(
        `${shape.stages} stages × ${shape.microbatches} microbatches × ${shape.virtualStages} chunks is too ` +
          `large to draw (at most ${MAX_DRAWN})`,
      );
    }
    const svgPath = args.svg === undefined ? undefined : single('svg', args.svg);
    if (svgPath === '') throw new UsageError('--svg needs a file name');
    const { planPipeline } = await import('../runtime/pipeline/schedule.js');
    const plan = planPipeline(shape);
    const text = args.json ? undefined : await import('../runtime/pipeline/timeline-text.js');
    // checked before the SVG is written: a refusal leaves nothing behind
    if (text && text.textCells(plan) > text.MAX_TEXT_CELLS) {
      throw new UsageError(
        `${shape.stages} stage${shape.stages === 1 ? '' : 's'} over ${plan.timeline.makespan} time units is too ` +
          `large to draw in a terminal ` +
          `(at most ${text.MAX_TEXT_CELLS} characters): --json prints the schedule`,
      );
    }
    if (svgPath !== undefined) {
      const { renderTimelineSvg } = await import('../runtime/pipeline/timeline-svg.js');
      const { closeSync, constants, openSync, writeSync } = await import('node:fs');
      try {
        // Without blocking: a FIFO with no reader would hold a plain open forever (here ENXIO at once), and the
        // fd that found the reader is the one written (closing it would end the reader's input).
        const { O_WRONLY, O_CREAT, O_TRUNC, O_NONBLOCK } = constants;
        const fd = openSync(svgPath, O_WRONLY | O_CREAT | O_TRUNC | O_NONBLOCK, 0o666);
        try {
          const data = Buffer.from(renderTimelineSvg(plan));
          for (let off = 0; off < data.length;) {
            try {
              off += writeSync(fd, data, off);
            } catch (err) {
              if ((err as NodeJS.ErrnoException).code !== 'EAGAIN') throw err;
              Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 10); // a full pipe: its reader is slow
            }
          }
        } finally {
          closeSync(fd);
        }
      } catch (err) {
        const code = (err as NodeJS.ErrnoException).code;
        const why = code === 'ENXIO' ? 'a pipe no process reads' : (code ?? (err as Error).message);
        throw new UsageError(`cannot write --svg ${svgPath}: ${why}`);
      }
    }
    if (!text) {
      const { scheduleReport } = await import('../runtime/pipeline/report.js');
      printJson(scheduleReport(plan));
      return;
    }
    const { Chalk, default: chalk } = await import('chalk');
    process.stdout.write(
      text.renderTimelineText(plan, {
        color: new Chalk({ level: colorLevel(chalk.level) }),
        columns: process.stdout.columns || 120,
      }),
    );
    if (svgPath !== undefined) process.stderr.write(`wrote ${svgPath}\n`);
  },
};

/** chalk already looks at the TTY and FORCE_COLOR; NO_COLOR (https://no-color.org) it leaves to us. */
export function colorLevel(detected: 0 | 1 | 2 | 3): 0 | 1 | 2 | 3 {
  const noColor = process.env.NO_COLOR !== undefined && process.env.NO_COLOR !== '';
  return noColor && process.env.FORCE_COLOR === undefined ? 0 : detected;
}

function single(name: string, v: unknown): string {
  if (Array.isArray(v)) throw new UsageError(`--${name} is given ${v.length} times; give it once`);
  return String(v);
}

function count(name: string, v: unknown): number {
  const text = single(name, v);
  if (!/^\d+$/.test(text) || Number(text) < 1)
    throw new UsageError(`--${name} must be a whole number >= 1, got "${text}"`);
  return Number(text);
}
