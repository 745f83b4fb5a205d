/** `dtrain status [RUN] [--json]`: one look at a running job (run-query.ts finds it; status-table.ts draws it). */
import type { CommandModule } from 'yargs';
import { printJson } from './exit-point.js';

interface StatusArgs {
  run?: string;
  json?: boolean;
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
    const doc = await locateRun(args.run).fetch();
    if (args.json) return printJson(doc);
    const { renderStatus } = await import('./status-table.js');
    const { Chalk, default: chalk } = await import('chalk');
    const { colorLevel } = await import('./schedule.js');
    const level = colorLevel(chalk.level);
    process.stdout.write(renderStatus(doc, level ? { color: new Chalk({ level }) } : {}));
  },
};
