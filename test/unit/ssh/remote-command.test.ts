import { spawnSync } from 'node:child_process';
import { chmodSync, mkdirSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import t from 'tap';
import { repoRoot } from '../../helpers/collectives-harness.js';
import { encodeHeader, ownDtrain, remoteCommand, RemoteExit } from '../../../src/launch/ssh/remote-command.js';
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
  const r = runRemote(encodeHeader({ prelude, workdir: dir, dtrain: fake }) + 'REST OF STDIN\n', process.env, scratch);
  t.equal(r.status, 0, r.stderr);
  const [first, rest] = r.stdout.split('\n');
  t.same(JSON.parse(first), { cwd: dir, argv: ['agent', '--stdio'] });
  t.equal(rest, 'REST OF STDIN', 'the prelude reads /dev/null, the agent gets the stream intact');
  t.match(r.stderr, /prelude ran/);
  t.same(readdirSync(scratch), [], 'no command substitution ran in the shell');
});

t.test('failures exit with codes the spawner names', async (t) => {
  const h = (o: Partial<{ prelude: string; workdir: string; dtrain: string }>) =>
    encodeHeader({ prelude: '', workdir: '/', dtrain: '/nonexistent/dtrain', ...o });
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
  "no ssh.remote_dtrain: the controller's own bin/dtrain where it exists on the host, else dtrain on PATH",
  async (t) => {
    const dir = mkdtempSync(join(tmpdir(), 'dtrain-rc-default-'));
    t.teardown(() => rmSync(dir, { recursive: true, force: true }));
    // Two fake installs that say which one ran: the controller's own (a shared filesystem) and one on PATH.
    const say = (name: string) => `process.stdout.write('${name}\\n'); process.stdin.pipe(process.stdout);`;
    const own = join(dir, 'own/bin/dtrain');
    mkdirSync(join(dir, 'own/bin'), { recursive: true });
    writeFileSync(own, say('own'));
    const onPath = join(dir, 'path-bin');
    mkdirSync(onPath);
    writeFileSync(join(onPath, 'dtrain'), say('path'));
    chmodSync(join(onPath, 'dtrain'), 0o755);
    const env = { ...process.env, PATH: `${onPath}:${process.env.PATH}` };
    const run = (dtrain: string, local: string, e = env) =>
      runRemote(encodeHeader({ prelude: '', workdir: dir, dtrain, local }) + 'REST\n', e);
    t.equal(run('', own).stdout, 'own\nREST\n', "the controller's path exists there: it runs, stdin intact");
    t.equal(run('', join(dir, 'elsewhere/bin/dtrain')).stdout, 'path\nREST\n', 'it does not: dtrain on PATH');
    t.equal(run(join(onPath, 'dtrain'), own).stdout, 'path\nREST\n', 'ssh.remote_dtrain set: only that one');
    const missing = join(dir, 'elsewhere/bin/dtrain');
    const none = run('', missing, { ...process.env, PATH: dirname(process.execPath) + ':/usr/bin:/bin' });
    t.equal(none.status, RemoteExit.dtrainMissing);
    t.match(none.stderr, `neither ${missing} nor dtrain on PATH`, 'the error names both places it looked');
    const named = run('/opt/nowhere/dtrain', own);
    t.equal(named.status, RemoteExit.dtrainMissing);
    t.match(named.stderr, 'dtrain not found at /opt/nowhere/dtrain', 'a set ssh.remote_dtrain is the only one named');
  },
);

t.test("the default local path is this install's bin/dtrain", async (t) => {
  t.equal(ownDtrain, join(repoRoot, 'bin/dtrain'));
});

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
