import { spawnSync } from 'node:child_process';
import { chmodSync, mkdirSync, mkdtempSync, readdirSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t from 'tap';
import { encodeHeader, remoteCommand, RemoteExit } from '../../../src/launch/ssh/remote-command.js';
import { forwardedEnv, mergeBelow } from '../../../src/launch/ssh/forward-env.js';
import { Limiter } from '../../../src/launch/ssh/limiter.js';

// The script runs under a real /bin/sh exactly as sshd would run it (through the login shell: bash -c).
function runRemote(stdin: string, env: NodeJS.ProcessEnv = process.env, cwd = tmpdir()) {
  return spawnSync('/bin/bash', ['-c', remoteCommand], { input: stdin, env, cwd, encoding: 'utf8' });
}

t.test('the command is constant and carries no value', async (t) => {
  t.match(remoteCommand, /^exec \/bin\/sh -c '[^'!\\\n]*'$/);
});

t.test('values with quotes, spaces, $() and ; arrive verbatim and never run', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), "dtrain rc '$(touch pwned)'; x"));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  // A fake "dtrain" that prints what it got: its cwd, argv and the rest of stdin.
  const fake = join(dir, 'fake dtrain.js');
  writeFileSync(
    fake,
    "process.stdout.write(JSON.stringify({cwd: process.cwd(), argv: process.argv.slice(2)})+'\\n'); " +
      'process.stdin.pipe(process.stdout);',
  );
  const prelude = 'echo \'prelude ran\' >&2; X=1\nmarker="$(echo ok)"; cat >/dev/null';
  const scratch = mkdtempSync(join(tmpdir(), 'dtrain-rc-cwd-'));
  t.teardown(() => rmSync(scratch, { recursive: true, force: true }));
  const r = runRemote(
    encodeHeader({ prelude, workdir: dir, dtrain: fake, agent: 'native' }) + 'REST OF STDIN\n',
    process.env,
    scratch,
  );
  t.equal(r.status, 0, r.stderr);
  const [first, rest] = r.stdout.split('\n');
  t.same(JSON.parse(first), { cwd: dir, argv: ['agent', '--stdio'] });
  t.equal(rest, 'REST OF STDIN', 'the prelude reads /dev/null, the agent gets the stream intact');
  t.match(r.stderr, /prelude ran/);
  t.same(readdirSync(scratch), [], 'no command substitution ran in the shell');
});

t.test('failures exit with codes the spawner names', async (t) => {
  const h = (o: Partial<{ prelude: string; workdir: string; dtrain: string }>) =>
    encodeHeader({ prelude: '', workdir: '/', dtrain: '/nonexistent/dtrain', agent: 'native', ...o });
  t.equal(runRemote('').status, RemoteExit.noHeader);
  t.equal(runRemote(h({ prelude: 'false' })).status, RemoteExit.preludeFailed);
  t.equal(runRemote(h({ workdir: '/no/such dir' })).status, RemoteExit.workdirMissing);
  t.equal(runRemote(h({})).status, RemoteExit.dtrainMissing);
  t.equal(runRemote(h({ dtrain: 'no-such-dtrain-cmd' })).status, RemoteExit.dtrainMissing);
  const dir = mkdtempSync(join(tmpdir(), 'dtrain-rc-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  t.equal(runRemote(h({}), { PATH: dir }).status, RemoteExit.nodeMissing);
});

t.test(
  'the native agent runs where it is built next to dtrain (links followed), the Node agent otherwise or when asked',
  async (t) => {
    const dir = mkdtempSync(join(tmpdir(), 'dtrain-rc-agent-'));
    t.teardown(() => rmSync(dir, { recursive: true, force: true }));
    // An installed package (bin/dtrain and the native agent under build/Release), reached through a link as
    // npm's node_modules/.bin/dtrain is; and a package without the native agent.
    const pkg = join(dir, 'pkg');
    mkdirSync(join(pkg, 'bin'), { recursive: true });
    mkdirSync(join(pkg, 'build/Release'), { recursive: true });
    const nodeAgent = "process.stdout.write('node agent\\n'); process.stdin.pipe(process.stdout);";
    writeFileSync(join(pkg, 'bin/dtrain'), nodeAgent);
    const native = join(pkg, 'build/Release/dtrain-agent');
    // `--check` answers from a file, so the test can make the agent refuse.
    const verdict = join(dir, 'check-exit');
    writeFileSync(verdict, '0');
    writeFileSync(
      native,
      `#!/bin/sh\nif [ "$1" = --check ]; then cat >/dev/null; echo checked; exit $(cat ${verdict}); ` +
        `fi\necho "native $*"; exec cat\n`,
    );
    chmodSync(native, 0o755);
    mkdirSync(join(dir, '.bin'));
    symlinkSync(join(pkg, 'bin/dtrain'), join(dir, '.bin/dtrain'));
    const bare = join(dir, 'bare');
    mkdirSync(join(bare, 'bin'), { recursive: true });
    writeFileSync(join(bare, 'bin/dtrain'), nodeAgent);
    const run = (dtrain: string, agent: 'native' | 'node') =>
      runRemote(encodeHeader({ prelude: '', workdir: dir, dtrain, agent }) + 'REST\n');
    const node = spawnSync('/bin/sh', ['-c', 'command -v node'], { encoding: 'utf8' }).stdout.trim();
    for (const dtrain of [join(pkg, 'bin/dtrain'), join(dir, '.bin/dtrain')]) {
      const r = run(dtrain, 'native');
      t.equal(
        r.stdout,
        `native --stdio --node ${node}\nREST\n`,
        `${dtrain}: the native agent, stdin intact (${r.stderr})`,
      );
    }
    t.equal(run(join(pkg, 'bin/dtrain'), 'node').stdout, 'node agent\nREST\n', 'DTRAIN_SSH_AGENT=node: the Node agent');
    t.equal(
      run(join(bare, 'bin/dtrain'), 'native').stdout,
      'node agent\nREST\n',
      'no native agent built: the Node agent',
    );
    writeFileSync(verdict, '1');
    t.equal(
      run(join(pkg, 'bin/dtrain'), 'native').stdout,
      'node agent\nREST\n',
      'a native agent that says it is stale: the Node agent',
    );
    writeFileSync(verdict, '0');
    chmodSync(native, 0o644);
    t.equal(
      run(join(pkg, 'bin/dtrain'), 'native').stdout,
      'node agent\nREST\n',
      'a native agent that cannot run: the Node agent',
    );
  },
);

t.test('forward_env patterns, below the config env', async (t) => {
  const env = { NCCL_DEBUG: 'INFO', CUDA_HOME: '/c', PYTHONPATH: '/p', HOME: '/h', NCCLX: 'no', UCX_TLS: 'tcp' };
  const fwd = forwardedEnv(['NCCL_*', 'CUDA_*', 'UCX_*', 'PYTHON*'], env);
  t.same(fwd, { NCCL_DEBUG: 'INFO', CUDA_HOME: '/c', PYTHONPATH: '/p', UCX_TLS: 'tcp' });
  t.same(mergeBelow(fwd, { NCCL_DEBUG: 'WARN' }).NCCL_DEBUG, 'WARN');
});

t.test('limiter never exceeds its bound', async (t) => {
  const l = new Limiter(3);
  let active = 0;
  let peak = 0;
  await Promise.all(
    Array.from({ length: 20 }, () =>
      l.run(async () => {
        peak = Math.max(peak, ++active);
        await new Promise((r) => setTimeout(r, 2));
        active--;
      }),
    ),
  );
  t.equal(peak, 3);
});
