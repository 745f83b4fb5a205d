// quickLaunchArgs (the yargs-free reading of `dtrain launch ...`) against yargs itself: where the quick
// reader answers, every value the launch handler reads is the one yargs gives; odd forms go to yargs.
import t from 'tap';
import yargs from 'yargs';
import { launchCommand, quickLaunchArgs } from '../../../src/cli/launch.js';

const read = [
  'config',
  'dryRun',
  'json',
  'set',
  'nprocPerNode',
  'nnodes',
  'hosts',
  'masterAddr',
  'masterPort',
  'maxRestarts',
  'name',
  'backend',
  'saveConfig',
  'joinAgents',
  'secretFile',
  '--',
];

async function viaYargs(argv: string[]): Promise<Record<string, unknown> | { error: string }> {
  let got: Record<string, unknown> | undefined;
  try {
    await yargs(['launch', ...argv])
      .strict()
      .fail((msg, err) => {
        throw err ?? new Error(msg);
      })
      // a copy: once the handler returns, yargs moves `--` back into `_` in the same object
      .command({ ...launchCommand, handler: (a) => void (got = structuredClone(a) as Record<string, unknown>) })
      .parseAsync();
  } catch (err) {
    return { error: (err as Error).message };
  }
  return got!;
}

const pick = (a: Record<string, unknown>) =>
  Object.fromEntries(read.map((k) => [k, k === '--' ? ((a[k] as unknown[]) ?? []) : a[k]]));

const plain = [
  ['--nproc-per-node', '4', '--', '/bin/true'],
  ['--nproc-per-node', '4', '--set', 'logs.dir=/tmp/x', '--', '/bin/true'],
  ['--nproc-per-node=auto', '--', 'python3', 'train.py', '--lr', '1e-3'],
  ['job.yaml'],
  ['job.yaml', '--dry-run', '--json'],
  ['--json', 'job.yaml'],
  ['job.yaml', '--set', 'a=1', 'b=2', '--dry-run'],
  ['job.yaml', '--set', 'a=1', '--', 'extra', '--flag'],
  ['--set', 'a=1', 'b=2'],
  ['--nnodes', '2', '--hosts', 'a,b', '--master-addr', '10.0.0.1', '--master-port', '29500', '--', 'x'],
  ['--max-restarts=3', '--name', 'j', '--backend', 'cpu', '--save-config', 'out.yaml', '--', 'x'],
  ['--', 'sh', '-c', 'echo --json'],
  ['job.yaml', '--'],
  ['job.yaml', '--join-agents', '2', '--secret-file', '/run/key'],
  ['--nproc-per-node', '04', '--', 'x'],
];
const odd = [
  ['--help'],
  ['--version'],
  ['--no-json', 'job.yaml'],
  ['--json', 'true', 'job.yaml'],
  ['--json=false', 'job.yaml'],
  ['--nprocPerNode', '4', '--', 'x'],
  ['-h'],
  ['--nnodes', 'two', '--', 'x'],
  ['--nnodes', '0x10', '--', 'x'],
  ['--name', 'a', '--name', 'b', '--', 'x'],
  ['--set=a=1', 'job.yaml'],
  ['a.yaml', 'b.yaml'],
  ['--hosts', '--', 'x'],
  ['--hosts=', '--', 'x'],
  ['--bogus', '--', 'x'],
  ['-x', 'job.yaml'],
  ['--master-port', '-1', '--', 'x'],
];

t.test('plain forms: the quick reader gives what yargs gives', async (t) => {
  for (const argv of plain) {
    const quick = quickLaunchArgs(argv);
    t.ok(quick, `read without yargs: ${argv.join(' ')}`);
    const full = await viaYargs(argv);
    t.notOk('error' in full, `yargs accepts ${argv.join(' ')}`);
    t.same(pick(quick as Record<string, unknown>), pick(full), argv.join(' '));
  }
});

t.test('other forms are left to yargs (help, negations, repeats, bad numbers, unknown options)', async (t) => {
  for (const argv of odd) t.equal(quickLaunchArgs(argv), undefined, argv.join(' '));
});
