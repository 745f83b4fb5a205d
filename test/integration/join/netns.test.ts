/**
 * Join mode across real hosts (network namespaces with their own addresses and hostnames, from
 * scripts/testbed/netns-hosts.sh): the controller on this machine, an agent started in each host with
 * nothing but `dtrain agent --join <controller>:<port> --secret-file F`. The agents name themselves by
 * their hostnames; MASTER_ADDR must be node 0's address as the other host reaches it (PyTorch's gloo
 * connects there).
 */
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t from 'tap';
import { freePort } from '../../../src/launch/ports.js';
import { inHost, repoRoot, skipReason, strayPids, testbedUp, type TestbedHost } from '../../helpers/ssh-testbed.js';
import { startDtrain } from '../../helpers/launch.js';

const skip =
  skipReason() ?? (existsSync(join(repoRoot, 'dist/cli/main.js')) ? undefined : 'needs a built dist/ (npx tsc -p .)');
if (skip && !process.env.DTRAIN_REQUIRE_INTEGRATION) {
  t.plan(0, skip);
  process.exit(0);
}

const bed = testbedUp(2, 'tj');
t.teardown(() => bed.down());
const [h1, h2] = bed.hosts as [TestbedHost, TestbedHost];
const scratch = mkdtempSync(join(tmpdir(), 'dtrain-join-netns-'));
t.teardown(() => rmSync(scratch, { recursive: true, force: true }));
const secret = join(scratch, 'secret');
writeFileSync(secret, randomBytes(32).toString('hex'), { mode: 0o600 });

/** `dtrain agent --join` inside a host, under that host's hostname. */
function joinFrom(host: TestbedHost, port: number) {
  const child = spawn(
    'ip',
    [
      'netns',
      'exec',
      host.namespace,
      'unshare',
      '--uts',
      'sh',
      '-c',
      `hostname ${host.name} && exec "$0" "$@"`,
      process.execPath,
      join(repoRoot, 'bin/dtrain'),
      'agent',
      '--join',
      `${bed.controller_address}:${port}`,
      '--secret-file',
      secret,
    ],
    { stdio: ['ignore', 'ignore', 'pipe'] },
  );
  let stderr = '';
  child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
  return new Promise<{ code: number | null; stderr: string }>((resolve) =>
    child.on('close', (code) => resolve({ code, stderr })),
  );
}

async function joinedJob(name: string, entrypoint: string) {
  const port = await freePort();
  const cfg = join(scratch, `${name}.yaml`);
  // node 0 is h2: listed order, whichever agent joins first
  writeFileSync(
    cfg,
    [
      `name: ${name}`,
      `workdir: ${scratch}`,
      `entrypoint: ${entrypoint}`,
      'nproc_per_node: 1',
      `nodes: [{host: ${h2.name}}, {host: ${h1.name}}]`,
      'heartbeat: {interval: 500ms, timeout: 5s}',
    ].join('\n') + '\n',
  );
  const ctl = startDtrain(
    ['launch', cfg, '--join-agents', '2', '--secret-file', secret, '--set', `rendezvous.port=${port}`, '--json'],
    { cwd: scratch },
  );
  const [c, a1, a2] = await Promise.all([ctl.done, joinFrom(h1, port), joinFrom(h2, port)]);
  return { c, a1, a2 };
}

t.test(
  'two hosts join: node ranks by the listed hostnames, MASTER_ADDR is node 0 as the other host reaches it',
  async (t) => {
    const { c, a1, a2 } = await joinedJob('probe', `node ${join(repoRoot, 'test/fixtures/join/env-probe.mjs')}`);
    t.equal(c.code, 0, c.stderr);
    t.equal(a1.code, 0, a1.stderr);
    t.equal(a2.code, 0, a2.stderr);
    const envs = c.stderr
      .split('\n')
      .filter((l) => l.includes('ENV '))
      .map((l) => JSON.parse(l.slice(l.indexOf('ENV ') + 4)) as Record<string, string>);
    t.equal(envs.length, 2, c.stderr);
    const byRank = new Map(envs.map((e) => [e.RANK, e]));
    // dtrain's own all-reduce crossed the hosts over TCP (one rank per node: no shared memory between them)
    t.match(byRank.get('0'), {
      HOST_NAME: h2.name,
      GROUP_RANK: '0',
      MASTER_ADDR: h2.address,
      SUM: '3',
      TRANSPORT: 'tcp',
    });
    t.match(byRank.get('1'), {
      HOST_NAME: h1.name,
      GROUP_RANK: '1',
      MASTER_ADDR: h2.address,
      SUM: '3',
      TRANSPORT: 'tcp',
    });
  },
);

t.test(
  'PyTorch DDP (gloo, env://) across the joined hosts',
  { skip: existsSync('/usr/bin/python3') ? false : 'needs /usr/bin/python3 with torch' },
  async (t) => {
    const { c } = await joinedJob('ddp', `/usr/bin/python3 ${join(repoRoot, 'test/fixtures/ssh/ddp_train.py')}`);
    t.equal(c.code, 0, c.stderr);
    const lines = c.stderr
      .split('\n')
      .filter((l) => l.includes('rank='))
      .map((l) => l.slice(l.indexOf('rank=')));
    lines.sort();
    t.match(lines[0], new RegExp(`^rank=0 world=2 host=${h2.name} params=`));
    t.match(lines[1], new RegExp(`^rank=1 world=2 host=${h1.name} params=`));
    t.equal(
      lines[0].split('params=')[1],
      lines[1].split('params=')[1],
      'DDP kept the parameters identical across hosts',
    );
  },
);

t.test('a joined host cut off mid-job: exit 1 naming it; its agent stops its worker and exits 1', async (t) => {
  const marker = join(scratch, 'cut-ready-');
  const worker = join(scratch, 'cut-worker.js');
  writeFileSync(
    worker,
    `require('fs').writeFileSync(${JSON.stringify(marker)} + process.env.RANK, ''); setInterval(() => {}, 1000);`,
  );
  let cutAt = 0;
  void (async () => {
    while (!existsSync(`${marker}0`) || !existsSync(`${marker}1`)) await new Promise((r) => setTimeout(r, 50));
    inHost(h1, ['ip', 'link', 'set', 'eth0', 'down']);
    cutAt = Date.now();
  })();
  t.teardown(() => inHost(h1, ['ip', 'link', 'set', 'eth0', 'up']));
  const { c, a1 } = await joinedJob('cut', `${process.execPath} ${worker}`);
  const ended = Date.now() - cutAt;
  t.equal(c.code, 1, c.stderr);
  t.ok(cutAt > 0 && ended < 12_000, `the controller ended ${ended} ms after the cut (heartbeat.timeout 5s)`);
  t.match(
    c.stderr,
    new RegExp(`^dtrain: job cut-\\S+ failed on ${h1.name}: node lost`, 'm'),
    'one line names the host',
  );
  t.equal(a1.code, 1, `the cut host's agent saw its controller go silent: ${a1.stderr}`);
  t.same(strayPids(h1), [], 'nothing left on the cut host');
  t.same(strayPids(h2), [], 'nothing left on the other host');
});
