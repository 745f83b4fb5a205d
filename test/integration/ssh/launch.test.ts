/**
 * `dtrain launch` across SSH hosts, end to end on real sshd hosts (network namespaces): the controller,
 * the store, `dtrain agent --stdio` on every host (this checkout's bin/dtrain over the shared file system),
 * dtrain-exec workers, supervision. The remote hook is src/launch/ssh/remote-spawner.ts.
 */
import { execFileSync, spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PassThrough } from 'node:stream';
import t from 'tap';
import { loadConfig } from '../../../src/config/index.js';
import { launchJob } from '../../../src/launch/controller.js';
import { sshNodeSource } from '../../../src/launch/ssh/node-source.js';
import { buildPlan } from '../../../src/plan/index.js';
import { JobFailedError, StartError } from '../../../src/util/errors.js';
import { inHost, repoRoot, skipReason, strayPids, testbedUp } from '../../helpers/ssh-testbed.js';

const skip =
  skipReason() ?? (existsSync(join(repoRoot, 'dist/cli/main.js')) ? undefined : 'needs a built dist/ (npm run build)');
if (skip && !process.env.DTRAIN_REQUIRE_INTEGRATION) {
  t.plan(0, skip);
  process.exit(0);
}

const bed = testbedUp(2, 'tl');
t.teardown(() => bed.down());
const [h1, h2] = bed.hosts as [(typeof bed.hosts)[0], (typeof bed.hosts)[0]];
const scratch = mkdtempSync(join(tmpdir(), 'dtrain-ssh-launch-'));
t.teardown(() => rmSync(scratch, { recursive: true, force: true }));

async function waitUntil(ok: () => boolean, ms: number): Promise<boolean> {
  for (const end = Date.now() + ms; Date.now() < end; await new Promise((r) => setTimeout(r, 100)))
    if (ok()) return true;
  return ok();
}

function yamlString(s: string): string {
  return JSON.stringify(s);
}

async function launch(
  name: string,
  body: string,
  env: Record<string, string> = {},
  knownHosts = bed.known_hosts,
  sshExtra: string[] = [],
) {
  const file = join(scratch, `${name}.yaml`);
  writeFileSync(
    file,
    [
      `name: ${name}`,
      `workdir: ${yamlString(scratch)}`,
      'ssh:',
      '  user: root',
      `  identity_file: ${yamlString(bed.client_key)}`,
      `  known_hosts: ${yamlString(knownHosts)}`,
      `  remote_dtrain: ${yamlString(join(repoRoot, 'bin/dtrain'))}`,
      '  connect_timeout: 5s',
      ...sshExtra,
      'heartbeat: {interval: 500ms, timeout: 3s}',
      'shutdown_grace: 2s',
      `logs: {dir: ${yamlString(join(scratch, 'logs'))}}`,
      body,
    ].join('\n'),
  );
  const loaded = await loadConfig(file, { sets: [] });
  const plan = buildPlan(loaded);
  const out = new PassThrough();
  const err = new PassThrough();
  let stdout = '';
  let stderr = '';
  out.on('data', (d) => (stdout += d));
  err.on('data', (d) => (stderr += d));
  const saved: Record<string, string | undefined> = {};
  for (const [k, v] of Object.entries(env)) {
    saved[k] = process.env[k];
    process.env[k] = v;
  }
  try {
    const summary = await launchJob({
      config: loaded.config,
      plan,
      json: true,
      out,
      err,
      source: sshNodeSource(err),
    });
    return { summary, error: undefined, stdout, stderr };
  } catch (error) {
    return { summary: (error as { summary?: unknown }).summary, error: error as Error, stdout, stderr };
  } finally {
    for (const [k, v] of Object.entries(saved))
      if (v === undefined) delete process.env[k];
      else process.env[k] = v;
  }
}

const nodes = (slots: [number, number]) =>
  `nodes: [{host: "${h1.address}", slots: ${slots[0]}}, {host: "${h2.address}", slots: ${slots[1]}}]`;

t.test('ranks on the right hosts with the right environment, output relayed with the host', async (t) => {
  const probe = join(scratch, 'probe.js');
  writeFileSync(
    probe,
    `const os = require('os'); const e = process.env;
console.log(JSON.stringify({ host: os.hostname(), rank: e.RANK, local: e.LOCAL_RANK, world: e.WORLD_SIZE,
  group: e.GROUP_RANK, master: e.MASTER_ADDR, store: e.DTRAIN_STORE, prelude: e.FROM_PRELUDE, nccl: e.NCCL_DEBUG,
  fwd: e.NCCL_SOCKET_IFNAME, odd: e.ODD, cwd: process.cwd(), argv: process.argv.slice(2),
  secret: Object.keys(e).filter((k) => /KEY|SECRET|TOKEN/.test(k)) }));`,
  );
  const r = await launch(
    'placement',
    [
      nodes([2, 1]),
      `entrypoint: [${yamlString(process.execPath)}, ${yamlString(probe)}, "a b", "$(x);'q'"]`,
      `env: {NCCL_DEBUG: WARN, ODD: "it's \\"$(x)\\"; y"}`,
    ].join('\n'),
    { NCCL_DEBUG: 'INFO', NCCL_SOCKET_IFNAME: 'eth0' },
    bed.known_hosts,
    // what `module load` or `source venv/bin/activate` would do: exports the workers must see
    ['  prelude: export FROM_PRELUDE="set by the prelude"'],
  );
  t.equal(r.error?.message, undefined, r.error ? r.stderr : 'launched and finished');
  const docs = r.stderr.split('\n').flatMap((l) => {
    const m = /(\{"host".*\})\s*$/.exec(l);
    return m ? [{ line: l, doc: JSON.parse(m[1]) }] : [];
  });
  t.equal(docs.length, 3, r.stderr);
  const byRank = new Map(docs.map((d) => [Number(d.doc.rank), d]));
  t.same(
    [0, 1, 2].map((k) => byRank.get(k)?.doc.host),
    [h1.name, h1.name, h2.name],
    'ranks 0,1 on node 0, rank 2 on node 1',
  );
  for (const [rank, { doc, line }] of byRank) {
    t.match(doc, {
      world: '3',
      local: String(rank === 2 ? 0 : rank),
      group: String(rank === 2 ? 1 : 0),
      master: h1.address,
      nccl: 'WARN',
      fwd: 'eth0',
    });
    t.equal(doc.odd, `it's "$(x)"; y`);
    t.equal(doc.prelude, 'set by the prelude', 'ssh.prelude exports reach the workers');
    t.same(doc.argv, ['a b', "$(x);'q'"]);
    t.equal(doc.cwd, scratch);
    t.match(doc.store, /^unix:\//);
    t.same(doc.secret, [], 'no secret-looking variable in the worker env');
    t.match(line, doc.host === h1.name ? h1.address : h2.address, 'the relayed line names its host');
  }
  await new Promise((res) => setTimeout(res, 300));
  t.same(strayPids(h1), [], 'nothing left on h1');
  t.same(strayPids(h2), [], 'nothing left on h2');
});

t.test(
  'collectives across real hosts: every op and dtype checked against the reference, over TCP and hierarchically',
  async (t) => {
    const matrix = join(repoRoot, 'test/fixtures/collectives/matrix.mjs');
    for (const [slots, kind] of [
      [[1, 1], 'tcp'],
      [[2, 2], 'hierarchical'],
    ] as const) {
      const r = await launch(
        `matrix-${kind}`,
        [
          nodes([...slots]),
          `entrypoint: [${yamlString(process.execPath)}, ${yamlString(matrix)}]`,
          'env: {COLL_LENGTHS: "1,7,5003"}',
        ].join('\n'),
      );
      t.equal(r.error?.message, undefined, r.error ? r.stderr.slice(-3000) : `${kind}: finished`);
      const reports = r.stderr
        .split('\n')
        .flatMap((l) => (l.includes('"checks"') ? [JSON.parse(l.slice(l.indexOf('{')))] : []));
      t.equal(reports.length, slots[0] + slots[1], `${kind}: every rank reported`);
      for (const rep of reports) {
        t.same(rep.failures, [], `${kind}: rank ${rep.rank} matches the reference (${rep.checks} elements)`);
        t.equal(rep.kinds.world, kind);
      }
    }
  },
);

t.test('a remote crash tears down every node, exit 1 naming the rank and host', async (t) => {
  const crash = join(scratch, 'crash.js');
  writeFileSync(
    crash,
    `if (process.env.RANK === '1') { setTimeout(() => process.exit(9), 300); } else setInterval(() => {}, 1000);`,
  );
  const started = Date.now();
  const r = await launch(
    'crash',
    [nodes([1, 1]), `entrypoint: [${yamlString(process.execPath)}, ${yamlString(crash)}]`].join('\n'),
  );
  t.type(r.error, JobFailedError, r.error instanceof JobFailedError ? 'failed as a job (exit 1)' : r.stderr);
  t.ok(Date.now() - started < 20_000);
  t.match(JSON.stringify(r.summary), /"exit_code":9/);
  t.match(JSON.stringify(r.summary), new RegExp(h2.address.replace(/\./g, '\\.')));
  await new Promise((res) => setTimeout(res, 300));
  t.same(strayPids(h1), [], 'rank 0 on h1 was stopped');
  t.same(strayPids(h2), []);
});

t.test('a network cut of one host is a lost node: job torn down, exit 1, host named', async (t) => {
  const sleeper = join(scratch, 'sleeper.js');
  const marker = join(scratch, 'cut-ready');
  writeFileSync(
    sleeper,
    `require('fs').writeFileSync(${JSON.stringify(marker)} + process.env.RANK, ''); setInterval(() => {}, 1000);`,
  );
  let cutAt = 0;
  void (async () => {
    while (!existsSync(`${marker}0`) || !existsSync(`${marker}1`)) await new Promise((r) => setTimeout(r, 50));
    inHost(h2, ['ip', 'link', 'set', 'eth0', 'down']);
    cutAt = Date.now();
  })();
  t.teardown(() => inHost(h2, ['ip', 'link', 'set', 'eth0', 'up']));
  const r = await launch(
    'cut',
    [nodes([1, 1]), `entrypoint: [${yamlString(process.execPath)}, ${yamlString(sleeper)}]`].join('\n'),
  );
  t.type(r.error, JobFailedError, r.error instanceof JobFailedError ? 'failed as a job (exit 1)' : r.stderr);
  t.ok(
    cutAt > 0 && Date.now() - cutAt < 10_000,
    `torn down ${Date.now() - cutAt} ms after the cut (heartbeat.timeout 3s)`,
  );
  t.match(`${r.error?.message} ${JSON.stringify(r.summary)}`, new RegExp(h2.address.replace(/\./g, '\\.')));
  await new Promise((res) => setTimeout(res, 300));
  t.same(strayPids(h1), [], 'rank 0 on h1 was stopped');
  // h2 is still cut off: nothing reaches its agent, whose own heartbeats go unanswered for heartbeat.timeout.
  // (sshd's session process stays until TCP gives up: OpenSSH's ClientAliveInterval is off by default.)
  const left = () =>
    strayPids(h2)
      .map((p) => spawnSync('ps', ['-o', 'args=', '-p', String(p)], { encoding: 'utf8' }).stdout.trim())
      .filter((a) => a && !a.startsWith('sshd'));
  t.ok(
    await waitUntil(() => left().length === 0, 8000),
    `the agent and rank 1 on the cut host ended by themselves (left: ${left().join('; ')})`,
  );
});

t.test('a remote agent killed with SIGKILL is a lost node: exit 1 naming the host, its workers gone', async (t) => {
  const sleeper = join(scratch, 'sleeper-k.js');
  const marker = join(scratch, 'kill-ready');
  writeFileSync(
    sleeper,
    `require('fs').writeFileSync(${JSON.stringify(marker)} + process.env.RANK, ''); setInterval(() => {}, 1000);`,
  );
  const argsOf = (pid: number) =>
    spawnSync('ps', ['-o', 'args=', '-p', String(pid)], { encoding: 'utf8' }).stdout.trim();
  let killedAt = 0;
  void (async () => {
    while (!existsSync(`${marker}0`) || !existsSync(`${marker}1`)) await new Promise((r) => setTimeout(r, 50));
    const agent = strayPids(h2).find((pid) => /dtrain[ -]agent/.test(argsOf(pid)));
    if (agent) process.kill(agent, 'SIGKILL');
    killedAt = Date.now();
  })();
  const r = await launch(
    'agent-killed',
    [nodes([1, 1]), `entrypoint: [${yamlString(process.execPath)}, ${yamlString(sleeper)}]`].join('\n'),
  );
  t.type(r.error, JobFailedError, r.error instanceof JobFailedError ? 'failed as a job (exit 1)' : r.stderr);
  t.ok(killedAt > 0 && Date.now() - killedAt < 5000, `torn down ${Date.now() - killedAt} ms after the kill`);
  t.match(`${r.error?.message} ${JSON.stringify(r.summary)}`, new RegExp(h2.address.replace(/\./g, '\\.')));
  const left = (host: typeof h1) =>
    strayPids(host)
      .map(argsOf)
      .filter((a) => a && !a.startsWith('sshd'));
  t.ok(
    await waitUntil(() => left(h1).length === 0 && left(h2).length === 0, 5000),
    `nothing left (h1: ${left(h1).join('; ')}; h2: ${left(h2).join('; ')})`,
  );
});

t.test(
  'a host cut off while its agent starts: exit 3 naming it; its agent gives up on the store and ends',
  async (t) => {
    // The prelude runs once the launch header (sent with the controller's hello) has arrived: the cut then
    // comes after the hello reached the host and before the agent's answer can leave it.
    const marker = join(scratch, 'starting-');
    let cutAt = 0;
    const cutter = (async () => {
      while (!existsSync(`${marker}${h2.hostname}`)) await new Promise((r) => setTimeout(r, 20));
      inHost(h2, ['ip', 'link', 'set', 'eth0', 'down']);
      cutAt = Date.now();
    })();
    t.teardown(() => inHost(h2, ['ip', 'link', 'set', 'eth0', 'up']));
    const r = await launch(
      'cut-at-start',
      [nodes([1, 1]), 'entrypoint: [/bin/true]', 'rendezvous: {timeout: 4s}'].join('\n'),
      {},
      bed.known_hosts,
      [`  prelude: touch ${yamlString(marker)}"$(hostname)"; sleep 1`],
    );
    await cutter;
    t.type(r.error, StartError, r.error instanceof StartError ? 'could not start (exit 3)' : r.stderr);
    t.match(r.error?.message, new RegExp(h2.address.replace(/\./g, '\\.')), 'the cut host is named');
    const argsOf = (pid: number) =>
      spawnSync('ps', ['-o', 'args=', '-p', String(pid)], { encoding: 'utf8' }).stdout.trim();
    const agents = () =>
      strayPids(h2)
        .map(argsOf)
        .filter((a) => /dtrain[ -]agent/.test(a));
    t.ok(
      // the store's connection through the cut SSH link fails at its handshake timeout (10 s)
      await waitUntil(() => agents().length === 0, 20_000),
      `the agent on the cut host ended, ${Date.now() - cutAt} ms after the cut (left: ${agents().join('; ')})`,
    );
    t.same(strayPids(h1), [], 'nothing left on h1');
  },
);

t.test(
  'a remote worker that ignores SIGTERM, and its setsid grandchild, are SIGKILLed after shutdown_grace',
  async (t) => {
    const marker = join(scratch, 'stubborn-');
    const worker = join(scratch, 'stubborn.js');
    // rank 1 (on h2) ignores SIGTERM and leaves a grandchild in its own session that ignores it too
    writeFileSync(
      worker,
      `const fs = require('fs');
if (process.env.RANK === '0') setTimeout(() => process.exit(7), 500);
else {
  process.on('SIGTERM', () => fs.writeFileSync(${JSON.stringify(marker)} + 'term', ''));
  require('child_process').spawn('setsid', ['sh', '-c', 'trap "" TERM; exec sleep 313'], { stdio: 'ignore' });
  setInterval(() => {}, 1000);
}`,
    );
    let termAt = 0;
    void (async () => {
      while (!existsSync(`${marker}term`)) await new Promise((r) => setTimeout(r, 20));
      termAt = Date.now();
    })();
    const r = await launch(
      'stubborn',
      [nodes([1, 1]), `entrypoint: [${yamlString(process.execPath)}, ${yamlString(worker)}]`].join('\n'),
    );
    const ms = Date.now() - termAt;
    t.type(r.error, JobFailedError, r.error instanceof JobFailedError ? 'failed as a job (exit 1)' : r.stderr);
    t.match(r.error?.message, new RegExp(`rank 0 \\(host ${h1.address.replace(/\./g, '\\.')}.*exited with code 7`));
    t.ok(termAt > 0, 'rank 1 got SIGTERM');
    // shutdown_grace is 2s (launch() above); the SIGKILL is the remote agent's own
    t.ok(ms >= 1500 && ms < 6000, `the job ended ${ms} ms after rank 1 ignored SIGTERM`);
    const left = strayPids(h2)
      .map((p) => spawnSync('ps', ['-o', 'args=', '-p', String(p)], { encoding: 'utf8' }).stdout.trim())
      .filter((a) => a && !a.startsWith('sshd'));
    t.same(left, [], 'nothing left on h2: worker, grandchild (sleep 313) and agent gone');
    t.same(strayPids(h1), [], 'nothing left on h1');
  },
);

t.test('no secret in any argv while a job runs', async (t) => {
  const sleeper = join(scratch, 'argv.js');
  const marker = join(scratch, 'argv-ready');
  writeFileSync(
    sleeper,
    `require('fs').writeFileSync(${JSON.stringify(marker)} + process.env.RANK, ''); setTimeout(() => {}, 2500);`,
  );
  let ps = '';
  const watcher = (async () => {
    while (!existsSync(`${marker}0`) || !existsSync(`${marker}1`)) await new Promise((r) => setTimeout(r, 50));
    ps = execFileSync('ps', ['-eo', 'args'], { encoding: 'utf8' });
  })();
  const r = await launch(
    'argv',
    [nodes([1, 1]), `entrypoint: [${yamlString(process.execPath)}, ${yamlString(sleeper)}]`].join('\n'),
  );
  await watcher;
  t.equal(r.error?.message, undefined, r.error ? r.stderr : 'launched and finished');
  t.match(ps, /agent --stdio/, 'agents were running when ps looked');
  // The job key is random per run; what must never appear is any base64 32-byte blob or key-like flag.
  t.notMatch(ps, /[A-Za-z0-9+/]{43}=/, 'no 32-byte base64 value in any argv');
  t.notMatch(ps, /job[_-]?key|secret|token/i);
});

t.test('an unchanged PyTorch gloo DDP program across 2 hosts', async (t) => {
  if (spawnSync('/usr/bin/python3', ['-c', 'import torch']).status !== 0) {
    t.fail('/usr/bin/python3 cannot import torch');
    return;
  }
  const r = await launch(
    'ddp',
    [
      nodes([1, 1]),
      `entrypoint: [/usr/bin/python3, ${yamlString(join(repoRoot, 'test/fixtures/ssh/ddp_train.py'))}]`,
      'backend: cpu',
    ].join('\n'),
  );
  t.equal(r.error?.message, undefined, r.error ? r.stderr : 'launched and finished');
  const lines = r.stderr.split('\n').filter((l) => /rank=\d world=2/.test(l));
  t.equal(lines.length, 2, r.stderr);
  const params = lines.map((l) => l.split('params=')[1]);
  t.equal(params[0], params[1], 'identical parameters on both hosts');
  t.match(lines.join('\n'), new RegExp(`host=${h1.name}`));
  t.match(lines.join('\n'), new RegExp(`host=${h2.name}`));
});

t.test('pre-start failure on one host: exit 3 naming it, nothing left on the other', async (t) => {
  const kh = join(scratch, 'bad_known_hosts');
  // h2 is listed with h1's key: a changed host key.
  writeFileSync(kh, `${h1.address} ${h1.host_key}\n${h2.address} ${h1.host_key}\n`);
  const r = await launch('badkey', [nodes([1, 1]), 'entrypoint: [/bin/true]'].join('\n'), {}, kh);
  t.type(r.error, StartError, r.error instanceof StartError ? 'could not start (exit 3)' : r.stderr);
  t.match(r.error?.message, new RegExp(`^${h2.address.replace(/\./g, '\\.')}: HOST KEY CHANGED`));
  await new Promise((res) => setTimeout(res, 300));
  t.same(strayPids(h1), [], 'the agent on the good host is gone');
});

t.test(
  "the controller machine as node 0 plus an SSH host: gloo DDP meets at this machine's bridge address",
  async (t) => {
    const r = await launch(
      'mixed',
      [
        `nodes: [{host: "${bed.controller_address}", slots: 1}, {host: "${h2.address}", slots: 1}]`,
        `entrypoint: [/usr/bin/python3, ${yamlString(join(repoRoot, 'test/fixtures/ssh/ddp_train.py'))}]`,
        'backend: cpu',
      ].join('\n'),
    );
    t.equal(r.error?.message, undefined, r.error ? r.stderr : 'launched and finished');
    const lines = r.stderr.split('\n').filter((l) => /rank=\d world=2/.test(l));
    t.equal(lines.length, 2, r.stderr);
    t.equal(lines[0].split('params=')[1], lines[1].split('params=')[1], 'identical parameters');
    t.match(lines.join('\n'), new RegExp(`host=${h2.name}`));
  },
);

t.test('through the CLI: an unreachable node is exit 3 with one line naming it, and one JSON document', async (t) => {
  const hole = h1.address.replace(/\.\d+$/, '.97');
  const file = join(scratch, 'unreachable.yaml');
  writeFileSync(
    file,
    [
      'name: unreachable',
      `workdir: ${yamlString(scratch)}`,
      'entrypoint: [/bin/true]',
      `nodes: [{host: "${h1.address}"}, {host: "${hole}"}]`,
      `ssh: {user: root, identity_file: ${yamlString(bed.client_key)}, known_hosts: ` +
        `${yamlString(bed.known_hosts)}, remote_dtrain: ${yamlString(join(repoRoot, 'bin/dtrain'))}, ` +
        `connect_timeout: 2s}`,
    ].join('\n'),
  );
  const r = spawnSync(process.execPath, [join(repoRoot, 'bin/dtrain'), 'launch', file, '--json'], {
    encoding: 'utf8',
    timeout: 30_000,
  });
  t.equal(r.status, 3, r.stderr);
  const lines = r.stderr
    .trim()
    .split('\n')
    .filter((l) => l.startsWith('dtrain:'));
  t.match(
    lines[lines.length - 1],
    new RegExp(`^dtrain: ${hole.replace(/\./g, '\\.')}: (connection to .* timed out after 2s|no route to)`),
  );
  t.notMatch(r.stderr, /\n\s+at /, 'no stack trace');
  t.match(JSON.parse(r.stdout), { exit_code: 3 });
  await new Promise((res) => setTimeout(res, 300));
  t.same(strayPids(h1), [], 'the reachable host runs nothing');
});

t.test('dtrain bench with a config runs over the SSH hosts and measures the TCP path', async (t) => {
  const file = join(scratch, 'bench.yaml');
  writeFileSync(
    file,
    [
      'name: bench-ssh',
      `workdir: ${yamlString(scratch)}`,
      'entrypoint: [/bin/false]',
      `nodes: [{host: "${h1.address}", slots: 1}, {host: "${h2.address}", slots: 1}]`,
      `ssh: {user: root, identity_file: ${yamlString(bed.client_key)}, known_hosts: ` +
        `${yamlString(bed.known_hosts)}, remote_dtrain: ${yamlString(join(repoRoot, 'bin/dtrain'))}, ` +
        `connect_timeout: 5s}`,
      `logs: {dir: ${yamlString(join(scratch, 'logs'))}}`,
    ].join('\n'),
  );
  const r = spawnSync(
    process.execPath,
    [join(repoRoot, 'bin/dtrain'), 'bench', file, '--sizes', '4096,65536', '--iters', '10', '--json'],
    { encoding: 'utf8', timeout: 60_000 },
  );
  t.equal(r.status, 0, r.stderr);
  const doc = JSON.parse(r.stdout) as {
    ranks: number;
    nodes: number;
    rows: { bytes: number; transport: string; ranks: number }[];
  };
  t.match(doc, { ranks: 2, nodes: 2 });
  t.same(
    doc.rows.map((row) => [row.bytes, row.transport, row.ranks]),
    [
      [4096, 'tcp', 2],
      [65536, 'tcp', 2],
    ],
    'the entrypoint was replaced and ran on both hosts',
  );
  t.same([strayPids(h1), strayPids(h2)], [[], []], 'nothing left on either host');
});

t.test('controller SIGKILLed mid-job: every remote agent sees its channel close and kills its workers', async (t) => {
  const marker = join(scratch, 'orphan-ready');
  const worker = join(scratch, 'orphan.js');
  writeFileSync(
    worker,
    `require('fs').writeFileSync(${JSON.stringify(marker)} + process.env.RANK, ''); setInterval(() => {}, 1000);`,
  );
  const file = join(scratch, 'orphan.yaml');
  writeFileSync(
    file,
    [
      'name: orphan',
      `workdir: ${yamlString(scratch)}`,
      `entrypoint: [${yamlString(process.execPath)}, ${yamlString(worker)}]`,
      `nodes: [{host: "${h1.address}", slots: 1}, {host: "${h2.address}", slots: 1}]`,
      `logs: {dir: ${yamlString(join(scratch, 'logs'))}}`,
      `ssh: {user: root, identity_file: ${yamlString(bed.client_key)}, known_hosts: ` +
        `${yamlString(bed.known_hosts)}, remote_dtrain: ${yamlString(join(repoRoot, 'bin/dtrain'))}}`,
    ].join('\n'),
  );
  const controller = spawn(process.execPath, [join(repoRoot, 'bin/dtrain'), 'launch', file], { stdio: 'ignore' });
  for (let i = 0; i < 200 && !(existsSync(`${marker}0`) && existsSync(`${marker}1`)); i++)
    await new Promise((r) => setTimeout(r, 50));
  t.ok(existsSync(`${marker}0`) && existsSync(`${marker}1`), 'both workers started');
  controller.kill('SIGKILL');
  let left: number[] = [];
  for (let i = 0; i < 50; i++) {
    left = [...strayPids(h1), ...strayPids(h2)];
    if (left.length === 0) break;
    await new Promise((r) => setTimeout(r, 100));
  }
  t.same(left, [], 'no agent or worker left on either host');
});
