/**
 * The simulated timeline in a terminal: one row per stage, one cell per time unit (a forward takes one
 * unit, a backward two), labelled with the microbatch, idle units drawn as dots. Colour is optional
 * (the caller passes a chalk instance at level 0 when colour is off), so the picture reads without it.
 * Timelines wider than the terminal are cut into bands that stack.
 */
import type { ChalkInstance } from 'chalk';
import { opLabel, type PipelinePlan } from './schedule.js';
import { describeShape } from './report.js';

type Style = 'forward' | 'backward' | 'idle' | 'plain';

interface Cell {
  ch: string;
  style: Style;
}

export interface TextOptions {
  color: ChalkInstance;
  /** terminal width to fit bands into */
  columns: number;
}

/**
 * The most characters (stages × timeline width) a terminal picture may have: it is built cell by cell, and
 * beyond this it takes gigabytes and minutes, for a picture nobody can read (`dtrain schedule --json` can).
 */
export const MAX_TEXT_CELLS = 4_000_000;

/** Characters per time unit, one of them a gap. */
function unitOf(plan: PipelinePlan): number {
  const chunked = plan.shape.kind === 'interleaved-1f1b';
  // no spread into Math.max: a million labels overflow the stack
  return (
    plan.timeline.perStage.reduce((w, ops) => ops.reduce((x, o) => Math.max(x, opLabel(o, chunked).length), w), 2) + 1
  );
}

/** The picture's stages × width in characters, to check against MAX_TEXT_CELLS before drawing it. */
export function textCells(plan: PipelinePlan): number {
  return plan.shape.stages * plan.timeline.makespan * unitOf(plan);
}

export function renderTimelineText(plan: PipelinePlan, opts: TextOptions): string {
  const { timeline, schedules } = plan;
  const chunked = plan.shape.kind === 'interleaved-1f1b';
  const unit = unitOf(plan);
  const width = timeline.makespan * unit;

  const rows: Cell[][] = timeline.perStage.map((ops) => {
    const row: Cell[] = Array.from({ length: width }, (_, i) => ({
      ch: i % unit === 0 ? '·' : ' ',
      style: 'idle',
    }));
    for (const o of ops) {
      const from = o.start * unit;
      const to = o.end * unit - 1; // leave the last character as a gap so neighbouring ops stay apart
      const text = opLabel(o, chunked).padEnd(to - from);
      for (let i = from; i < to; i++) row[i] = { ch: text[i - from], style: o.op };
      row[to] = { ch: ' ', style: 'plain' };
    }
    return row;
  });

  const names = schedules.map((s) => `stage ${s.stage}`);
  const nameWidth = names.reduce((w, n) => Math.max(w, n.length), 'time'.length) + 1;
  const tail = schedules.map((s) => `  peak ${s.peakInFlight}`);
  const tailWidth = tail.reduce((w, x) => Math.max(w, x.length), 0);
  const band = Math.max(unit, Math.floor((opts.columns - nameWidth - 2 - tailWidth) / unit) * unit);

  const c = opts.color;
  const paint = (cells: Cell[]): string => {
    let out = '';
    let i = 0;
    while (i < cells.length) {
      let j = i;
      while (j < cells.length && cells[j].style === cells[i].style) j++;
      const run = cells
        .slice(i, j)
        .map((x) => x.ch)
        .join('');
      const style = cells[i].style;
      out +=
        style === 'forward'
          ? c.bgBlue.white(run)
          : style === 'backward'
            ? c.bgGreen.black(run)
            : style === 'idle'
              ? c.dim(run)
              : run;
      i = j;
    }
    return out;
  };

  const pct = (x: number) => `${(100 * x).toFixed(1)}%`;
  const { stages: p, microbatches: m, virtualStages: v } = plan.shape;
  const lines = [
    `${describeShape(plan)}; bubble ${pct(timeline.bubbleFraction)} of the timeline`,
    c.dim(
      `(p-1)/(${v > 1 ? 'v·' : ''}m+p-1) = ${pct((p - 1) / (v * m + p - 1))}; simulated with backward = 2 × ` +
        `forward, free communication`,
    ),
  ];
  for (let from = 0; from < width; from += band) {
    const to = Math.min(width, from + band);
    lines.push('');
    lines.push('time'.padEnd(nameWidth) + ' ' + ruler(from, to, unit));
    rows.forEach((row, s) => {
      const last = to === width ? tail[s] : '';
      lines.push(names[s].padEnd(nameWidth) + '│' + paint(row.slice(from, to)) + last);
    });
  }
  lines.push('');
  lines.push(
    `${c.bgBlue.white(' F ')} forward  ${c.bgGreen.black(' B ')} backward  ${c.dim('·')} idle unit` +
      (chunked ? '  (F3.1 = microbatch 3, chunk 1)' : '  (F3 = microbatch 3)'),
    'peak = most activations a stage holds at once',
  );
  return lines.join('\n') + '\n';
}

/** Time-unit numbers every 5 units (or 10 when cells are narrow) above the rows. */
function ruler(from: number, to: number, unit: number): string {
  const every = unit >= 4 ? 5 : 10;
  let out = '';
  for (let pos = from; pos < to; pos += unit) {
    const t = pos / unit;
    if (out.length > pos - from) continue; // a long number is still being written
    out = out.padEnd(pos - from) + (t % every === 0 ? String(t) : '');
  }
  return out.slice(0, to - from);
}
