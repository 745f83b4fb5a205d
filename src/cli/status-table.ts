/**
 * The human view of a run's status document, shared by `dtrain status` and `dtrain top`: a header and one
 * row per rank, stragglers marked (`*`, and in colour where colour is on).
 */
import type { ChalkInstance } from 'chalk';
import type { RankStatus, RunStatusDoc } from '../launch/run-status.js';

export interface TableStyle {
  /** undefined: plain text */
  color?: ChalkInstance;
  /** rows beyond this many are summarised in one line (top fits the screen) */
  maxRows?: number;
}

const columns: [string, (r: RankStatus) => string][] = [
  ['RANK', (r) => String(r.rank)],
  ['NODE', (r) => String(r.node_rank)],
  ['HOST', (r) => r.host],
  ['PID', (r) => (r.pid ? String(r.pid) : '-')],
  ['STATE', (r) => r.state],
  ['STEP', (r) => opt(r.step, (v) => String(v))],
  ['STEP_S', (r) => opt(r.step_s, seconds)],
  ['COMPUTE_S', (r) => opt(r.compute_s, seconds)],
  ['SAMPLES/S', (r) => opt(r.samples_per_s, (v) => v.toFixed(1))],
  ['CPU%', (r) => r.cpu_percent.toFixed(0)],
  ['RSS', (r) => bytes(r.rss_bytes)],
  ['RESTARTS', (r) => String(r.restarts)],
  ['OUT_AGE', (r) => `${r.last_output_age_s.toFixed(0)}s`],
];

export function renderStatus(doc: RunStatusDoc, style: TableStyle = {}): string {
  const c = style.color;
  const lines: string[] = [];
  const head =
    `${doc.run_id}  ${doc.state}  attempt ${doc.attempt}  ${doc.world_size} ranks  ` + `started ${doc.started_at}`;
  lines.push(c ? c.bold(head) : head);
  if (doc.stale) {
    const text = `stale: ${doc.stale}`;
    lines.push(c ? c.red(text) : text);
  }
  if (doc.monitor_url) lines.push(`monitor: ${doc.monitor_url}`);
  const lost = doc.nodes.filter((n) => n.state === 'lost');
  if (lost.length) lines.push(`lost nodes: ${lost.map((n) => `${n.node_rank} (${n.host})`).join(', ')}`);
  if (doc.stragglers.length) {
    const text = `stragglers (compute time > group median + 20%): ranks ${doc.stragglers.join(', ')}`;
    lines.push(c ? c.yellow(text) : text);
  }
  const shown = style.maxRows !== undefined && doc.ranks.length > style.maxRows ? style.maxRows : doc.ranks.length;
  // stragglers and failed ranks first when not every rank fits
  const ranks =
    shown < doc.ranks.length
      ? [...doc.ranks].sort((a, b) => weight(b) - weight(a) || a.rank - b.rank).slice(0, shown)
      : doc.ranks;
  const cells = ranks.map((r) => columns.map(([, f]) => f(r)));
  const widths = columns.map(([h], i) => Math.max(h.length, ...cells.map((row) => row[i].length)));
  const fmt = (row: string[]) =>
    row
      .map((v, i) => v.padEnd(widths[i]))
      .join('  ')
      .trimEnd();
  lines.push(fmt(columns.map(([h]) => h)));
  ranks.forEach((r, i) => {
    const line = `${fmt(cells[i])}${r.straggler ? '  *' : ''}`;
    if (!c) lines.push(line);
    else if (r.state === 'failed') lines.push(c.red(line));
    else if (r.straggler) lines.push(c.yellow.bold(line));
    else lines.push(line);
  });
  if (shown < doc.ranks.length) lines.push(`... ${doc.ranks.length - shown} more ranks (dtrain status --json)`);
  return lines.join('\n') + '\n';
}

function weight(r: RankStatus): number {
  return (r.state === 'failed' ? 2 : 0) + (r.straggler ? 1 : 0);
}

function opt(v: number | undefined, f: (v: number) => string): string {
  return v === undefined ? '-' : f(v);
}

function seconds(v: number): string {
  return v >= 10 ? v.toFixed(1) : v >= 0.1 ? v.toFixed(3) : v.toFixed(4);
}

function bytes(n: number): string {
  if (n >= 1 << 30) return `${(n / (1 << 30)).toFixed(1)}G`;
  if (n >= 1 << 20) return `${(n / (1 << 20)).toFixed(0)}M`;
  return `${(n / 1024).toFixed(0)}K`;
}
