// What one agent start costs on this machine: `bin/dtrain agent --stdio` as every SSH, srun and child node
// runs it, timed from exec (its shell line included) to its hello answer (code loaded, reading its spec) and
// to ready (after the spec: connected to the store, proxy up, waiting on its first command), in wall time and
// in CPU time (every thread of the process, from /proc/<pid>/task/*/schedstat, so nanoseconds rather than
// ticks). The reference, interleaved round by round: a bare `node -e` that answers one stdin line (Node's own
// start and a pipe round trip). CPU time is the figure to compare: it barely moves with the machine's load,
// wall time does. Then `import('dtrain')` in a worker against `node -e 0`, in CPU time of the whole process.
// Every process here runs without NODE_EXTRA_CA_CERTS: Node reads that file at each start (~35 ms of CPU on
// the 2-core build machine) and bin/dtrain holds it back from the agent, so only the references would pay it.
// DTRAIN_BASELINE=/path/to/another/built/checkout adds its agent and import to the same run (before/after
// on a shared machine: only figures from one run compare).
//   node scripts/bench/agent-start.mjs [rounds=40]   (needs a build: npm run build)
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = fileURLToPath(new URL('../../', import.meta.url));
const rounds = Number(process.argv[2] ?? 40);
const { StoreServer, StoreClient } = await import(join(root, 'dist/store/index.js'));
const { packageVersion } = await import(join(root, 'dist/util/version.js'));
const checkouts = { agent: root };
const env = { ...process.env };
delete env.NODE_EXTRA_CA_CERTS;
if (process.env.DTRAIN_BASELINE) checkouts.baseline = process.env.DTRAIN_BASELINE;

/** CPU time of every thread the process has now, in ms. */
function cpuMs(pid) {
  let ns = 0;
  for (const tid of readdirSync(`/proc/${pid}/task`)) {
    try {
      ns += Number(readFileSync(`/proc/${pid}/task/${tid}/schedstat`, 'utf8').split(' ')[0]);
    } catch {
      // the thread ended in between
    }
  }
  return ns / 1e6;
}

/** Resolves with the first stdout line of the child. */
function firstLine(child) {
  return new Promise((resolve, reject) => {
    let buf = '';
    const onData = (d) => {
      buf += d;
      const nl = buf.indexOf('\n');
      if (nl < 0) return;
      child.stdout.off('data', onData);
      resolve(buf.slice(0, nl));
    };
    child.stdout.on('data', onData);
    child.once('exit', (code) => reject(new Error(`exited ${code} before its first line`)));
  });
}

const exited = (child) => new Promise((resolve) => child.once('exit', (code) => resolve(code)));

const until = async (cond) => {
  while (!cond()) await new Promise((r) => setImmediate(r));
};

const jobKey = randomBytes(32);
const store = await StoreServer.start({ jobKey });
const control = await StoreClient.connectTcp({ host: '127.0.0.1', port: store.port, jobKey });
const work = mkdtempSync(join(tmpdir(), 'dtrain-bench-agent-'));
let runId = 0;

/** One agent from `dir`: hello, then a spec with no ranks, then `exit` once it waits for commands. */
async function agentStart(dir) {
  const id = `bench-${runId++}`;
  const spec = {
    type: 'spec',
    run_id: id,
    node: { node_rank: 0, host: 'localhost', nproc: 0, local: true },
    ranks: [],
    world_size: 1,
    nnodes: 1,
    workdir: work,
    master: { addr: '127.0.0.1', port: 'auto' },
    store: { kind: 'tcp', host: '127.0.0.1', port: store.port },
    job_key: jobKey.toString('base64'),
    restarts_max: 0,
    heartbeat_interval_ms: 60_000,
    logs: { dir: join(work, 'logs'), ranks: 'all', tee: false },
  };
  const blockedBefore = store.stats().blocked;
  const t0 = performance.now();
  const child = spawn(join(dir, 'bin/dtrain'), ['agent', '--stdio'], { stdio: ['pipe', 'pipe', 'inherit'], env });
  const done = exited(child);
  child.stdin.write(JSON.stringify({ type: 'hello', version: packageVersion() }) + '\n');
  await firstLine(child);
  const hello = { wall: performance.now() - t0, cpu: cpuMs(child.pid) };
  child.stdin.write(JSON.stringify(spec) + '\n');
  await until(() => store.stats().blocked > blockedBefore);
  const ready = { wall: performance.now() - t0, cpu: cpuMs(child.pid) };
  await control.set('ctl/cmd/0/0', JSON.stringify({ type: 'exit' }));
  const code = await done;
  await control.delete('ctl/cmd/0/0');
  if (code !== 0) throw new Error(`agent exited ${code}`);
  return { hello, ready };
}

const answerOnce = "process.stdin.once('data',()=>process.stdout.write('x\\n')).once('end',()=>process.exit())";
/** The reference: Node's own start and one line answered on stdin. */
async function nodeStart() {
  const t0 = performance.now();
  const child = spawn(process.execPath, ['-e', answerOnce], { stdio: ['pipe', 'pipe', 'inherit'], env });
  const done = exited(child);
  child.stdin.write('{}\n');
  await firstLine(child);
  const r = { wall: performance.now() - t0, cpu: cpuMs(child.pid) };
  child.stdin.end();
  await done;
  return r;
}

/** A worker's import of dtrain: CPU of the whole process (waited for, from its resource usage). */
async function importCost(dir) {
  const code = dir ? `import(${JSON.stringify(join(dir, 'dist/runtime/index.js'))})` : '0';
  const t0 = performance.now();
  // bash's `time` prints the child's rusage to ms precision; TIMEFORMAT keeps just the numbers.
  const child = spawn('bash', ['-c', 'TIMEFORMAT="%3U %3S"; time "$@" >/dev/null', 'x', process.execPath, '-e', code], {
    stdio: ['ignore', 'ignore', 'pipe'],
    env,
  });
  let err = '';
  child.stderr.on('data', (d) => (err += d));
  const rc = await exited(child);
  const wall = performance.now() - t0;
  if (rc !== 0) throw new Error(`node -e ${code}: exit ${rc}: ${err}`);
  const [u, s] = err.trim().split('\n').pop().split(' ').map(Number);
  return { wall, cpu: (u + s) * 1000 };
}

const series = {};
const add = (key, ms) => (series[key] ??= []).push(ms);
const one = async (keep) => {
  const node = await nodeStart();
  const agents = {};
  for (const [name, dir] of Object.entries(checkouts)) agents[name] = await agentStart(dir);
  const bare = await importCost(null);
  const imports = {};
  for (const [name, dir] of Object.entries(checkouts)) imports[name] = await importCost(dir);
  if (!keep) return;
  for (const what of ['cpu', 'wall']) {
    add(`node answer ${what}`, node[what]);
    add(`node -e 0 ${what}`, bare[what]);
    for (const name of Object.keys(checkouts)) {
      add(`${name} hello ${what}`, agents[name].hello[what]);
      add(`${name} ready ${what}`, agents[name].ready[what]);
      add(`${name} import ${what}`, imports[name][what]);
    }
  }
};
try {
  for (let i = 0; i < 3; i++) await one(false);
  for (let i = 0; i < rounds; i++) await one(true);
} finally {
  control.close();
  await store.close();
  rmSync(work, { recursive: true, force: true });
}

const stats = (a) => {
  const s = [...a].sort((x, y) => x - y);
  const at = (q) => s[Math.min(s.length - 1, Math.floor(q * s.length))];
  return { mean: s.reduce((x, y) => x + y, 0) / s.length, p50: at(0.5), p99: at(0.99) };
};
const fmt = (x) => x.toFixed(1).padStart(7);
console.log(`${rounds} rounds, interleaved; ms; load ${readFileSync('/proc/loadavg', 'utf8').split(' ').slice(0, 3)}`);
console.log(`${'what'.padEnd(44)}   mean     p50     p99   p50 - reference p50`);
const row = (label, key, ref) => {
  const s = stats(series[key]);
  const d = ref ? fmt(s.p50 - stats(series[ref]).p50) : '';
  console.log(`${label.padEnd(44)}${fmt(s.mean)} ${fmt(s.p50)} ${fmt(s.p99)}   ${d}`);
};
for (const what of ['cpu', 'wall']) {
  row(`node -e (answer one stdin line), ${what}`, `node answer ${what}`, null);
  for (const name of Object.keys(checkouts)) {
    row(`${name}: exec -> hello answer, ${what}`, `${name} hello ${what}`, `node answer ${what}`);
    row(`${name}: exec -> ready after spec, ${what}`, `${name} ready ${what}`, `node answer ${what}`);
  }
  row(`node -e 0, ${what}`, `node -e 0 ${what}`, null);
  for (const name of Object.keys(checkouts))
    row(`${name}: node -e "import('dtrain')", ${what}`, `${name} import ${what}`, `node -e 0 ${what}`);
}
