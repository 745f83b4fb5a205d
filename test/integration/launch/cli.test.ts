// torchrun habits without a file, --save-config, and --dry-run printing exactly what validate prints.
import { spawnSync } from 'node:child_process';
import { chmodSync, existsSync, lstatSync, readFileSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import t from 'tap';
import { built, dtrainBin, runDtrain, tempDir } from '../../helpers/launch.js';

const skip = !built() && 'run npx tsc -p . first';

t.test('--dry-run prints exactly what validate prints (text and --json)', { skip }, async (t) => {
  const dir = tempDir(t);
  const file = join(dir, 'job.yaml');
  writeFileSync(file, 'name: dry\nentrypoint: node train.js --steps 5\nnproc_per_node: 2\n');
  for (const json of [[], ['--json']]) {
    const dry = await runDtrain(['launch', file, '--dry-run', ...json], { cwd: dir });
    const val = await runDtrain(['validate', file, ...json], { cwd: dir });
    t.equal(dry.code, 0, dry.stderr);
    t.equal(dry.stdout, val.stdout);
    t.ok(dry.stdout.length > 0);
  }
});

t.test('torchrun-style flags, --save-config, and the saved file launches the same plan', { skip }, async (t) => {
  const dir = tempDir(t);
  const saved = join(dir, 'saved.yaml');
  const fromFlags = await runDtrain(
    [
      'launch',
      '--nproc-per-node',
      '3',
      '--save-config',
      saved,
      '--dry-run',
      '--json',
      '--',
      'python3',
      'train.py',
      '--lr',
      '1e-3',
    ],
    { cwd: dir },
  );
  t.equal(fromFlags.code, 0, fromFlags.stderr);
  t.match(readFileSync(saved, 'utf8'), /nproc_per_node: 3/);
  const fromFile = await runDtrain(['launch', saved, '--dry-run', '--json'], { cwd: dir });
  const a = JSON.parse(fromFlags.stdout);
  const b = JSON.parse(fromFile.stdout);
  t.same(
    a.ranks.map((r: { command: string[] }) => r.command),
    Array(3).fill(['python3', 'train.py', '--lr', '1e-3']),
  );
  t.same(
    b.ranks.map((r: { command: string[] }) => r.command),
    a.ranks.map((r: { command: string[] }) => r.command),
  );
  t.equal(a.world_size, 3);
});

t.test('--save-config refuses the config being read and a symbolic link: one line, exit 2', { skip }, async (t) => {
  const dir = tempDir(t);
  const source = '# why nproc 2: see the notes\nentrypoint: node train.js\nnproc_per_node: 2\n';
  writeFileSync(join(dir, 'keep.yaml'), source);
  const same = await runDtrain(['launch', 'keep.yaml', '--save-config', './keep.yaml', '--dry-run'], { cwd: dir });
  t.equal(same.code, 2, same.stderr);
  t.equal(same.stderr, 'dtrain: --save-config ./keep.yaml is the config this launch reads: name another file\n');
  t.equal(same.stdout, '', 'nothing launched, no plan');
  t.equal(readFileSync(join(dir, 'keep.yaml'), 'utf8'), source, 'its comments are still there');

  writeFileSync(join(dir, 'tgt.txt'), 'untouched\n');
  chmodSync(join(dir, 'tgt.txt'), 0o644);
  symlinkSync('tgt.txt', join(dir, 'lnk.yaml'));
  const link = await runDtrain(['launch', 'keep.yaml', '--save-config', 'lnk.yaml', '--dry-run'], { cwd: dir });
  t.equal(link.code, 2, link.stderr);
  t.equal(link.stderr, 'dtrain: --save-config lnk.yaml is a symbolic link: name the file itself, not a link to it\n');
  t.equal(readFileSync(join(dir, 'tgt.txt'), 'utf8'), 'untouched\n');
  t.equal(statSync(join(dir, 'tgt.txt')).mode & 0o777, 0o644);
  t.ok(lstatSync(join(dir, 'lnk.yaml')).isSymbolicLink());
});

t.test('extra arguments after -- reach every worker of a config launch', { skip }, async (t) => {
  const dir = tempDir(t);
  const file = join(dir, 'job.yaml');
  writeFileSync(file, `entrypoint: [sh, -c, 'echo "args:$*"', sh]\nnproc_per_node: 2\nlogs: {dir: ${dir}/logs}\n`);
  const r = await runDtrain(['launch', file, '--', '--lr', '0.1'], { cwd: dir });
  t.equal(r.code, 0, r.stderr);
  t.match(r.stdout, '[rank 1] args:--lr 0.1');
});

t.test('usage errors are one line and exit 2', { skip }, async (t) => {
  const dir = tempDir(t);
  const r = await runDtrain(['launch'], { cwd: dir });
  t.equal(r.code, 2);
  t.match(r.stderr, /name a config file/);
  const bad = await runDtrain(['launch', '--nproc-per-node', 'zero', '--', 'true'], { cwd: dir });
  t.equal(bad.code, 2, bad.stderr);
});

t.test('logs.ranks filters the console, not the log files', { skip }, async (t) => {
  const dir = tempDir(t);
  const file = join(dir, 'job.yaml');
  writeFileSync(
    file,
    `entrypoint: [sh, -c, 'echo "out $RANK"; echo "err $RANK" >&2']\nnproc_per_node: 3\nlogs: {dir: ` +
      `${dir}/logs, ranks: [1]}\n`,
  );
  const r = await runDtrain(['launch', file, '--json'], { cwd: dir });
  t.equal(r.code, 0, r.stderr);
  t.match(r.stderr, '[rank 1] out 1');
  t.match(r.stderr, '[rank 1] err 1');
  t.notMatch(r.stderr, /\[rank [02]\]/);
  const runId = JSON.parse(r.stdout).run_id;
  t.equal(readFileSync(join(dir, 'logs', runId, 'attempt_0', 'rank_2.out'), 'utf8'), 'out 2\n');
});

t.test(
  'a spinner on a TTY only',
  { skip: (!built() && 'run npx tsc -p . first') || (!existsSync('/usr/bin/script') && 'no script(1) for a pty') },
  async (t) => {
    const dir = tempDir(t);
    // script(1) gives dtrain a pty; stty sizes it (an unsized pty reports 0 columns).
    const cmd =
      `stty cols 100 rows 30; ${process.execPath} ${dtrainBin} launch --nproc-per-node 2 --set ` +
      `logs.dir=${dir}/logs -- sh -c 'sleep 0.5'`;
    // ora stays still where CI is set (is-interactive), whatever the stream: this asks for the interactive case.
    const { CI: _ci, ...rest } = process.env;
    const ttyEnv = { ...rest, NO_COLOR: '1', TERM: 'xterm' };
    const tty = spawnSync('script', ['-qec', cmd, '/dev/null'], {
      cwd: dir,
      encoding: 'utf8',
      timeout: 30000,
      stdio: ['ignore', 'pipe', 'pipe'],
      env: ttyEnv,
    });
    t.equal(tty.status, 0, tty.stderr);
    t.match(tty.stdout, /2\/2 workers running/);
    t.match(tty.stdout, /\x1b\[\?25l/, 'ora hides the cursor while spinning');
    const plain = await runDtrain(['launch', '--nproc-per-node', '2', '--set', `logs.dir=${dir}/logs`, '--', 'true'], {
      cwd: dir,
    });
    t.match(plain.stderr, /^dtrain: 2\/2 workers running$/m);
    t.notMatch(plain.stderr, /\x1b/, 'no escape codes when not a TTY');
  },
);

t.test('rendezvous.addr bound to one address: the controller and its agents dial that address', { skip }, async (t) => {
  const dir = tempDir(t);
  // 127.0.0.2 is this machine but not 127.0.0.1: a client that assumed loopback would be refused (exit 3).
  const argv = [
    'launch',
    '--nproc-per-node',
    '2',
    '--set',
    'rendezvous.addr=127.0.0.2',
    '--set',
    `logs.dir=${dir}/logs`,
    '--',
    'sh',
    '-c',
    'echo "store $DTRAIN_STORE"',
  ];
  for (const env of [{}, { DTRAIN_LOCAL_AGENT: 'child' }] as Record<string, string>[]) {
    const r = await runDtrain(argv, { cwd: dir, env });
    t.equal(r.code, 0, r.stderr);
    t.match(r.stdout, /^\[rank 1\] store unix:\//m, JSON.stringify(env));
  }
});
