/**
 * Elastic membership on real sshd hosts (network namespaces), through the CLI: `dtrain launch --json` over SSH,
 * a short heartbeat.timeout, and nodes lost the ways hosts go away - a link cut (`ip link set eth0 down` in the
 * host's namespace), the agent SIGKILLed, sshd stopped as well, two hosts at once, a host lost while the job
 * starts. Each test asserts what the job did (exit code, the `dtrain: node N (host X) lost: ...` line, the
 * --json membership list, the world each worker saw) and that nothing of the run is left on any host.
 *
 * One testbed for the file. Adding a test: `launch()` a job on `hosts`, lose nodes with `cutLink()` (restored at
 * the test's end), `killAgent()` or `stopSshd()` (for good: keep it the last test that needs its host), then
 * `nothingLeft()`. The workers' records (test/fixtures/ssh/elastic-node.mjs) are per attempt and rank. A test
 * where a host comes back (grow back, rejoin, flapping) calls `restoreLink()` mid-test and goes before the tests
 * that stop h2's sshd.
 */
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t, { type Test } from 'tap';
import { startDtrain, waitFor, type Run } from '../../helpers/launch.js';
import { inHost, repoRoot, skipReason, strayPids, testbedUp, type TestbedHost } from '../../helpers/ssh-testbed.js';

const skip =
  skipReason() ??
  (existsSync(join(repoRoot, 'dist/cli/main.js')) && existsSync(join(repoRoot, 'build/Release/dtrain_native.node'))
    ? undefined
    : 'needs a built dist/ and addon (npm run build)');
if (skip && !process.env.DTRAIN_REQUIRE_INTEGRATION) {
  t.plan(0, skip);
  process.exit(0);
}

const HEARTBEAT_TIMEOUT_S = 3;
const bed = testbedUp(4, 'te');
t.teardown(() => bed.down());
const hosts = bed.hosts;
const scratch = mkdtempSync(join(tmpdir(), 'dtrain-ssh-elastic-'));
t.teardown(() => rmSync(scratch, { recursive: true, force: true }));
const nodeWorker = join(repoRoot, 'test/fixtures/ssh/elastic-node.mjs');
const re = (s: string) => s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');

interface Node {
  host: TestbedHost;
  spare?: boolean;
}

interface WorkerRecord {
  rank: number;
  world: number;
  data: number;
  node_rank: number;
  prev: number;
  restarts: number;
  master: string;
  host: string;
  pid: number;
  agent: number;
  committed?: string;
  latest?: { step: number | null; attempt: number | null };
}

interface Summary {
  run_id: string;
  exit_code: number;
  membership: { attempt: number; nodes: number; world: number; reason: string; detected_after_s: number }[];
  root_cause?: { rank?: number; message?: string } | null;
}

interface Job {
  dir: string;
  run: Run;
  /** the launcher's stderr lines as they came, with the time each arrived */
  lines: { at: number; text: string }[];
  rec(attempt: number, rank: number): WorkerRecord | undefined;
  /** resolves with the first line matching (that came at or after `after`), and when it came */
  line(pattern: RegExp, after?: number): Promise<{ at: number; text: string }>;
}

/** `dtrain launch --json` of a job on `nodes` (1 slot each), elastic unless `extra` says otherwise. */
function launch(
  t: Test,
  name: string,
  nodes: Node[],
  opts: { entrypoint?: string[]; extra?: string[]; env?: Record<string, string>; ssh?: string[] } = {},
): Job {
  const dir = join(scratch, name);
  mkdirSync(dir);
  const file = join(dir, 'job.yaml');
  const q = JSON.stringify;
  writeFileSync(
    file,
    [
      `name: ${name}`,
      `workdir: ${q(dir)}`,
      `entrypoint: ${q(opts.entrypoint ?? [process.execPath, nodeWorker, dir, join(repoRoot, 'dist')])}`,
      'nodes:',
      ...nodes.map((n) => `  - {host: ${q(n.host.address)}, slots: 1${n.spare ? ', spare: true' : ''}}`),
      'nproc_per_node: 1',
      'backend: cpu',
      'ssh:',
      '  user: root',
      `  identity_file: ${q(bed.client_key)}`,
      `  known_hosts: ${q(bed.known_hosts)}`,
      `  remote_dtrain: ${q(join(repoRoot, 'bin/dtrain'))}`,
      '  connect_timeout: 3s',
      ...(opts.ssh ?? []),
      `heartbeat: {interval: 500ms, timeout: ${HEARTBEAT_TIMEOUT_S}s}`,
      'shutdown_grace: 2s',
      `logs: {dir: ${q(join(dir, 'logs'))}}`,
      // the workers' environment: the agents on the hosts do not inherit this process's
      `env: ${q({ OMP_NUM_THREADS: '1', ...opts.env })}`,
      ...(opts.extra ?? ['elastic: {min_nodes: 2}']),
    ].join('\n') + '\n',
  );
  const run = startDtrain(['launch', '--json', file], { cwd: dir });
  t.teardown(() => run.child.kill('SIGKILL'));
  const lines: Job['lines'] = [];
  const waiters: { pattern: RegExp; after: number; resolve: (l: { at: number; text: string }) => void }[] = [];
  let partial = '';
  run.child.stderr!.on('data', (b: Buffer) => {
    const parts = (partial + b.toString()).split('\n');
    partial = parts.pop()!;
    for (const text of parts) {
      const l = { at: Date.now(), text };
      if (process.env.NETNS_DEBUG) process.stderr.write(`[${name}] ${text}\n`);
      lines.push(l);
      for (const w of waiters.filter((x) => x.pattern.test(text) && l.at >= x.after)) {
        waiters.splice(waiters.indexOf(w), 1);
        w.resolve(l);
      }
    }
  });
  const rec = (attempt: number, rank: number): WorkerRecord | undefined => {
    const f = join(dir, `a${attempt}-r${rank}.json`);
    return existsSync(f) ? (JSON.parse(readFileSync(f, 'utf8')) as WorkerRecord) : undefined;
  };
  // when the job ends first: a line that matches nothing, at NaN
  const line = (pattern: RegExp, after = 0) =>
    Promise.race([
      new Promise<{ at: number; text: string }>((resolve) => {
        const seen = lines.find((l) => l.at >= after && pattern.test(l.text));
        if (seen) resolve(seen);
        else waiters.push({ pattern, after, resolve });
      }),
      run.done.then(() => ({ at: NaN, text: `(the job ended before a line matched ${pattern})` })),
    ]);
  return { dir, run, lines, rec, line };
}

/** The job's end: its exit code checked (the launcher's stderr shown only when it is not the one expected). */
async function finished(
  t: Test,
  job: Job,
  code = 0,
): Promise<{ code: number | null; stderr: string; summary: Summary }> {
  const done = await job.run.done;
  t.equal(done.code, code, `exit ${code}${done.code === code ? '' : `:\n${done.stderr.slice(-3000)}`}`);
  let summary: Summary;
  try {
    summary = JSON.parse(done.stdout) as Summary;
  } catch {
    t.fail(`no JSON summary on stdout: ${done.stdout}\n${done.stderr.slice(-3000)}`);
    summary = { run_id: '', exit_code: -1, membership: [] };
  }
  return { code: done.code, stderr: done.stderr, summary };
}

/** Cuts the host off the bridge; the link comes back at the end of the test (or sooner with restoreLink). */
function cutLink(t: Test, host: TestbedHost): number {
  inHost(host, ['ip', 'link', 'set', 'eth0', 'down']);
  t.teardown(() => restoreLink(host));
  return Date.now();
}

function restoreLink(host: TestbedHost): void {
  inHost(host, ['ip', 'link', 'set', 'eth0', 'up']);
}

function pidsIn(host: TestbedHost): number[] {
  const r = spawnSync('ip', ['netns', 'pids', host.namespace], { encoding: 'utf8' });
  return r.stdout.split('\n').filter(Boolean).map(Number);
}

const argsOf = (pid: number) => spawnSync('ps', ['-o', 'args=', '-p', String(pid)], { encoding: 'utf8' }).stdout.trim();

function agentPid(host: TestbedHost): number | undefined {
  return strayPids(host).find((pid) => /dtrain[ -]agent|agent --stdio/.test(argsOf(pid)));
}

function killAgent(host: TestbedHost): number {
  const pid = agentPid(host);
  if (pid === undefined) throw new Error(`no agent running on ${host.name}`);
  process.kill(pid, 'SIGKILL');
  return Date.now();
}

/** Stops the host's sshd for good: nothing can start an agent there again. */
function stopSshd(host: TestbedHost): void {
  const file = (host as TestbedHost & { sshd_pid_file: string }).sshd_pid_file;
  process.kill(Number(readFileSync(file, 'utf8').trim()), 'SIGTERM');
}

/**
 * What of the run is still there: any process in a host's namespace but sshd's own (a cut host's session
 * process lingers until TCP gives up), and any process on this machine whose environment names the run.
 */
function leftovers(runId: string): string[] {
  const left: string[] = [];
  for (const h of hosts)
    for (const pid of strayPids(h)) {
      const args = argsOf(pid);
      if (args && !args.startsWith('sshd')) left.push(`${h.name}: ${pid} ${args}`);
    }
  if (runId)
    for (const entry of readdirSync('/proc')) {
      if (!/^\d+$/.test(entry)) continue;
      let environ = '';
      try {
        environ = readFileSync(`/proc/${entry}/environ`, 'latin1');
      } catch {
        continue;
      }
      if (environ.split('\0').includes(`DTRAIN_RUN_ID=${runId}`)) left.push(`pid ${entry} ${argsOf(Number(entry))}`);
    }
  return left;
}

async function nothingLeft(t: Test, runId: string, cut: TestbedHost[] = []): Promise<void> {
  for (const h of cut) restoreLink(h);
  let left: string[] = [];
  const ok = await waitFor(() => (left = leftovers(runId)).length === 0, 10_000);
  const run = runId ? `run ${runId}` : 'the job';
  t.ok(ok, `nothing of ${run} left on any host${ok ? '' : `: ${left.join('; ')}`}`);
}

function lostLine(node: number, host: TestbedHost, why: string, nodes: number, world: number, attempt = 1): RegExp {
  return new RegExp(
    `dtrain: node ${node} \\(host ${re(host.address)}\\) lost: ${why}; continuing on ${nodes} nodes, ` +
      `world ${world} \\(data ${world}\\), attempt ${attempt}\\n`,
  );
}

/** A cut host is lost by whichever notices first: the heartbeats or the SSH connection's keepalives. */
// (the silence is rounded to the second when it is noticed: heartbeat.timeout or a little more)
const cutOff = '(no heartbeat for \\d+s|\\S+: SSH keepalives unanswered)';
const allRecorded = (job: Job, attempt: number, world: number) =>
  waitFor(() => [...Array(world).keys()].every((r) => job.rec(attempt, r)), 30_000);

t.test(
  'a link cut mid-run: the trainer shrinks, resumes from the last commit, ends with the same eval_loss',
  async (t) => {
    const trainer = (dir: string) => [
      process.execPath,
      join(repoRoot, 'scripts/examples/train.js'),
      ...['--steps', '80', '--global-batch', '96', '--train-samples', '12288', '--log-every', '1'],
      ...['--checkpoint-dir', dir, '--checkpoint-every', '10'],
    ];
    const three = hosts.slice(0, 3).map((host) => ({ host }));
    const extra = (dir: string) => [
      'elastic: {min_nodes: 2}',
      `checkpoint: {dir: ${JSON.stringify(dir)}}`,
      'parallelism: {data: 3, pipeline: 1, microbatches: 4}',
    ];
    const refCkpt = join(scratch, 'ckpt-reference');
    const ref = launch(t, 'train-reference', three, { entrypoint: trainer(refCkpt), extra: extra(refCkpt) });
    const refDone = await finished(t, ref);
    const refLoss = Number(/eval_loss (\S+)/.exec(refDone.stderr)?.[1]);

    const ckpt = join(scratch, 'ckpt-cut');
    const job = launch(t, 'train-cut', three, { entrypoint: trainer(ckpt), extra: extra(ckpt) });
    const stepOf = (l: { text: string }) => Number(/step (\d+) loss/.exec(l.text)?.[1]);
    await job.line(/step (1[2-9]|[2-7]\d) loss/);
    const cutAt = cutLink(t, hosts[2]);
    const resumed = await job.line(/resumed from step \d+/);
    // the last step attempt 0 trained: lines still on their way at the cut count too
    const lastBefore = Math.max(
      ...job.lines.filter((l) => l.at < resumed.at && /step \d+ loss/.test(l.text)).map(stepOf),
    );
    const firstStep = await job.line(/step \d+ loss/, resumed.at);
    const done = await finished(t, job);
    t.match(done.stderr, lostLine(2, hosts[2], cutOff, 2, 2));
    t.match(done.summary.membership, [{ attempt: 1, nodes: 2, world: 2, reason: /^node 2 .* lost: / }]);
    const from = Number(/resumed from step (\d+) \(the job's last commit, world 2\)/.exec(resumed.text)?.[1]);
    t.ok(from > 0 && from % 10 === 0, `resumed from the commit of step ${from} on world 2`);
    t.ok(
      lastBefore - from >= 0 && lastBefore - from <= 10,
      `steps recomputed: ${lastBefore - from} (attempt 0 reached step ${lastBefore}), at most the checkpoint interval`,
    );
    const loss = Number(/eval_loss (\S+)/.exec(done.stderr)?.[1]);
    t.ok(Math.abs(loss - refLoss) <= 1e-3, `eval_loss ${loss}, uninterrupted ${refLoss}`);
    const s = (firstStep.at - cutAt) / 1000;
    t.comment(`membership: ${JSON.stringify(done.summary.membership)}`);
    t.comment(`link cut -> first resumed training step: ${s.toFixed(1)} s (heartbeat.timeout ${HEARTBEAT_TIMEOUT_S}s)`);
    t.ok(
      s <= HEARTBEAT_TIMEOUT_S + 10,
      `first step after the resume ${s.toFixed(1)} s after the cut (${firstStep.text})`,
    );
    await nothingLeft(t, refDone.summary.run_id);
    await nothingLeft(t, done.summary.run_id, [hosts[2]]);
  },
);

t.test('an agent SIGKILLed: node lost, world shrinks; the ended attempt cannot commit any more', async (t) => {
  const job = launch(
    t,
    'agent-kill',
    hosts.slice(0, 3).map((host) => ({ host })),
    { env: { STALE_COMMIT: '1' } },
  );
  t.ok(await allRecorded(job, 0, 3), 'attempt 0 runs on 3 hosts');
  t.equal(job.rec(0, 0)?.committed, 'committed', 'attempt 0 commits step 5');
  killAgent(hosts[1]);
  const done = await finished(t, job);
  t.match(done.stderr, lostLine(1, hosts[1], '.*', 2, 2));
  t.match(done.summary.membership, [{ attempt: 1, nodes: 2, world: 2 }]);
  t.match(job.rec(1, 0), { world: 2, prev: 3, restarts: 0, host: hosts[0].name });
  t.match(job.rec(1, 1), { world: 2, prev: 3, node_rank: 1, host: hosts[2].name });
  t.notOk(job.rec(1, 2), 'no rank 2 in attempt 1');
  // the survivors of attempt 0, stopped for the loss, try to commit as attempt 0: refused, the record stays
  for (const rank of [0, 2]) {
    const f = join(job.dir, `stale-r${rank}.json`);
    const answer = existsSync(f) ? (JSON.parse(readFileSync(f, 'utf8')) as { kind: string; why: string }) : undefined;
    t.match(answer, { kind: 'refused', why: /attempt 0 has ended|attempt 1 is running, not 0/ }, `rank ${rank}`);
  }
  t.match(job.rec(1, 0)?.latest, { step: 5, attempt: 0 }, 'attempt 1 resumes from step 5, not 999');
  await nothingLeft(t, done.summary.run_id);
});

t.test('node 0 cut off: MASTER_ADDR moves to the first node kept', async (t) => {
  const job = launch(
    t,
    'node0-cut',
    hosts.slice(0, 3).map((host) => ({ host })),
  );
  t.ok(await allRecorded(job, 0, 3), 'attempt 0 runs on 3 hosts');
  t.equal(job.rec(0, 1)?.master, hosts[0].address);
  cutLink(t, hosts[0]);
  const done = await finished(t, job);
  t.match(done.stderr, lostLine(0, hosts[0], cutOff, 2, 2));
  t.match(job.rec(1, 0), { node_rank: 0, world: 2, host: hosts[1].name, master: hosts[1].address });
  t.match(job.rec(1, 1), { node_rank: 1, world: 2, host: hosts[2].name, master: hosts[1].address });
  await nothingLeft(t, done.summary.run_id, [hosts[0]]);
});

t.test('a spare takes the lost node its place: world unchanged', async (t) => {
  const job = launch(t, 'spare', [{ host: hosts[0] }, { host: hosts[1] }, { host: hosts[3], spare: true }]);
  t.ok(await allRecorded(job, 0, 2), 'attempt 0 runs on the 2 listed hosts');
  t.same(
    strayPids(hosts[3])
      .map(argsOf)
      .filter((a) => !a.startsWith('sshd')),
    [],
    'nothing runs on the spare yet',
  );
  killAgent(hosts[1]);
  const done = await finished(t, job);
  t.match(done.stderr, lostLine(1, hosts[1], '.*', 2, 2));
  t.match(job.rec(1, 0), { world: 2, prev: 2, host: hosts[0].name });
  t.match(job.rec(1, 1), { world: 2, prev: 2, node_rank: 1, host: hosts[3].name });
  await nothingLeft(t, done.summary.run_id);
});

t.test('two hosts cut at once: one membership change, both named', async (t) => {
  const job = launch(
    t,
    'two-cut',
    hosts.map((host) => ({ host })),
  );
  t.ok(await allRecorded(job, 0, 4), 'attempt 0 runs on 4 hosts');
  cutLink(t, hosts[2]);
  cutLink(t, hosts[3]);
  const done = await finished(t, job);
  const change = done.stderr.split('\n').filter((l) => l.startsWith('dtrain: node '));
  t.equal(change.length, 1, 'one line for the change');
  for (const [node, host] of [[2, hosts[2]] as const, [3, hosts[3]] as const]) {
    const lost = new RegExp(`node ${node} \\(host ${re(host.address)}\\) lost: ${cutOff}(;|$)`);
    t.match(change[0], lost, `the line names node ${node}`);
    t.match(done.summary.membership[0]?.reason, lost, `the --json entry names node ${node}`);
  }
  t.match(change[0], /; continuing on 2 nodes, world 2 \(data 2\), attempt 1$/);
  t.match(job.rec(1, 0), { world: 2, prev: 4, host: hosts[0].name });
  t.match(job.rec(1, 1), { world: 2, prev: 4, host: hosts[1].name });
  t.notOk(job.rec(2, 0), 'no third attempt: both losses are one change');
  t.equal(done.summary.membership.length, 1, JSON.stringify(done.summary.membership));
  await nothingLeft(t, done.summary.run_id, [hosts[2], hosts[3]]);
});

t.test('fewer than min_nodes left: exit 1 saying why', async (t) => {
  const job = launch(
    t,
    'min-nodes',
    hosts.slice(0, 3).map((host) => ({ host })),
    { extra: ['elastic: {min_nodes: 3}'] },
  );
  t.ok(await allRecorded(job, 0, 3), 'attempt 0 runs on 3 hosts');
  killAgent(hosts[2]);
  const done = await finished(t, job, 1);
  t.match(done.stderr, /failed: cannot continue: 2 nodes alive, fewer than elastic\.min_nodes \(3\)/);
  t.notOk(job.rec(1, 0), 'no attempt 1');
  await nothingLeft(t, done.summary.run_id);
});

t.test(
  'a host cut off while the world meets (before init() returns anywhere): the job goes on without it',
  async (t) => {
    let cutAt = 0;
    // cut as soon as the host's worker process exists: the ranks' rendezvous cannot have completed then
    const watcher = (async () => {
      const started = () =>
        pidsIn(hosts[2]).some((pid) => {
          try {
            return readFileSync(`/proc/${pid}/cmdline`, 'utf8').includes('elastic-node.mjs');
          } catch {
            return false;
          }
        });
      if (await waitFor(started, 30_000)) cutAt = cutLink(t, hosts[2]);
    })();
    const job = launch(
      t,
      'rendezvous-cut',
      hosts.slice(0, 3).map((host) => ({ host })),
      { env: { INIT: '1' } },
    );
    await watcher;
    t.ok(cutAt > 0, "cut once the host's worker started");
    const done = await finished(t, job);
    t.match(done.stderr, lostLine(2, hosts[2], cutOff, 2, 2));
    t.same(
      [0, 1, 2].filter((r) => job.rec(0, r)),
      [],
      "no rank of attempt 0 got through init(): the host's loss ended it",
    );
    t.match(job.rec(1, 0), { world: 2, host: hosts[0].name });
    t.match(job.rec(1, 1), { world: 2, host: hosts[1].name });
    await nothingLeft(t, done.summary.run_id, [hosts[2]]);
  },
);

t.test('a worker SIGKILLed (the OOM killer) is a failure counted by restarts.max, not a lost node', async (t) => {
  const job = launch(
    t,
    'oom',
    hosts.slice(0, 3).map((host) => ({ host })),
    { extra: ['elastic: {min_nodes: 2}', 'restarts: {max: 1, backoff: 1s}'], env: { SELF_KILL_RANK: '1' } },
  );
  const done = await finished(t, job);
  t.match(done.stderr, /rank 1 .*killed by SIGKILL/);
  t.notMatch(done.stderr, /lost/);
  t.same(done.summary.membership, [], 'no membership change');
  t.match(job.rec(1, 1), { world: 3, restarts: 1, host: hosts[1].name }, 'restarted on the same 3 hosts');
  await nothingLeft(t, done.summary.run_id);

  const again = launch(
    t,
    'oom-no-restart',
    hosts.slice(0, 3).map((host) => ({ host })),
    { env: { SELF_KILL_RANK: '1' } },
  );
  const failed = await finished(t, again, 1);
  t.equal(failed.summary.root_cause?.rank, 1);
  t.same(failed.summary.membership, []);
  await nothingLeft(t, failed.summary.run_id);
});

t.test('a host cut off before its agent answered: the job starts on the others, the host lost', async (t) => {
  let cutAt = 0;
  // ssh.prelude holds every agent's start for 2 s: the cut lands while h1's remote shell runs it
  const watcher = (async () => {
    const preluding = () => pidsIn(hosts[1]).some((pid) => /^sleep 2$/.test(argsOf(pid)));
    if (await waitFor(preluding, 30_000)) cutAt = cutLink(t, hosts[1]);
  })();
  const job = launch(
    t,
    'start-cut',
    hosts.slice(0, 3).map((host) => ({ host })),
    { ssh: ['  prelude: sleep 2'], env: { HOLD_ATTEMPTS: '0' } },
  );
  await watcher;
  t.ok(cutAt > 0, 'cut while the prelude ran');
  const done = await finished(t, job);
  t.match(
    done.stderr,
    // what the start saw (the connection closed), or the retry of that node alone (its connect timed out)
    lostLine(1, hosts[1], `could not start: ${re(hosts[1].address)}: .*`, 2, 2, 0),
    'one line names the host, says why, and the world the job starts with',
  );
  t.notMatch(done.stderr, /killed by/, 'nothing was killed');
  t.match(done.summary.membership, [{ attempt: 0, nodes: 2, world: 2, reason: /^node 1 .* could not start/ }]);
  t.match(job.rec(0, 0), { world: 2, host: hosts[0].name });
  t.match(job.rec(0, 1), { world: 2, host: hosts[2].name });
  await nothingLeft(t, done.summary.run_id, [hosts[1]]);
});

t.test(
  'a cut host back in reach joins at the next commit; lost again, it is excluded (max_losses_per_node)',
  async (t) => {
    const three = hosts.slice(0, 3).map((host) => ({ host }));
    const job = launch(t, 'grow-flap', three, {
      entrypoint: [
        process.execPath,
        join(repoRoot, 'test/fixtures/launch/grow-worker.mjs'),
        join(scratch, 'grow-flap'),
      ],
      extra: ['elastic: {min_nodes: 2, rejoin: 1s, max_losses_per_node: 2}'],
      // ends in attempt 3 (after the second loss) at world 2
      env: { COMMIT_EVERY: '5', FULL_WORLD: '2', END_ATTEMPT: '3' },
    });
    t.ok(await allRecorded(job, 0, 3), 'attempt 0 runs on 3 hosts');
    const h2 = hosts[2];
    cutLink(t, h2);
    // job.line matches one line at a time, without its newline
    const lost = new RegExp(lostLine(2, h2, cutOff, 2, 2).source.replace(/\\n$/, '$'));
    t.ok(!Number.isNaN((await job.line(lost)).at), 'lost, attempt 1 on 2 hosts');
    restoreLink(h2);
    const back = await job.line(
      new RegExp(`^dtrain: node 2 \\(host ${re(h2.address)}\\) is back: the job grows at its next`),
    );
    t.ok(!Number.isNaN(back.at), 'tried again and found (elastic.rejoin)');
    const grown = await job.line(
      new RegExp(
        `^dtrain: node 2 \\(host ${re(h2.address)}\\) rejoined; ` +
          'continuing on 3 nodes, world 3 \\(data 3\\), attempt 2$',
      ),
    );
    t.ok(!Number.isNaN(grown.at), 'attempt 2 runs on 3 hosts again');
    t.ok(await allRecorded(job, 2, 3), 'every rank of attempt 2 started');
    const logs = join(scratch, 'grow-flap', 'logs');
    const said = () => {
      for (const run of existsSync(logs) ? readdirSync(logs) : []) {
        const f = join(logs, run, 'attempt_1', 'rank_0.err');
        const m = existsSync(f) ? /step (\d+) committed; the job resizes/.exec(readFileSync(f, 'utf8')) : null;
        if (m) return Number(m[1]);
      }
      return undefined;
    };
    const resizedAt = said();
    t.ok(resizedAt !== undefined && resizedAt > 0, `attempt 1 left at its commit of step ${resizedAt}`);
    const a2 = [0, 1, 2].map((r) => job.rec(2, r) as unknown as { world: number; prev: number; resumed: number });
    t.ok(
      a2.every((r) => r.world === 3 && r.prev === 2 && r.resumed === resizedAt),
      'attempt 2 resumes at world 3 from that commit: no step lost',
    );
    cutLink(t, h2);
    const excluded = await job.line(
      new RegExp(`^dtrain: node 2 \\(host ${re(h2.address)}\\) excluded for the rest of the job: lost 2 times`),
    );
    t.ok(!Number.isNaN(excluded.at), 'the second loss excludes it');
    restoreLink(h2);
    const done = await finished(t, job);
    const after = done.stderr.slice(done.stderr.indexOf('excluded for the rest'));
    t.notMatch(after, /is back/, 'never tried again');
    t.match(done.summary.membership, [
      { attempt: 1, world: 2 },
      { attempt: 2, world: 3, reason: `node 2 (host ${h2.address}) rejoined` },
      { attempt: 3, world: 2 },
    ]);
    await nothingLeft(t, done.summary.run_id);
  },
);

// Stops h2's sshd for good: keep it last among the tests that need h2.
t.test('sshd stopped and the agent killed: the host is gone, the job goes on without it', async (t) => {
  const job = launch(
    t,
    'sshd-stopped',
    hosts.slice(0, 3).map((host) => ({ host })),
  );
  t.ok(await allRecorded(job, 0, 3), 'attempt 0 runs on 3 hosts');
  stopSshd(hosts[2]);
  killAgent(hosts[2]);
  const done = await finished(t, job);
  t.match(done.stderr, lostLine(2, hosts[2], '.*', 2, 2));
  t.match(job.rec(1, 1), { world: 2, host: hosts[1].name });
  await nothingLeft(t, done.summary.run_id);
});

t.test('a listed host unreachable at launch (its sshd stopped above): left out within min_nodes', async (t) => {
  const job = launch(
    t,
    'start-unreachable',
    hosts.slice(0, 3).map((host) => ({ host })),
    { env: { HOLD_ATTEMPTS: '0' } },
  );
  const done = await finished(t, job);
  t.match(done.stderr, lostLine(2, hosts[2], 'could not start: .*', 2, 2, 0));
  t.match(job.rec(0, 1), { world: 2, host: hosts[1].name });
  await nothingLeft(t, done.summary.run_id);

  const strict = launch(
    t,
    'start-unreachable-min3',
    hosts.slice(0, 3).map((host) => ({ host })),
    { extra: ['elastic: {min_nodes: 3}'], env: { HOLD_ATTEMPTS: '0' } },
  );
  const failed = await finished(t, strict, 3);
  t.match(
    failed.stderr,
    new RegExp(
      'cannot continue: 2 nodes alive, fewer than elastic\\.min_nodes \\(3\\) ' +
        `\\(node 2 \\(host ${re(hosts[2].address)}\\) lost: could not start: `,
    ),
    'exit 3 naming the host and why',
  );
  t.notMatch(failed.stderr, /\n\s+at /, 'no stack trace');
  t.notOk(strict.rec(0, 0), 'no worker started anywhere');
  await nothingLeft(t, failed.summary.run_id);
});
