import type { CommandModule } from 'yargs';

interface ValidateArgs {
  config: string;
  json?: boolean;
  set?: string[];
}

export const validateCommand: CommandModule<object, ValidateArgs> = {
  command: 'validate <config>',
  describe: 'check a config and show where every rank runs (starts nothing, connects nowhere)',
  builder: (y) =>
    y
      .positional('config', { type: 'string', demandOption: true, describe: 'the job config (YAML)' })
      .option('json', { type: 'boolean', describe: 'print the plan (or the errors) as one JSON document' })
      .option('set', {
        type: 'string',
        array: true,
        describe: 'override a key: --set parallelism.zero_stage=2 (repeatable)',
      }),
  handler: async (args) => {
    const { loadConfig } = await import('../config/index.js');
    const { buildPlan, planDocument, renderPlanTable } = await import('../plan/index.js');
    const plan = buildPlan(await loadConfig(args.config, { sets: args.set ?? [] }));
    if (args.json) process.stdout.write(JSON.stringify(planDocument(plan), null, 2) + '\n');
    else process.stdout.write(renderPlanTable(plan));
    for (const w of plan.warnings) process.stderr.write(`warning: ${w}\n`);
  },
};
