/**
 * The single exit point: parse the command line, run one command, turn whatever it throws into one
 * clear line (or one JSON document with --json) and a documented exit code. Commands never call
 * process.exit (pending output and cleanup would be lost): they set process.exitCode or throw a DtrainError.
 */
import { createRequire } from 'node:module';
import { packageVersion } from '../util/version.js';
import { installProcessHooks, report, UsageFailure } from './exit-point.js';
import { launchCommand, quickLaunchArgs } from './launch.js';
import { quickStatusArgs, statusCommand } from './status.js';

export async function main(argv: string[]): Promise<void> {
  const wantsJson = argv.includes('--json');
  installProcessHooks();
  try {
    // The common `dtrain launch` forms skip yargs: its import is a tenth of a small launch's time.
    const quick = argv[0] === 'launch' ? quickLaunchArgs(argv.slice(1)) : undefined;
    if (quick) {
      await launchCommand.handler(quick);
      return;
    }
    // `dtrain status` answers within a second for 256 ranks: most of that is start-up, yargs a good part
    const quickStatus = argv[0] === 'status' ? quickStatusArgs(argv.slice(1)) : undefined;
    if (quickStatus) {
      await statusCommand.handler(quickStatus);
      return;
    }
    // (`dtrain agent --stdio`, the command every node runs, never reaches here: cli/entry.ts routes it to
    // cli/agent-entry.ts, without the CLI's modules.)
    // yargs' CommonJS build: its ES build's help wraps at the column, in the middle of words.
    const yargs = createRequire(import.meta.url)('yargs/yargs') as typeof import('yargs').default;
    const { commands } = await import('./commands.js');
    const parser = yargs(argv)
      .scriptName('dtrain')
      .usage('$0 <command> [options]')
      .version(packageVersion())
      .strict()
      .demandCommand(1, 'name a command (dtrain --help lists them)')
      .recommendCommands()
      .wrap(process.stdout.columns || 100) // the terminal's width on a TTY
      .fail((msg, err) => {
        if (err) throw err;
        throw new UsageFailure(msg);
      });
    for (const c of commands) parser.command(c);
    await parser.parseAsync();
  } catch (err) {
    process.exitCode = report(err, wantsJson);
  }
}
