/**
 * `/metrics`: a run's status in the Prometheus text exposition format (version 0.0.4), per rank and per
 * collective op. Names follow Prometheus' conventions (base units, `_total` for counters) so that
 * `promtool check metrics` passes; test/integration/launch/monitor.test.ts runs it.
 */
import type { RankStatus, RunStatus } from './run-status.js';

export const METRICS_CONTENT_TYPE = 'text/plain; version=0.0.4; charset=utf-8';

type Labels = Record<string, string | number>;

class Exposition {
  private readonly lines: string[] = [];

  family(name: string, type: 'gauge' | 'counter', help: string, samples: [Labels, number][]): void {
    if (!samples.length) return;
    this.lines.push(`# HELP ${name} ${help}`, `# TYPE ${name} ${type}`);
    for (const [labels, value] of samples) this.lines.push(`${name}${labelText(labels)} ${numberText(value)}`);
  }

  text(): string {
    return this.lines.join('\n') + '\n';
  }
}

export function renderMetrics(status: RunStatus): string {
  const doc = status.doc();
  const run = { run_id: doc.run_id };
  const m = new Exposition();
  const states = ['starting', 'running', 'restarting', 'stopping', 'succeeded', 'failed', 'hung'];
  m.family(
    'dtrain_run_state',
    'gauge',
    'The run state: 1 for the current one.',
    states.map((s) => [{ ...run, state: s }, s === doc.state ? 1 : 0]),
  );
  m.family('dtrain_world_size', 'gauge', 'Ranks in the job.', [[run, doc.world_size]]);
  m.family('dtrain_restarts_total', 'counter', 'Whole-group restarts so far.', [[run, doc.attempt]]);
  m.family('dtrain_membership_changes_total', 'counter', 'Nodes lost or joined since the start.', [
    [run, doc.membership_changes],
  ]);
  const perRank = (pick: (r: RankStatus) => number | undefined): [Labels, number][] =>
    doc.ranks.flatMap((r) => {
      const v = pick(r);
      return v === undefined ? [] : [[{ ...run, rank: r.rank, host: r.host }, v] as [Labels, number]];
    });
  m.family(
    'dtrain_rank_up',
    'gauge',
    '1 while the rank runs.',
    perRank((r) => (r.state === 'running' ? 1 : 0)),
  );
  m.family(
    'dtrain_rank_step',
    'gauge',
    'The last step the rank reported.',
    perRank((r) => r.step),
  );
  m.family(
    'dtrain_rank_step_seconds',
    'gauge',
    'Mean step time over the last 20 steps.',
    perRank((r) => r.step_s),
  );
  m.family(
    'dtrain_rank_compute_seconds',
    'gauge',
    'Mean step time minus collective wait over the last 20 steps.',
    perRank((r) => r.compute_s),
  );
  m.family(
    'dtrain_rank_samples_per_second',
    'gauge',
    'Samples per second over the last 20 steps.',
    perRank((r) => r.samples_per_s),
  );
  m.family(
    'dtrain_rank_tokens_per_second',
    'gauge',
    'Tokens per second over the last 20 steps.',
    perRank((r) => r.tokens_per_s),
  );
  m.family(
    'dtrain_rank_loss',
    'gauge',
    'The last loss the rank reported.',
    perRank((r) => r.loss),
  );
  m.family(
    'dtrain_rank_cpu_usage_ratio',
    'gauge',
    'CPU time per second of the worker process (1 = one core).',
    perRank((r) => r.cpu_percent / 100),
  );
  m.family(
    'dtrain_rank_resident_memory_bytes',
    'gauge',
    'Resident memory.',
    perRank((r) => r.rss_bytes),
  );
  m.family(
    'dtrain_rank_last_output_age_seconds',
    'gauge',
    'Seconds since the rank last wrote a line.',
    perRank((r) => r.last_output_age_s),
  );
  m.family(
    'dtrain_rank_restarts_total',
    'counter',
    'Restarts of the rank.',
    perRank((r) => r.restarts),
  );
  m.family(
    'dtrain_rank_straggler',
    'gauge',
    '1 when compute time exceeds the group median by more than 20%.',
    perRank((r) => (r.straggler ? 1 : 0)),
  );
  const totals = status.collectiveTotals();
  const perOp = (pick: (t: { count: number; bytes: number; seconds: number }) => number): [Labels, number][] =>
    totals.flatMap(({ rank, ops }) =>
      Object.entries(ops).map(([op, t]) => [{ ...run, rank, op }, pick(t)] as [Labels, number]),
    );
  m.family(
    'dtrain_collective_ops_total',
    'counter',
    'Collective ops completed, by op.',
    perOp((t) => t.count),
  );
  m.family(
    'dtrain_collective_bytes_total',
    'counter',
    'Bytes the collective ops carried, by op.',
    perOp((t) => t.bytes),
  );
  m.family(
    'dtrain_collective_seconds_total',
    'counter',
    'Seconds spent awaiting collective ops, by op.',
    perOp((t) => t.seconds),
  );
  return m.text();
}

function labelText(labels: Labels): string {
  const parts = Object.entries(labels).map(([k, v]) => `${k}="${escapeLabel(String(v))}"`);
  return parts.length ? `{${parts.join(',')}}` : '';
}

function escapeLabel(v: string): string {
  return v.replace(/\\/g, '\\\\').replace(/"/g, '\\"').replace(/\n/g, '\\n');
}

function numberText(v: number): string {
  if (Number.isNaN(v)) return 'NaN';
  if (v === Infinity) return '+Inf';
  if (v === -Infinity) return '-Inf';
  return String(v);
}
