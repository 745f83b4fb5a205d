/** Printed forms of a plan: the human table (by node) and the --json document. Secrets are masked in both. */
import { joinCommand } from '../config/shellwords.js';
import { AUTO, WORKER_ENV } from '../runtime/worker-env-table.js';
import { shownEnvValue } from '../util/secret-names.js';
import { reachableWorlds, renderReachableWorlds } from './elastic.js';
import { maskSecrets } from './env.js';
import { gb } from './memory.js';
import type { Plan, RankPlan } from './types.js';

/** The `--dry-run --json` / `validate --json` document (docs/architecture.md, the CLI contract). */
export function planDocument(plan: Plan) {
  return {
    name: plan.name,
    world_size: plan.world_size,
    parallelism: { ...plan.parallelism },
    nodes: plan.nodes.map((n) => ({ ...n })),
    ranks: plan.ranks.map((r) => ({
      rank: r.rank,
      node_rank: r.node_rank,
      host: r.host,
      local_rank: r.local_rank,
      data: r.data,
      pipeline: r.pipeline,
      tensor: r.tensor,
      command: [...r.command],
      env: maskSecrets(r.env, plan.config?.secret_env),
      ...(r.memory && { memory: { ...r.memory } }),
    })),
    ...(plan.config?.elastic && { elastic: elasticDocument(plan) }),
    warnings: [...plan.warnings],
  };
}

/** An elastic plan's limits and the worlds it can reach (plan/elastic.ts). */
function elasticDocument(plan: Plan) {
  const { spares, rejoin, ...limits } = plan.config!.elastic!;
  return {
    ...limits,
    rejoin_ms: rejoin,
    spares: spares.map((n) => n.host),
    worlds: reachableWorlds(plan.config!),
  };
}

export function renderPlanTable(plan: Plan): string {
  const p = plan.parallelism;
  const lines: string[] = [];
  const sched =
    p.pipeline > 1
      ? `, ${p.schedule}${p.virtual_stages > 1 ? ` ×${p.virtual_stages} virtual` : ''}, ${p.microbatches} microbatches`
      : '';
  lines.push(
    `${plan.name}: world ${plan.world_size} = data ${p.data} × tensor ${p.tensor} × pipeline ${p.pipeline}, ` +
      `ZeRO ${p.zero_stage}${sched}`,
  );
  const first = plan.ranks[0];
  if (first) {
    lines.push(`command: ${joinCommand(first.command)}`);
    const backend = first.env.DTRAIN_BACKEND;
    const addr = first.env.MASTER_ADDR === AUTO ? "node 0's address" : first.env.MASTER_ADDR;
    const port = first.env.MASTER_PORT === AUTO ? 'a free port (picked at launch)' : `port ${first.env.MASTER_PORT}`;
    lines.push(`backend: ${backend}   master: ${addr}, ${port}`);
    const userEnv = plan.config ? Object.keys(plan.config.env) : [];
    if (userEnv.length) {
      const shown = userEnv.map((k) => `${k}=${shownEnvValue(k, plan.config!.env[k], plan.config!.secret_env)}`);
      lines.push(`env: ${shown.join(' ')}`);
    }
    lines.push(...workerEnvLines(plan.ranks));
  }
  const withMemory = plan.ranks.some((r) => r.memory);
  const header = [
    'rank',
    'local',
    'pipeline',
    'data',
    'tensor',
    ...(withMemory ? ['params', 'grads', 'optim', 'activ', 'total GB'] : []),
  ];
  for (const node of plan.nodes) {
    const tags = [
      node.local
        ? 'local'
        : node.from_allocation
          ? 'allocated at submit'
          : `ssh${node.user ? ` ${node.user}@` : ' '}${node.host}` +
            `${node.port && node.port !== 22 ? `:${node.port}` : ''}`,
      node.cuda_visible_devices !== undefined ? `CUDA_VISIBLE_DEVICES=${node.cuda_visible_devices}` : '',
      node.nproc_assumed ? 'process count known at launch' : '',
    ].filter(Boolean);
    lines.push('');
    lines.push(
      `node ${node.node_rank}  ${node.host}  ${node.nproc} process${node.nproc === 1 ? '' : 'es'}  ` +
        `(${tags.join(', ')})`,
    );
    const rows = plan.ranks.filter((r) => r.node_rank === node.node_rank).map((r) => row(r, withMemory));
    lines.push(...table([header, ...rows]).map((l) => `  ${l}`));
  }
  if (plan.config?.elastic) {
    const spares = plan.config.elastic.spares.map((n, i) => `${plan.config!.nodes.length + i} ${n.host}`);
    lines.push('', ...(spares.length ? [`spares (node id, host): ${spares.join(', ')}`] : []));
    lines.push(...renderReachableWorlds(plan.config));
  }
  return lines.join('\n') + '\n';
}

/** The contract variables (in the table's order): values every rank shares, those that differ, those set at launch. */
function workerEnvLines(ranks: readonly RankPlan[]): string[] {
  const same: string[] = [];
  const perRank: string[] = [];
  const atLaunch: string[] = [];
  for (const v of WORKER_ENV) {
    const values = new Set<string | undefined>(ranks.map((r) => r.env[v.name]));
    if (values.size === 1 && values.has(undefined)) continue;
    if (v.filledBy === 'agent' || values.has(AUTO)) atLaunch.push(v.name);
    else if (values.size === 1) same.push(`${v.name}=${shownEnvValue(v.name, ranks[0].env[v.name] ?? '')}`);
    else perRank.push(v.name);
  }
  return [...wrap('worker env: ', same), ...wrap('  per rank: ', perRank), ...wrap('  at launch: ', atLaunch)];
}

/** Words after a label, wrapped under it within 100 columns. */
function wrap(label: string, words: string[]): string[] {
  if (words.length === 0) return [];
  const lines = [label];
  for (const w of words) {
    const last = lines[lines.length - 1];
    if (last.length > label.length && last.length + 1 + w.length > 100) lines.push(' '.repeat(label.length) + w);
    else lines[lines.length - 1] = last.length > label.length ? `${last} ${w}` : last + w;
  }
  return lines;
}

function row(r: RankPlan, withMemory: boolean): string[] {
  const base = [r.rank, r.local_rank, r.pipeline, r.data, r.tensor].map(String);
  if (!withMemory || !r.memory) return base;
  const m = r.memory;
  return [...base, gb(m.params), gb(m.grads), gb(m.optimizer), gb(m.activations), gb(m.total)];
}

/** Right-aligned columns, two spaces apart. */
function table(rows: string[][]): string[] {
  const widths = rows[0].map((_, i) => Math.max(...rows.map((r) => (r[i] ?? '').length)));
  return rows.map((r) =>
    r
      .map((cell, i) => cell.padStart(widths[i]))
      .join('  ')
      .trimEnd(),
  );
}
