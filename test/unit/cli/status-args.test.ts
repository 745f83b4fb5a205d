// quickStatusArgs (the yargs-free reading of `dtrain status ...`) against yargs itself: where the quick reader
// answers, the handler gets the run and --json yargs gives; every other form is left to yargs.
import t from 'tap';
import yargs from 'yargs';
import { quickStatusArgs, statusCommand } from '../../../src/cli/status.js';

async function viaYargs(argv: string[]): Promise<{ run?: string; json?: boolean }> {
  let got: { run?: string; json?: boolean } = {};
  await yargs(['status', ...argv])
    .strict()
    .fail((msg, err) => {
      throw err ?? new Error(msg);
    })
    .command({ ...statusCommand, handler: (a) => void (got = { run: a.run, json: a.json }) })
    .parseAsync();
  return got;
}

t.test('plain forms: the quick reader gives what yargs gives', async (t) => {
  for (const argv of [[], ['--json'], ['job-1'], ['job-1', '--json'], ['--json', '/logs/job-1']]) {
    const quick = quickStatusArgs(argv);
    t.ok(quick, `read without yargs: status ${argv.join(' ')}`);
    t.same({ run: quick?.run, json: quick?.json }, await viaYargs(argv), `status ${argv.join(' ')}`);
  }
});

t.test('other forms are left to yargs (help, negations, repeats, extra words, unknown options)', async (t) => {
  for (const argv of [['--help'], ['--json=false'], ['--no-json'], ['--json', '--json'], ['a', 'b'], ['-j'], ['']])
    t.equal(quickStatusArgs(argv), undefined, `status ${argv.join(' ')}`);
});
