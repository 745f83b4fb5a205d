/**
 * Join mode with real processes on this machine: `dtrain launch --join-agents N --secret-file F` and N
 * `dtrain agent --join 127.0.0.1:P --secret-file F --host <name>` (the names stand for separate hosts:
 * node ranks, logs and messages follow them; MASTER_ADDR is loopback because every agent is here).
 */
import t from 'tap';
import { chmodSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { connect, type Socket } from 'node:net';
import { built, startDtrain, tempDir, waitFor, type Run } from '../../helpers/launch.js';
import { freePort } from '../../../src/launch/ports.js';
import { StoreClient } from '../../../src/store/index.js';
import { packageVersion } from '../../../src/util/version.js';
import { joinContractVersion, openJoinSpec } from '../../../src/launch/join/join-contract.js';

// CI (DTRAIN_REQUIRE_INTEGRATION) builds first: there a missing dist/ is a failure, not a skip
if (!built() && !process.env.DTRAIN_REQUIRE_INTEGRATION) {
  t.plan(0, 'dist/ is not built (npx tsc -p .)');
  process.exit(0);
}

function secretFile(dir: string, name = 'secret', mode = 0o600): { file: string; hex: string } {
  const hex = randomBytes(32).toString('hex');
  const file = join(dir, name);
  writeFileSync(file, hex, { mode });
  chmodSync(file, mode);
  return { file, hex };
}

/** A job config under dir; `lines` are extra YAML lines. */
function config(dir: string, lines: string[]): string {
  const file = join(dir, 'job.yaml');
  writeFileSync(
    file,
    ['name: joined', 'heartbeat: {interval: 250ms, timeout: 2s}', 'shutdown_grace: 2s', ...lines].join('\n') + '\n',
  );
  return file;
}

function agent(dir: string, port: number, secret: string, host: string): Run {
  return startDtrain(
    ['agent', '--join', `127.0.0.1:${port}`, '--secret-file', secret, '--host', host, '--timeout', '20s'],
    { cwd: dir },
  );
}

const envProbe = join(import.meta.dirname, '../../fixtures/join/env-probe.mjs');

t.test(
  'two joined agents run the job: node ranks follow the listed hosts, torchrun env, no secret anywhere',
  async (t) => {
    const dir = tempDir(t, 'join');
    const { file: secret, hex } = secretFile(dir);
    const port = await freePort();
    const cfg = config(dir, [
      `entrypoint: node ${envProbe}`,
      'nproc_per_node: 2',
      'nodes: [{host: node-a}, {host: node-b}]',
    ]);
    const ctl = startDtrain(
      ['launch', cfg, '--join-agents', '2', '--secret-file', secret, '--set', `rendezvous.port=${port}`, '--json'],
      { cwd: dir },
    );
    // node-b joins first: the listed order, not the join order, decides the node ranks
    const b = agent(dir, port, secret, 'node-b');
    let bErr = '';
    b.child.stderr!.on('data', (d: Buffer) => (bErr += d.toString()));
    t.ok(await waitFor(() => bErr.includes('joined the job'), 15_000), 'node-b registered');
    const a = agent(dir, port, secret, 'node-a');
    const [c, ra, rb] = await Promise.all([ctl.done, a.done, b.done]);
    t.equal(c.code, 0, c.stderr);
    t.equal(ra.code, 0, ra.stderr);
    t.equal(rb.code, 0, rb.stderr);

    const summary = JSON.parse(c.stdout) as {
      exit_code: number;
      attempts: { ranks: { rank: number; host: string; exit_code: number }[] }[];
    };
    t.equal(summary.exit_code, 0);
    t.same(
      summary.attempts[0].ranks.map((r) => [r.rank, r.host, r.exit_code]),
      [
        [0, 'node-a', 0],
        [1, 'node-a', 0],
        [2, 'node-b', 0],
        [3, 'node-b', 0],
      ],
    );

    // the workers' output came through the store to the controller's console, prefixed with host and rank
    const envs = c.stderr
      .split('\n')
      .filter((l) => l.includes('ENV '))
      .map((l) => JSON.parse(l.slice(l.indexOf('ENV ') + 4)) as Record<string, string>);
    t.equal(envs.length, 4, c.stderr);
    const byRank = new Map(envs.map((e) => [Number(e.RANK), e]));
    for (let rank = 0; rank < 4; rank++) {
      const e = byRank.get(rank)!;
      t.match(
        e,
        {
          WORLD_SIZE: '4',
          LOCAL_WORLD_SIZE: '2',
          LOCAL_RANK: String(rank % 2),
          GROUP_RANK: String(rank >> 1),
          GROUP_WORLD_SIZE: '2',
          DTRAIN_NODE_RANK: String(rank >> 1),
          MASTER_ADDR: '127.0.0.1',
          MASTER_PORT: /^[0-9]+$/,
          DTRAIN_STORE: /^unix:\//,
          DTRAIN_DATA_SIZE: '4',
        },
        `rank ${rank}`,
      );
      t.not(e.MASTER_PORT, String(port), 'MASTER_PORT is not the store port');
      t.notOk(
        Object.values(e).some((v) => v.includes(hex)),
        `rank ${rank}: the secret is in no worker variable`,
      );
    }
    t.equal(new Set(envs.map((e) => e.MASTER_PORT)).size, 1, 'one MASTER_PORT for the job');
    t.match(c.stderr, /\[node-b rank 2\] ENV /);
    t.notOk(c.stderr.includes(hex) || ra.stderr.includes(hex) || rb.stderr.includes(hex), 'the secret is in no output');
    t.ok(
      envs.every((e) => e.SUM === '10'),
      'an all-reduce over both nodes summed every rank',
    );
  },
);

t.test(
  'output: every line of every rank arrives, in order, through the store (far more records than its window)',
  async (t) => {
    const dir = tempDir(t, 'join');
    const { file: secret } = secretFile(dir);
    const port = await freePort();
    const cfg = config(dir, [
      `entrypoint: node -e "for (let i = 0; i < 20000; i++) console.log('line', i)"`,
      'nproc_per_node: 1',
    ]);
    const ctl = startDtrain(
      ['launch', cfg, '--join-agents', '2', '--secret-file', secret, '--set', `rendezvous.port=${port}`],
      { cwd: dir },
    );
    const [c] = await Promise.all([
      ctl.done,
      agent(dir, port, secret, 'node-a').done,
      agent(dir, port, secret, 'node-b').done,
    ]);
    t.equal(c.code, 0, c.stderr);
    for (const rank of [0, 1]) {
      const got = c.stdout
        .split('\n')
        .filter((l) => l.includes(` rank ${rank}] line `))
        .map((l) => Number(l.split(' line ')[1]));
      t.equal(got.length, 20000, `rank ${rank}: all lines`);
      t.ok(
        got.every((n, i) => n === i),
        `rank ${rank}: in order`,
      );
    }
  },
);

t.test('an agent of another dtrain version is refused and the job does not start (exit 3 both sides)', async (t) => {
  const dir = tempDir(t, 'join');
  const { file: secret, hex } = secretFile(dir);
  const port = await freePort();
  const cfg = config(dir, ['entrypoint: node -e 0', 'nproc_per_node: 1']);
  const ctl = startDtrain(
    ['launch', cfg, '--join-agents', '1', '--secret-file', secret, '--set', `rendezvous.port=${port}`],
    { cwd: dir },
  );
  // an older agent, speaking the join protocol by hand with the right key
  const store = await untilControllerExits(ctl, connectWithRetry(port, Buffer.from(hex, 'hex')));
  const index = (await store.add('ctl/join/count', 1)) - 1;
  // as the real agent does: the wait for the answer right behind the registration
  const registered = store.set(
    `ctl/join/agent/${index}`,
    JSON.stringify({
      type: 'join',
      version: '0.0.1',
      contract: joinContractVersion,
      host: 'old-node',
      hostname: 'old-node',
      pid: 1,
      local_addr: '127.0.0.1',
      store_addr: '127.0.0.1',
      gpus: 0,
    }),
  );
  const answered = store.get(`ctl/join/spec/${index}`, 10_000);
  await registered;
  const answer = JSON.parse((await answered).toString()) as { type: string; message: string };
  await store.set(`ctl/join/refused/${index}`, '');
  await store.close();
  const c = await ctl.done;
  t.equal(c.code, 3, c.stderr);
  t.match(
    c.stderr,
    /dtrain version mismatch: the controller runs \S+, the agent on old-node runs 0\.0\.1; install the same version on every node/,
  );
  t.match(answer, { type: 'refused', message: /^the job could not start: dtrain version mismatch/ });
});

t.test(
  'the spec an agent reads from the store is sealed and carries no job key (frames are not encrypted)',
  async (t) => {
    const dir = tempDir(t, 'join');
    const { file: secret, hex } = secretFile(dir);
    const port = await freePort();
    // backend cpu: no GPU probe to wait for from an agent that will never run
    const cfg = config(dir, [
      'entrypoint: node -e 0',
      'nproc_per_node: 1',
      'backend: cpu',
      'env: {HF_TOKEN: sesame-token-4711, PLAIN_SETTING: plain-value-4712}',
    ]);
    const ctl = startDtrain(
      ['launch', cfg, '--join-agents', '1', '--secret-file', secret, '--set', `rendezvous.port=${port}`],
      { cwd: dir },
    );
    // an agent by hand that reads its spec and then vanishes
    const store = await untilControllerExits(ctl, connectWithRetry(port, Buffer.from(hex, 'hex')));
    const index = (await store.add('ctl/join/count', 1)) - 1;
    await store.set(
      `ctl/join/agent/${index}`,
      JSON.stringify({
        type: 'join',
        version: packageVersion(),
        contract: joinContractVersion,
        host: 'probe',
        hostname: 'probe',
        pid: 1,
        local_addr: '127.0.0.1',
        local_port: 0,
        store_addr: '127.0.0.1',
        gpus: 0,
      }),
    );
    const spec = (await store.get(`ctl/join/spec/${index}`, 15_000)).toString();
    await store.close();
    t.notMatch(spec, /sesame-token-4711|plain-value-4712|probe/, 'nothing of the spec in clear');
    const opened = openJoinSpec(Buffer.from(hex, 'hex'), index, JSON.parse(spec) as never);
    t.match(opened, { type: 'spec', node: { host: 'probe' }, job_key: '' }, 'it opens with the secret file');
    t.match(opened.ranks[0].env, { HF_TOKEN: 'sesame-token-4711', PLAIN_SETTING: 'plain-value-4712' });
    t.notOk(
      spec.includes(Buffer.from(hex, 'hex').toString('base64')) || spec.includes(hex),
      'no form of the key in the spec',
    );
    const c = await ctl.done;
    // lost before its workers started: the job could not start
    t.equal(c.code, 3, c.stderr);
    t.match(c.stderr, /probe: node lost/);
  },
);

t.test(
  'a wrong secret: that agent exits 3 at once saying so; the controller names the failed handshake at its timeout',
  async (t) => {
    const dir = tempDir(t, 'join');
    const { file: secret } = secretFile(dir);
    const { file: other } = secretFile(dir, 'other');
    const port = await freePort();
    // The window must outlast two agent starts on a loaded 2-core machine: the wrong-secret agent has to
    // reach the controller before it gives up, or it meets a closed port instead of a refused handshake.
    const cfg = config(dir, ['entrypoint: node -e 0', 'nproc_per_node: 1', 'rendezvous: {timeout: 10s}']);
    const ctl = startDtrain(
      ['launch', cfg, '--join-agents', '2', '--secret-file', secret, '--set', `rendezvous.port=${port}`],
      { cwd: dir },
    );
    const good = agent(dir, port, secret, 'node-a');
    let goodErr = '';
    good.child.stderr!.on('data', (d: Buffer) => (goodErr += d.toString()));
    t.ok(await waitFor(() => goodErr.includes('joined the job'), 15_000), 'node-a registered');
    const x = await agent(dir, port, other, 'node-b').done;
    t.equal(x.code, 3, x.stderr);
    t.match(
      x.stderr,
      /^dtrain: .*did not accept this agent's secret.*use the secret file the controller was given\n$/m,
    );
    t.equal(ctl.child.exitCode, null, 'a failed handshake alone does not end the job');
    const [c, g] = await Promise.all([ctl.done, good.done]);
    t.equal(c.code, 3, c.stderr);
    t.match(
      c.stderr,
      new RegExp(
        'only 1 of 2 agents joined within 10s \\(node-a\\); ' +
          '1 connection\\(s\\) failed authentication \\(from 127\\.0\\.0\\.1\\): another secret file\\?',
      ),
    );
    t.equal(g.code, 3, g.stderr);
    t.match(g.stderr, /the job could not start: only 1 of 2 agents joined/);
  },
);

t.test(
  'strangers cost a slot, never the job: a HELLO with a wrong proof and 64 idle connections, then an agent joins',
  async (t) => {
    const dir = tempDir(t, 'join');
    const { file: secret } = secretFile(dir);
    const port = await freePort();
    const cfg = config(dir, ['entrypoint: node -e 0', 'nproc_per_node: 1', 'rendezvous: {timeout: 30s}']);
    const ctl = startDtrain(
      ['launch', cfg, '--join-agents', '1', '--secret-file', secret, '--set', `rendezvous.port=${port}`],
      { cwd: dir },
    );
    let ctlErr = '';
    ctl.child.stderr!.on('data', (d: Buffer) => (ctlErr += d.toString()));
    t.ok(await waitFor(() => ctlErr.includes('to join on port'), 15_000), 'the controller listens');
    const sockets: Socket[] = [];
    t.teardown(() => sockets.forEach((s) => s.destroy()));
    const open = () =>
      new Promise<Socket>((resolve, reject) => {
        const s = connect({ host: '127.0.0.1', port }, () => resolve(s)).once('error', reject);
        sockets.push(s);
      });
    // What anyone can send without the key: a HELLO (any nonce), then hang up.
    const stranger = await open();
    const hello = Buffer.concat([Buffer.from('DTS'), Buffer.of(1, 1), randomBytes(32)]);
    const len = Buffer.alloc(4);
    len.writeUInt32BE(hello.length);
    await new Promise<void>((resolve) => stranger.end(Buffer.concat([len, hello]), () => resolve()));
    await Promise.all(Array.from({ length: 64 }, open));
    await new Promise((r) => setTimeout(r, 500));
    t.equal(ctl.child.exitCode, null, 'the controller still waits for its agent');
    const [c, a] = await Promise.all([ctl.done, agent(dir, port, secret, 'node-a').done]);
    t.equal(a.code, 0, a.stderr);
    t.equal(c.code, 0, c.stderr);
  },
);

t.test(
  'too few agents: exit 3 at the rendezvous timeout naming who joined; it and a later agent exit 3 too',
  async (t) => {
    const dir = tempDir(t, 'join');
    const { file: secret } = secretFile(dir);
    const port = await freePort();
    const cfg = config(dir, ['entrypoint: node -e 0', 'nproc_per_node: 1', 'rendezvous: {timeout: 2s}']);
    const ctl = startDtrain(
      ['launch', cfg, '--join-agents', '2', '--secret-file', secret, '--set', `rendezvous.port=${port}`],
      { cwd: dir },
    );
    const [c, a] = await Promise.all([ctl.done, agent(dir, port, secret, 'node-a').done]);
    t.equal(c.code, 3, c.stderr);
    t.match(c.stderr, /^dtrain: only 1 of 2 agents joined within 2s \(node-a\); start `dtrain agent --join/m);
    t.ok(c.ms < 10_000, `${c.ms} ms`);
    t.equal(a.code, 3, a.stderr);
    t.match(a.stderr, /the job could not start: only 1 of 2 agents joined/);
    // the second agent comes after the deadline: the controller is gone, and it says so within its --timeout
    const late = await startDtrain(
      ['agent', '--join', `127.0.0.1:${port}`, '--secret-file', secret, '--host', 'node-b', '--timeout', '2s'],
      { cwd: dir },
    ).done;
    t.equal(late.code, 3, late.stderr);
    t.match(
      late.stderr,
      new RegExp(
        `^dtrain: cannot reach the controller's store at 127\\.0\\.0\\.1:${port} within 2s \\(ECONNREFUSED\\)`,
      ),
    );
    t.equal(late.stderr.trim().split('\n').length, 1, 'one line');
    t.ok(late.ms < 6000, `the late agent gave up after ${late.ms} ms`);
  },
);

t.test(
  'an agent killed mid-job: the job fails (exit 1) at once naming its host; the other agent and all workers end',
  async (t) => {
    const dir = tempDir(t, 'join');
    const { file: secret } = secretFile(dir);
    const port = await freePort();
    const cfg = config(dir, [
      `entrypoint: node -e "console.log('up', process.pid); setTimeout(() => {}, 60000)"`,
      'nproc_per_node: 1',
      'nodes: [{host: node-a}, {host: node-b}]',
    ]);
    // a heartbeat timeout far away: the loss must come from the agent's closed connection
    const ctl = startDtrain(
      [
        'launch',
        cfg,
        '--join-agents',
        '2',
        '--secret-file',
        secret,
        '--set',
        `rendezvous.port=${port}`,
        'heartbeat.timeout=60s',
        '--json',
      ],
      { cwd: dir },
    );
    const a = agent(dir, port, secret, 'node-a');
    const b = agent(dir, port, secret, 'node-b');
    let ctlErr = '';
    ctl.child.stderr!.on('data', (d: Buffer) => (ctlErr += d.toString()));
    t.ok(await waitFor(() => (ctlErr.match(/ up \d+/g) ?? []).length === 2, 20_000), 'both workers up');
    const pids = [...ctlErr.matchAll(/ up (\d+)/g)].map((m) => Number(m[1]));
    const late = await agent(dir, port, secret, 'node-c').done;
    t.equal(late.code, 3, 'an agent beyond --join-agents is refused');
    t.match(late.stderr, /the job already has its 2 agents \(this one joined as node-c\)/);
    const killedAt = Date.now();
    b.child.kill('SIGKILL');
    const [c, ra] = await Promise.all([ctl.done, a.done]);
    t.equal(c.code, 1, c.stderr);
    t.ok(Date.now() - killedAt < 10_000, `noticed long before the heartbeat timeout (${Date.now() - killedAt} ms)`);
    const summary = JSON.parse(c.stdout) as { root_cause: { host: string; message?: string } | null };
    t.match(summary.root_cause, { host: 'node-b', message: /its agent's connection to the controller closed/ });
    t.match(c.stderr, /node-b/);
    t.equal(ra.code, 0, `node-a's agent was let go cleanly: ${ra.stderr}`);
    t.ok(await waitFor(() => pids.every((pid) => !isAlive(pid)), 5000), 'no worker outlives the job');
  },
);

t.test(
  'an agent stopped with SIGTERM mid-job: its workers end, it exits 1, the job fails at once (exit 1)',
  async (t) => {
    const dir = tempDir(t, 'join');
    const { file: secret } = secretFile(dir);
    const port = await freePort();
    const cfg = config(dir, [
      `entrypoint: node -e "console.log('up', process.pid); setTimeout(() => {}, 60000)"`,
      'nproc_per_node: 1',
      'nodes: [{host: node-a}, {host: node-b}]',
    ]);
    const ctl = startDtrain(
      [
        'launch',
        cfg,
        '--join-agents',
        '2',
        '--secret-file',
        secret,
        '--set',
        `rendezvous.port=${port}`,
        'heartbeat.timeout=60s',
        '--json',
      ],
      { cwd: dir },
    );
    const a = agent(dir, port, secret, 'node-a');
    const b = agent(dir, port, secret, 'node-b');
    let out = '';
    ctl.child.stderr!.on('data', (d: Buffer) => (out += d.toString()));
    t.ok(await waitFor(() => (out.match(/ up \d+/g) ?? []).length === 2, 20_000), 'both workers up');
    const pids = [...out.matchAll(/ up (\d+)/g)].map((m) => Number(m[1]));
    const stoppedAt = Date.now();
    b.child.kill('SIGTERM');
    const [c, ra, rb] = await Promise.all([ctl.done, a.done, b.done]);
    t.equal(rb.code, 1, rb.stderr);
    t.equal(c.code, 1, c.stderr);
    t.ok(Date.now() - stoppedAt < 10_000, `${Date.now() - stoppedAt} ms`);
    t.match(JSON.parse(c.stdout), { root_cause: { host: 'node-b' } });
    t.equal(ra.code, 0, ra.stderr);
    t.ok(await waitFor(() => pids.every((pid) => !isAlive(pid)), 5000), 'no worker outlives the job');
  },
);

t.test('the controller killed mid-job: every agent kills its workers and exits 1', async (t) => {
  const dir = tempDir(t, 'join');
  const { file: secret } = secretFile(dir);
  const port = await freePort();
  const cfg = config(dir, [
    `entrypoint: node -e "console.log('up', process.pid); setTimeout(() => {}, 60000)"`,
    'nproc_per_node: 1',
  ]);
  const ctl = startDtrain(
    ['launch', cfg, '--join-agents', '2', '--secret-file', secret, '--set', `rendezvous.port=${port}`],
    { cwd: dir },
  );
  const a = agent(dir, port, secret, 'node-a');
  const b = agent(dir, port, secret, 'node-b');
  let out = '';
  ctl.child.stdout!.on('data', (d: Buffer) => (out += d.toString()));
  t.ok(await waitFor(() => (out.match(/ up \d+/g) ?? []).length === 2, 20_000), 'both workers up');
  const pids = [...out.matchAll(/ up (\d+)/g)].map((m) => Number(m[1]));
  ctl.child.kill('SIGKILL');
  const [ra, rb] = await Promise.all([a.done, b.done]);
  t.equal(ra.code, 1, ra.stderr);
  t.equal(rb.code, 1, rb.stderr);
  t.ok(ra.ms < 30_000);
  t.ok(await waitFor(() => pids.every((pid) => !isAlive(pid)), 5000), 'no worker outlives its agent');
});

t.test(
  'a controller that stops answering (frozen, its host gone) without closing: the agents end their nodes (exit 1)',
  async (t) => {
    const dir = tempDir(t, 'join');
    const { file: secret } = secretFile(dir);
    const port = await freePort();
    const cfg = config(dir, [
      `entrypoint: node -e "console.log('up', process.pid); setTimeout(() => {}, 60000)"`,
      'nproc_per_node: 1',
    ]);
    const ctl = startDtrain(
      ['launch', cfg, '--join-agents', '1', '--secret-file', secret, '--set', `rendezvous.port=${port}`],
      { cwd: dir },
    );
    t.teardown(() => void ctl.child.kill('SIGKILL'));
    const a = agent(dir, port, secret, 'node-a');
    let out = '';
    ctl.child.stdout!.on('data', (d: Buffer) => (out += d.toString()));
    t.ok(await waitFor(() => / up \d+/.test(out), 20_000), 'worker up');
    const pid = Number(/ up (\d+)/.exec(out)![1]);
    const frozenAt = Date.now();
    ctl.child.kill('SIGSTOP');
    const ra = await a.done;
    t.equal(ra.code, 1, ra.stderr);
    t.match(ra.stderr, /the controller \(its store at 127\.0\.0\.1:\d+\) has not answered for 2s: stopping this node/);
    t.ok(Date.now() - frozenAt < 20_000, `${Date.now() - frozenAt} ms`);
    t.ok(await waitFor(() => !isAlive(pid), 5000), 'its worker is gone');
  },
);

t.test('a secret file others can read is refused on both sides (exit 2, one line)', async (t) => {
  const dir = tempDir(t, 'join');
  const { file: secret } = secretFile(dir, 'secret', 0o644);
  const cfg = config(dir, ['entrypoint: node -e 0']);
  const c = await startDtrain(['launch', cfg, '--join-agents', '1', '--secret-file', secret], { cwd: dir }).done;
  t.equal(c.code, 2);
  t.equal(
    c.stderr,
    `dtrain: secret file ${secret} is readable or writable by others (mode 0644): run chmod 600 ${secret}\n`,
  );
  const a = await startDtrain(['agent', '--join', '127.0.0.1:1', '--secret-file', secret], { cwd: dir }).done;
  t.equal(a.code, 2);
  t.equal(a.stderr, c.stderr);
  const u = await startDtrain(['launch', cfg, '--join-agents', '2'], { cwd: dir }).done;
  t.equal(u.code, 2);
  t.match(u.stderr, /^dtrain: --join-agents needs --secret-file F/);
  t.notOk(readFileSync(secret, 'utf8').length === 0);
});

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return !/^State:\s+Z/m.test(readFileSync(`/proc/${pid}/status`, 'utf8'));
  } catch {
    return false;
  }
}

/** `p`, unless the controller exits first: then the test fails with what the controller said. */
function untilControllerExits<T>(
  ctl: { done: Promise<{ code: number | null; stderr: string }> },
  p: Promise<T>,
): Promise<T> {
  return Promise.race([
    p,
    ctl.done.then((c) => {
      throw new Error(`the controller exited (code ${c.code}) before the test could reach its store: ${c.stderr}`);
    }),
  ]);
}

async function connectWithRetry(port: number, jobKey: Buffer): Promise<StoreClient> {
  for (let i = 0; ; i++) {
    try {
      return await StoreClient.connectTcp({ host: '127.0.0.1', port, jobKey });
    } catch (err) {
      if (i > 100) throw err;
      await new Promise((r) => setTimeout(r, 100));
    }
  }
}
