/**
 * The SSH spawner against real OpenSSH sshd hosts (network namespaces from scripts/testbed/netns-hosts.sh).
 * The agent on the hosts is test/fixtures/ssh/agent-stub.mjs, which speaks the version exchange and runs what
 * it is told: these tests are about the SSH leg (connections, host keys, the remote command, stdin/stdout,
 * store forwarding, liveness, cleanup), not the agent's own supervision.
 */
import { execFileSync, spawn, spawnSync } from 'node:child_process';
import { createServer, type Server } from 'node:net';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import t, { type Test } from 'tap';
import { startSshAgents, type RemoteAgent, type SshLaunchRequest } from '../../../src/launch/ssh/spawner.js';
import { defaultSshSettings, type SshSettings } from '../../../src/launch/ssh/target.js';
import { ExitCode, StartError } from '../../../src/util/errors.js';
import { inHost, repoRoot, skipReason, strayPids, testbedUp, type Testbed } from '../../helpers/ssh-testbed.js';

const skip = skipReason();
if (skip && !process.env.DTRAIN_REQUIRE_INTEGRATION) {
  t.plan(0, skip);
  process.exit(0);
}

const stub = join(repoRoot, 'test/fixtures/ssh/agent-stub.mjs');
const bed: Testbed = testbedUp(3, 'ts');
t.teardown(() => bed.down());
const [h1, h2, h3] = bed.hosts as [Testbed['hosts'][0], Testbed['hosts'][0], Testbed['hosts'][0]];

// A loopback-only echo server stands in for the store: only a forwarded stream can reach it from a host.
const echo: Server = createServer((s) => s.pipe(s));
await new Promise<void>((r) => echo.listen(0, '127.0.0.1', r));
t.teardown(() => echo.close());
const echoPort = (echo.address() as { port: number }).port;

const scratch = mkdtempSync(join(tmpdir(), 'dtrain-ssh-it-'));
t.teardown(() => rmSync(scratch, { recursive: true, force: true }));

function settings(over: Partial<SshSettings> = {}): SshSettings {
  return {
    ...defaultSshSettings,
    user: 'root',
    identity_file: bed.client_key,
    known_hosts: bed.known_hosts,
    connect_timeout_ms: 5000,
    remote_dtrain: stub,
    ...over,
  };
}

function request(over: Partial<SshLaunchRequest> & { hosts?: typeof bed.hosts } = {}): SshLaunchRequest {
  const { hosts = [h1, h2], ...rest } = over;
  return {
    nodes: hosts.map((h, i) => ({ node_rank: i, host: h.address })),
    settings: settings(),
    workdir: scratch,
    store: { host: '127.0.0.1', port: echoPort },
    helloTimeoutMs: 10_000,
    keepaliveIntervalMs: 1000,
    sshConfigPath: join(scratch, 'no-ssh-config'),
    ...rest,
  };
}

/** A tiny request/response client over the agent's stdin/stdout, keyed by message id. */
function client(agent: RemoteAgent) {
  const waiting = new Map<string, Array<(m: Record<string, unknown>) => void>>();
  createInterface({ input: agent.stdout }).on('line', (line) => {
    const msg = JSON.parse(line) as Record<string, unknown>;
    const key = `${String(msg.type)}:${String(msg.id)}`;
    waiting.get(key)?.shift()?.(msg);
  });
  let next = 0;
  const expect = (type: string, id: number) =>
    new Promise<Record<string, unknown>>((resolve) => {
      const key = `${type}:${id}`;
      if (!waiting.has(key)) waiting.set(key, []);
      waiting.get(key)!.push(resolve);
    });
  return {
    run(argv: string[], env: Record<string, string> = { PATH: '/usr/bin:/bin' }) {
      const id = next++;
      const started = expect('started', id);
      const exited = expect('exit', id);
      agent.stdin.write(JSON.stringify({ type: 'run', id, argv, env }) + '\n');
      return { started, exited };
    },
    store(host: string, port: number, payload: string) {
      const id = next++;
      const reply = expect('store', id);
      agent.stdin.write(JSON.stringify({ type: 'store', id, host, port, payload }) + '\n');
      return reply;
    },
  };
}

async function startError(req: SshLaunchRequest): Promise<StartError> {
  try {
    const agents = await startSshAgents(req);
    agents.forEach((a) => a.close());
  } catch (err) {
    if (err instanceof StartError) return err;
    throw err;
  }
  throw new Error('expected the launch to fail');
}

async function noStrays(t: Test, hosts = bed.hosts) {
  // The agents see stdin close and exit; give the remote side a moment.
  for (let i = 0; i < 40; i++) {
    if (hosts.every((h) => strayPids(h).length === 0)) break;
    await new Promise((r) => setTimeout(r, 100));
  }
  for (const h of hosts) t.same(strayPids(h), [], `nothing left running on ${h.name}`);
}

t.test('agents start on the right hosts, run commands with the given env, reach the store through SSH', async (t) => {
  const agents = await startSshAgents(request({ hosts: [h1, h2, h3] }));
  t.teardown(() => agents.forEach((a) => a.close()));
  t.same(
    agents.map((a) => a.hello.hostname),
    [h1.name, h2.name, h3.name],
    'each agent runs in its host (own UTS namespace)',
  );
  for (const [i, a] of agents.entries()) {
    const c = client(a);
    const { exited } = c.run(['/bin/sh', '-c', 'echo "$(hostname) $RANK $ODD"'], {
      PATH: '/usr/bin:/bin',
      RANK: String(i),
      ODD: `it's "$(x)"; y`,
    });
    t.equal(
      ((await exited).stdout as string).trim(),
      `${bed.hosts[i].name} ${i} it's "$(x)"; y`,
      'env values arrive verbatim',
    );
    t.same(a.storeAddr.host, '127.0.0.1');
    const reply = await c.store(a.storeAddr.host, a.storeAddr.port, `hello from ${i}`);
    t.equal(reply.echoed, `hello from ${i}`, 'the loopback-only store is reached through the SSH forward');
  }
  agents.forEach((a) => a.close());
  await noStrays(t);
});

t.test('rendezvous.addr: agents dial the store directly', async (t) => {
  const direct = createServer((s) => s.pipe(s));
  await new Promise<void>((r) => direct.listen(0, bed.controller_address, r));
  t.teardown(() => direct.close());
  const port = (direct.address() as { port: number }).port;
  const agents = await startSshAgents(request({ hosts: [h1], directStore: { host: bed.controller_address, port } }));
  t.teardown(() => agents.forEach((a) => a.close()));
  t.same(agents[0].storeAddr, { host: bed.controller_address, port });
  t.equal((await client(agents[0]).store(bed.controller_address, port, 'direct')).echoed, 'direct');
});

t.test('workdir and prelude with shell metacharacters', async (t) => {
  const workdir = join(scratch, `odd dir 'q' $(touch pwned); x`);
  mkdirSync(workdir);
  const prelude = `export FROM_PRELUDE="set by prelude"; cat; echo prelude-out`;
  const agents = await startSshAgents(request({ hosts: [h1], workdir, settings: settings({ prelude }) }));
  t.teardown(() => agents.forEach((a) => a.close()));
  const { exited } = client(agents[0]).run(['/bin/sh', '-c', 'pwd; ls -A']);
  t.equal((await exited).stdout, `${workdir}\n`, 'cwd is the workdir, nothing was created by the metacharacters');
});

t.test('version mismatch is exit 3 naming both versions', async (t) => {
  const err = await startError(
    request({ hosts: [h1], settings: settings({ remote_dtrain: stub.replace('.mjs', '-old.mjs') }) }),
  );
  t.equal(err.exitCode, ExitCode.cannotStart);
  t.match(
    err.message,
    new RegExp(
      `^${h1.address.replace(/\./g, '\\.')}: dtrain version mismatch: the controller runs \\d+\\.\\d+\\.\\d+.*has 0\\.0\\.0-old`,
    ),
  );
  await noStrays(t, [h1]);
});

t.test('host keys: changed, unknown, accept-new, revoked, strict no', async (t) => {
  const kh = join(scratch, 'known_hosts_test');
  const [type, key] = h2.host_key.split(' ');
  // h1 listed with h2's key: a changed key.
  writeFileSync(kh, `${h1.address} ${type} ${key}\n`);
  let err = await startError(request({ hosts: [h1], settings: settings({ known_hosts: kh }) }));
  t.match(
    err.message,
    new RegExp(
      `^${h1.address.replace(/\./g, '\\.')}: HOST KEY CHANGED for ${h1.address.replace(/\./g, '\\.')}.*known_hosts_test:1`,
    ),
  );
  t.equal(err.exitCode, 3);

  writeFileSync(kh, '');
  err = await startError(request({ hosts: [h1], settings: settings({ known_hosts: kh }) }));
  t.match(err.message, /is not in .*known_hosts_test \(strict_host_key_checking: yes\)/);

  const agents = await startSshAgents(
    request({ hosts: [h1, h2, h3], settings: settings({ known_hosts: kh, strict_host_key_checking: 'accept-new' }) }),
  );
  agents.forEach((a) => a.close());
  const lines = readFileSync(kh, 'utf8').trim().split('\n');
  t.equal(lines.length, 3, 'accept-new recorded each host once, one line each');
  const again = await startSshAgents(request({ hosts: [h1, h2, h3], settings: settings({ known_hosts: kh }) }));
  again.forEach((a) => a.close());
  t.pass('recorded keys verify under strict yes');

  // The same file hashed by OpenSSH (|1|salt|hmac names) still verifies.
  execFileSync('ssh-keygen', ['-H', '-f', kh], { stdio: 'ignore' });
  rmSync(`${kh}.old`, { force: true });
  t.match(readFileSync(kh, 'utf8'), /^\|1\|/);
  const hashedOk = await startSshAgents(request({ hosts: [h1, h2, h3], settings: settings({ known_hosts: kh }) }));
  hashedOk.forEach((a) => a.close());
  t.equal(hashedOk.length, 3, 'hashed known_hosts entries verify');

  writeFileSync(kh, `${readFileSync(kh, 'utf8')}@revoked * ${h1.host_key}\n`);
  err = await startError(request({ hosts: [h1], settings: settings({ known_hosts: kh }) }));
  t.match(err.message, /@revoked/);

  writeFileSync(kh, `${h1.address} ${type} ${key}\n`);
  err = await startError(
    request({ hosts: [h1], settings: settings({ known_hosts: kh, strict_host_key_checking: 'accept-new' }) }),
  );
  t.match(err.message, /HOST KEY CHANGED/, 'accept-new refuses a changed key');
  t.equal(readFileSync(kh, 'utf8'), `${h1.address} ${type} ${key}\n`, 'and leaves known_hosts as it was');
  const loose = await startSshAgents(
    request({ hosts: [h1], settings: settings({ known_hosts: kh, strict_host_key_checking: 'no' }) }),
  );
  loose.forEach((a) => a.close());
  t.pass('strict_host_key_checking: no connects anyway');
});

t.test(
  'unreachable, refused, unresolvable, bad key, missing dtrain or workdir: one line per host, exit 3',
  async (t) => {
    const hole = h1.address.replace(/\.\d+$/, '.99');
    const started = Date.now();
    let err = await startError(
      request({ hosts: [h1], nodes: [{ node_rank: 0, host: hole }], settings: settings({ connect_timeout_ms: 1500 }) }),
    );
    t.ok(Date.now() - started < 4000, 'bounded by ssh.connect_timeout');
    t.match(
      err.message,
      new RegExp(`^${hole.replace(/\./g, '\\.')}: (connection to .* timed out after 1.5s|no route to)`),
    );

    err = await startError(request({ nodes: [{ node_rank: 0, host: h1.address, port: 2222 }] }));
    t.match(err.message, /connection refused by .*:2222/);

    err = await startError(request({ nodes: [{ node_rank: 0, host: 'no-such-host.invalid' }] }));
    t.match(err.message, /^no-such-host\.invalid: cannot resolve host name no-such-host\.invalid$/);

    const otherKey = join(scratch, 'other_key');
    execFileSync('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-f', otherKey]);
    err = await startError(request({ hosts: [h1], settings: settings({ identity_file: otherKey }) }));
    t.match(err.message, /authentication as root failed \(tried .*other_key\)/);

    err = await startError(request({ hosts: [h1], settings: settings({ remote_dtrain: '/opt/nowhere/dtrain' }) }));
    t.match(err.message, /dtrain is not installed there \(set ssh\.remote_dtrain/);
    err = await startError(request({ hosts: [h1], workdir: '/no/such/dir' }));
    t.match(err.message, /workdir does not exist there: dtrain-remote: workdir \/no\/such\/dir does not exist/);
    err = await startError(request({ hosts: [h1], settings: settings({ prelude: 'echo loading >&2; exit 4' }) }));
    t.match(err.message, /ssh\.prelude exited the remote shell with code 4/);
    err = await startError(request({ hosts: [h1], settings: settings({ prelude: 'module load nothing-such' }) }));
    t.match(err.message, /ssh\.prelude failed: dtrain-remote: prelude failed \(exit 127\)/);
    err = await startError(request({ hosts: [h1], settings: settings({ prelude: 'PATH=/nonexistent' }) }));
    t.match(
      err.message,
      /node is not installed there \(or not on PATH for non-interactive SSH; ssh\.prelude can set PATH\)/,
    );
    const slow = Date.now();
    err = await startError(request({ hosts: [h1], helloTimeoutMs: 1000, settings: settings({ prelude: 'sleep 2' }) }));
    t.match(err.message, /the agent did not answer within 1s \(slow ssh\.prelude\?\)/);
    t.ok(Date.now() - slow < 1900, 'bounded by the hello timeout (rendezvous.timeout), not the prelude');

    // One good host, two bad: every bad host has its line, and the good host's agent is gone.
    err = await startError(
      request({
        nodes: [
          { node_rank: 0, host: h1.address },
          { node_rank: 1, host: h2.address, port: 2222 },
          { node_rank: 2, host: 'no-such-host.invalid' },
        ],
      }),
    );
    t.match(err.message, /could not start on 2 of 3 nodes:\n {2}.*:2222.*\n {2}no-such-host\.invalid: cannot resolve/);
    await noStrays(t);
  },
);

t.test('~/.ssh/config aliases and ProxyJump', async (t) => {
  const home = join(scratch, 'home');
  mkdirSync(join(home, '.ssh'), { recursive: true });
  writeFileSync(
    join(home, '.ssh', 'config'),
    [
      'Host node-one',
      `  HostName ${h1.address}`,
      '  User root',
      `  IdentityFile ${bed.client_key}`,
      'Host node-behind',
      `  HostName ${h3.address}`,
      '  ProxyJump node-one',
      'Host node-behind-too',
      `  HostName ${h2.address}`,
      '  ProxyJump node-one',
      'Host node-behind-nowhere',
      `  HostName ${h2.address}`,
      `  ProxyJump root@${h1.address.replace(/\.\d+$/, '.98')}`,
      'Host *',
      '  User root',
      `  IdentityFile ${bed.client_key}`,
      '',
    ].join('\n'),
  );
  writeFileSync(join(home, '.ssh', 'known_hosts'), readFileSync(bed.known_hosts));
  const savedHome = process.env.HOME;
  process.env.HOME = home;
  t.teardown(() => void (process.env.HOME = savedHome));
  const s = settings();
  delete s.user;
  delete s.identity_file;
  delete s.known_hosts;
  const logins = () => (readFileSync(h1.sshd_log, 'utf8').match(/Accepted publickey/g) ?? []).length;
  const before = logins();
  const agents = await startSshAgents({
    ...request(),
    nodes: [
      { node_rank: 0, host: 'node-one' },
      { node_rank: 1, host: 'node-behind' },
      { node_rank: 2, host: 'node-behind-too' },
    ],
    settings: s,
    sshConfigPath: join(home, '.ssh', 'config'),
  });
  t.teardown(() => agents.forEach((a) => a.close()));
  t.same(
    agents.map((a) => a.hello.hostname),
    [h1.name, h3.name, h2.name],
  );
  t.same(
    agents[1].target.jumps.map((j) => j.hostName),
    [h1.address],
    'node-behind was reached through node-one',
  );
  t.equal(logins() - before, 2, 'one connection to node-one for itself, one shared by both nodes behind it');
  const err = await startError({
    ...request(),
    nodes: [{ node_rank: 0, host: 'node-behind-nowhere' }],
    settings: { ...s, connect_timeout_ms: 1500 },
    sshConfigPath: join(home, '.ssh', 'config'),
  });
  t.match(
    err.message,
    /^node-behind-nowhere: via ProxyJump root@10\.231\.\d+\.98: (connection to .* timed out|no route)/,
  );
  t.equal((await client(agents[1]).store('127.0.0.1', agents[1].storeAddr.port, 'jumped')).echoed, 'jumped');
});

t.test('ssh-agent (SSH_AUTH_SOCK) authenticates when no identity file is set', async (t) => {
  const sock = join(scratch, 'agent.sock');
  const out = execFileSync('ssh-agent', ['-s', '-a', sock], { encoding: 'utf8' });
  const pid = Number(/SSH_AGENT_PID=(\d+)/.exec(out)![1]);
  t.teardown(() => process.kill(pid, 'SIGTERM'));
  execFileSync('ssh-add', ['-q', bed.client_key], { env: { ...process.env, SSH_AUTH_SOCK: sock }, stdio: 'ignore' });
  const saved = process.env.SSH_AUTH_SOCK;
  process.env.SSH_AUTH_SOCK = sock;
  t.teardown(() => void (saved === undefined ? delete process.env.SSH_AUTH_SOCK : (process.env.SSH_AUTH_SOCK = saved)));
  const s = settings();
  delete s.identity_file;
  const agents = await startSshAgents(request({ hosts: [h2], settings: s }));
  agents.forEach((a) => a.close());
  t.equal(agents[0].hello.hostname, h2.name);
});

t.test('24 nodes on one host: handshakes stay under sshd MaxStartups', async (t) => {
  const nodes = Array.from({ length: 24 }, (_, i) => ({ node_rank: i, host: h1.address }));
  // What is checked is the handshake limit, not start-up speed: 24 Node agents starting at once share this
  // machine's 2 cores with the controller, so the hello gets rendezvous.timeout's default, not 10 s.
  const agents = await startSshAgents({
    ...request(),
    nodes,
    settings: settings({ concurrency: 64 }),
    helloTimeoutMs: 60_000,
  });
  t.equal(agents.length, 24);
  agents.forEach((a) => a.close());
  await noStrays(t, [h1]);
});

t.test('remote crash: exit codes and signals come back', async (t) => {
  const agents = await startSshAgents(request({ hosts: [h2] }));
  t.teardown(() => agents.forEach((a) => a.close()));
  const c = client(agents[0]);
  t.match(await c.run([process.execPath, '-e', 'process.exit(7)']).exited, { code: 7, signal: null });
  t.match(await c.run([process.execPath, '-e', 'process.kill(process.pid, "SIGSEGV")']).exited, {
    code: null,
    signal: 'SIGSEGV',
  });
});

t.test('no secret in any argv; controller gone (stdin closed) leaves nothing running', async (t) => {
  const token = `tok-${Math.random().toString(36).slice(2)}`;
  const agents = await startSshAgents(request({ hosts: [h1, h2] }));
  for (const a of agents) {
    // The job secret travels on stdin only, as the controller's first message would carry it.
    a.stdin.write(JSON.stringify({ type: 'start', secret: token }) + '\n');
    await client(a).run(['/bin/sleep', '30']).started;
  }
  const ps = execFileSync('ps', ['-eo', 'args'], { encoding: 'utf8' });
  t.notMatch(ps, token, 'the token is in no process argv on the machine (controller, sshd, agents, workers)');
  t.match(ps, /agent-stub\.mjs agent --stdio/, 'the agents are running');
  agents.forEach((a) => a.close());
  await noStrays(t, [h1, h2]);
});

t.test('network cut of one host is detected by SSH keepalives', async (t) => {
  const agents = await startSshAgents(request({ hosts: [h1, h3], keepaliveIntervalMs: 500, keepaliveCountMax: 2 }));
  t.teardown(() => agents.forEach((a) => a.close()));
  const cutAt = Date.now();
  inHost(h3, ['ip', 'link', 'set', 'eth0', 'down']);
  t.teardown(() => inHost(h3, ['ip', 'link', 'set', 'eth0', 'up']));
  const reason = await Promise.race([
    agents[1].lost.then((l) => l.why),
    new Promise((r) => setTimeout(() => r('not detected'), 8000)),
  ]);
  t.match(reason, /keepalive|SSH connection/i);
  t.ok(Date.now() - cutAt < 5000, `detected in ${Date.now() - cutAt} ms`);
  const still = await Promise.race([
    agents[0].lost.then((l) => l.why),
    new Promise((r) => setTimeout(() => r('alive'), 300)),
  ]);
  t.equal(still, 'alive', 'the other host is unaffected');
});

t.test('an unchanged PyTorch gloo DDP program across 2 hosts', async (t) => {
  if (spawnSync('/usr/bin/python3', ['-c', 'import torch']).status !== 0) {
    t.fail('/usr/bin/python3 cannot import torch (apt-get install python3-torch)');
    return;
  }
  const agents = await startSshAgents(request({ hosts: [h1, h2] }));
  t.teardown(() => agents.forEach((a) => a.close()));
  const script = join(repoRoot, 'test/fixtures/ssh/ddp_train.py');
  const runs = agents.map(
    (a, rank) =>
      client(a).run(['/usr/bin/python3', script], {
        PATH: '/usr/bin:/bin',
        RANK: String(rank),
        LOCAL_RANK: '0',
        WORLD_SIZE: '2',
        MASTER_ADDR: h1.address,
        MASTER_PORT: '29531',
        OMP_NUM_THREADS: '1',
      }).exited,
  );
  const outs = await Promise.all(runs);
  for (const o of outs) t.equal(o.code, 0, String(o.stdout));
  const lines = outs.map((o) => String(o.stdout).trim());
  t.match(lines[0], new RegExp(`^rank=0 world=2 host=${h1.name} params=`));
  t.match(lines[1], new RegExp(`^rank=1 world=2 host=${h2.name} params=`));
  t.equal(lines[0].split('params=')[1], lines[1].split('params=')[1], 'DDP kept the parameters identical across hosts');
});

t.test('a second sshd on port 2222: [host]:port in known_hosts, Port from ~/.ssh/config', async (t) => {
  const dir = join(bed.state_dir, 'hosts', h1.namespace);
  const config = join(scratch, 'sshd_2222');
  writeFileSync(
    config,
    readFileSync(join(dir, 'sshd_config'), 'utf8')
      .replace(/^Port 22$/m, 'Port 2222')
      .replace(/^PidFile .*$/m, `PidFile ${scratch}/sshd_2222.pid`),
  );
  const sshd = spawn(
    'ip',
    [
      'netns',
      'exec',
      h1.namespace,
      'unshare',
      '--uts',
      '--mount',
      '--propagation',
      'private',
      'sh',
      '-c',
      `mount -t tmpfs tmpfs /run && mkdir /run/sshd && hostname ${h1.name} && exec /usr/sbin/sshd -D -e -f ${config}`,
    ],
    { stdio: 'ignore' },
  );
  t.teardown(() => void sshd.kill('SIGTERM'));
  for (let i = 0; i < 50 && !existsSync(join(scratch, 'sshd_2222.pid')); i++)
    await new Promise((r) => setTimeout(r, 100));

  const kh = join(scratch, 'known_hosts_2222');
  writeFileSync(kh, `${h1.address} ${h1.host_key}\n`);
  const node = [{ node_rank: 0, host: h1.address, port: 2222 }];
  const err = await startError({ ...request(), nodes: node, settings: settings({ known_hosts: kh }) });
  t.match(
    err.message,
    new RegExp(`host key of \\[${h1.address.replace(/\./g, '\\.')}\\]:2222 is not in`),
    'port 22 entries do not vouch for port 2222',
  );

  writeFileSync(kh, `[${h1.address}]:2222 ${h1.host_key}\n`);
  const viaPort = await startSshAgents({ ...request(), nodes: node, settings: settings({ known_hosts: kh }) });
  viaPort.forEach((a) => a.close());
  t.equal(viaPort[0].hello.hostname, h1.name);

  const sshConfig = join(scratch, 'ssh_config_2222');
  writeFileSync(sshConfig, `Host port-alias\n  HostName ${h1.address}\n  Port 2222\n`);
  const viaAlias = await startSshAgents({
    ...request(),
    nodes: [{ node_rank: 0, host: 'port-alias' }],
    settings: settings({ known_hosts: kh }),
    sshConfigPath: sshConfig,
  });
  viaAlias.forEach((a) => a.close());
  t.equal(viaAlias[0].target.port, 2222, 'Port came from the ssh config');
});
