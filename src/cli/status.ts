/** `dtrain status [RUN] [--json]`: one look at a running job (run-query.ts finds it; status-table.ts draws it). */
import type { ArgumentsCamelCase, CommandModule } from 'yargs';
import { printJson } from './exit-point.js';

interface StatusArgs {
  run?: string;
  json?: boolean;
}

/**
 * The plain forms (`status`, `status RUN`, with or without `--json`) parsed without yargs, whose loading is a
 * good part of a status answer; anything else (help, `--json=false`, a typo) goes to yargs. Undefined: not plain.
 */
export function quickStatusArgs(argv: string[]): ArgumentsCamelCase<StatusArgs> | undefined {
  const args: ArgumentsCamelCase<StatusArgs> = { _: ['status'], $0: 'dtrain', json: false };
  for (const tok of argv) {
    if (tok === '--json' && !args.json) args.json = true;
    else if (tok && !tok.startsWith('-') && args.run === undefined) args.run = tok;
    else return undefined;
  }
  return args;
}

export const statusCommand: CommandModule<object, StatusArgs> = {
  command: 'status [run]',
  describe: 'show a running job: per-rank state, pid, CPU, memory, step, speed, stragglers',
  builder: (y) =>
    y
      .positional('run', {
        type: 'string',
        describe: 'a run id or its log folder (default: your newest job running on this machine)',
      })
      .option('json', { type: 'boolean', default: false, describe: 'print the status as one JSON document' }),
  handler: async (args) => {
    const { locateRun } = await import('../launch/run-query.js');
    const doc = await (await locateRun(args.run)).fetch();
    if (args.json) return printJson(doc);
    const { renderStatus } = await import('./status-table.js');
    const { Chalk, default: chalk } = await import('chalk');
    const { colorLevel } = await import('./schedule.js');
    const level = colorLevel(chalk.level);
    process.stdout.write(renderStatus(doc, level ? { color: new Chalk({ level }) } : {}));
  },
};
