/**
 * `dtrain submit <config>`: render the batch script from the config's scheduler section, submit it and
 * print the job id (or, with --wait, follow it to its end). Thin: src/batch does the work.
 */
import { fileURLToPath } from 'node:url';
import type { CommandModule } from 'yargs';
import { InterruptedError } from '../util/errors.js';
import { printJson } from './exit-point.js';

interface SubmitArgs {
  config: string;
  scheduler?: 'slurm' | 'pbs';
  'dry-run': boolean;
  wait: boolean;
  json: boolean;
}

export const submitCommand: CommandModule<object, SubmitArgs> = {
  command: 'submit <config>',
  describe: "submit the job to a batch scheduler (Slurm; PBS experimental) from the config's scheduler section",
  builder: (y) =>
    y
      .positional('config', { type: 'string', demandOption: true, describe: 'the job config (YAML)' })
      .option('scheduler', { choices: ['slurm', 'pbs'] as const, describe: 'overrides scheduler.kind' })
      .option('dry-run', { type: 'boolean', default: false, describe: 'print the batch script; submit nothing' })
      .option('wait', {
        type: 'boolean',
        default: false,
        describe: 'follow the job to its end; exit 1 if it failed (Slurm)',
      })
      .option('json', {
        type: 'boolean',
        default: false,
        describe: 'print {job_id, script, output, state, exit_code} on stdout',
      }),
  handler: async (argv) => {
    const { loadConfig } = await import('../config/index.js');
    const { prepareSubmission, submitJob } = await import('../batch/submit-job.js');
    const { scriptPath, outputPath } = await import('../batch/batch-job.js');
    const { formatProblem } = await import('../util/errors.js');
    const log = (line: string) => process.stderr.write(`dtrain: ${line}\n`);

    const loaded = await loadConfig(argv.config);
    for (const w of loaded.warnings) log(`warning: ${formatProblem(w)}`);
    // compute nodes run this same installation (clusters share the file system): absolute paths
    const dtrain = [process.execPath, fileURLToPath(new URL('../../bin/dtrain', import.meta.url))];
    const graceExplicit = loaded.raw.shutdown_grace !== undefined;
    const req = {
      config: loaded.config,
      configFile: argv.config,
      graceExplicit,
      kind: argv.scheduler,
      dryRun: argv['dry-run'],
      wait: argv.wait,
      dtrain,
      log,
    };
    const prepared = await prepareSubmission(req);
    for (const w of prepared.warnings) log(`warning: ${w}`);

    if (argv['dry-run']) {
      if (argv.json) {
        printJson({
          job_id: null,
          script: scriptPath(prepared.job),
          output: outputPath(prepared.job),
          state: 'DRY_RUN',
          exit_code: null,
          script_text: prepared.text,
        });
      } else process.stdout.write(prepared.text);
      return;
    }

    // Ctrl-C stops the waiting, not the job: say how to stop the job itself
    const abort = new AbortController();
    let jobId = null as string | null; // set by a callback: not narrowed to null
    const onSigint = () => abort.abort();
    process.once('SIGINT', onSigint);
    try {
      const doc = await submitJob({ ...req, signal: abort.signal, onSubmitted: (id) => (jobId = id) }, prepared);
      if (argv.json) printJson(doc);
      else process.stdout.write(`${doc.job_id}\n`);
    } catch (err) {
      if (abort.signal.aborted) {
        if (jobId) log(`stopped waiting; job ${jobId} keeps running (scancel ${jobId} stops it)`);
        throw new InterruptedError('SIGINT');
      }
      throw err;
    } finally {
      process.off('SIGINT', onSigint);
    }
  },
};
