/**
 * `dtrain stacks [RUN] [--json] [--native]`: every rank's stack of a running job, now, without stopping it
 * (RUN as in `dtrain status`: a run id, its log folder, or your newest job here). The controller asks
 * every agent (POST /api/stacks on the run's control socket); --native uses gdb, which stops each
 * process while it reads it. Exit 2 when no such run is running here.
 */
import type { CommandModule } from 'yargs';
import { printJson } from './exit-point.js';

interface StacksArgs {
  run?: string;
  json?: boolean;
  native?: boolean;
}

export const stacksCommand: CommandModule<object, StacksArgs> = {
  command: 'stacks [run]',
  describe: "print every rank's stack of a running job (Python, Node; native with gdb on request)",
  builder: (y) =>
    y
      .positional('run', {
        type: 'string',
        describe: 'a run id or its log folder (default: your newest job running on this machine)',
      })
      .option('json', { type: 'boolean', default: false, describe: 'print the stacks as one JSON document' })
      .option('native', {
        type: 'boolean',
        default: false,
        describe: "native stacks through gdb (stops each rank's process while gdb reads it)",
      }),
  handler: async (args) => {
    const { callRun, noRunningJob } = await import('../launch/run-query.js');
    const { UsageError } = await import('../util/errors.js');
    const { NATIVE_GATHER_MS, HANG_GATHER_MS, renderRankStack } = await import('../launch/hang-report.js');
    const found = await callRun(args.run, 'POST', `/api/stacks${args.native ? '?native=1' : ''}`, {
      timeoutMs: (args.native ? NATIVE_GATHER_MS : HANG_GATHER_MS) + 5000,
    });
    if (!found) throw await noRunningJob(args.run);
    const { entry, reply } = found;
    if (reply.status !== 200)
      throw new UsageError(`run ${entry.run_id} answered ${reply.status}: ${reply.body.trim()}`);
    const doc = stacksDoc(reply.body);
    if (!doc) throw new UsageError(`run ${entry.run_id} answered: not a dtrain stacks document`);
    if (args.json) return printJson(doc);
    const lines = [`run ${doc.run_id}: ${doc.ranks.length} rank${doc.ranks.length === 1 ? '' : 's'}`];
    for (const r of doc.ranks) lines.push(...renderRankStack(r).map((l) => l.replace(/^dtrain: /, '')));
    if (doc.unanswered.length) lines.push(`no answer from ${doc.unanswered.join(', ')}`);
    process.stdout.write(lines.join('\n') + '\n');
  },
};

type StacksDoc = {
  run_id: string;
  ranks: Parameters<typeof import('../launch/hang-report.js').renderRankStack>[0][];
  unanswered: string[];
};

/** The controller's answer, or undefined when it is not one (never quoted: it is not ours). */
function stacksDoc(body: string): StacksDoc | undefined {
  let doc: unknown;
  try {
    doc = JSON.parse(body);
  } catch {
    return undefined;
  }
  const d = doc as Partial<StacksDoc> | null;
  const ok =
    typeof d === 'object' &&
    d !== null &&
    typeof d.run_id === 'string' &&
    Array.isArray(d.ranks) &&
    d.ranks.every(
      (r) =>
        typeof r === 'object' &&
        r !== null &&
        typeof r.rank === 'number' &&
        (r.stack === null || r.stack === undefined || typeof r.stack === 'string'),
    ) &&
    Array.isArray(d.unanswered) &&
    d.unanswered.every((u) => typeof u === 'string');
  return ok ? (d as StacksDoc) : undefined;
}
