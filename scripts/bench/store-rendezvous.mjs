#!/usr/bin/env node
// Store rendezvous: the time for N simulated agents to rendezvous through one store, for dtrain's store
// (authenticated TCP, the agents' own client), PyTorch's TCPStore (the one python3-torch ships) and etcd
// (etcd-server, the store torchrun's etcd rendezvous uses), driven the same way. Every client opens its own
// connection (dtrain: and authenticates with the job key), SETs its member key, increments the count
// (dtrain and TCPStore: ADD; etcd has no counter: the revision its PUT returns is the increment, and the
// client that sees the N-th one is the last; dtrain's client sends its ADD without waiting for the SET's
// answer, as TCPStore's, whose SET has none), the last one SETs "all", and every client waits for "all"
// (dtrain and TCPStore: a blocking GET; etcd: a range, then a watch) and checks it holds N. The time is the
// driver's, from "go" to the last client having seen everyone: connection and authentication included,
// process starts excluded (the clients' processes load their code and say ready first). Each repeat runs a
// fresh server; the implementations alternate, the order reversing every other repeat. Reports mean, p50
// and p99 (nearest rank) over the repeats, per implementation and N. `--impls ...,bare` adds the floor under
// dtrain's store: the same exchanges, round trips and writes over plain Node sockets, with no authentication,
// framing or store state, so the share of the time that is Node's socket layer shows.
//
//   node scripts/bench/store-rendezvous.mjs [--sizes 100,1000,10000] [--repeats 5] [--procs 4]
//        [--impls dtrain,tcpstore,etcd[,bare]] [--threads 256] [--json]
//
// Needs a build (npm run build), /usr/bin/python3 with torch, and etcd on the PATH. The clients live in
// --procs processes, N/procs connections each; the store and the driver in their own. TCPStore's blocking
// client gets at most --threads driver threads per process (see torchClients). Job keys travel on stdin, never
// in argv or the environment. DTRAIN_BENCH_VERBOSE=1 prints each process's CPU time and dtrain's phase times.
import { spawn, spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import http from 'node:http';
import net from 'node:net';
import { cpus, loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';

const self = fileURLToPath(import.meta.url);
const root = fileURLToPath(new URL('../../', import.meta.url));

/** Lines of a child's stdout, one promise per line asked for. */
function lines(child) {
  let buf = '';
  const queue = [];
  const waiting = [];
  child.stdout.on('data', (d) => {
    buf += d;
    for (let nl = buf.indexOf('\n'); nl >= 0; nl = buf.indexOf('\n')) {
      const line = buf.slice(0, nl);
      buf = buf.slice(nl + 1);
      if (waiting.length) waiting.shift().resolve(line);
      else queue.push(line);
    }
  });
  child.once('exit', (code, signal) => {
    for (const w of waiting.splice(0)) w.reject(new Error(`exited ${code ?? signal} (${buf.trim()})`));
  });
  return () =>
    queue.length ? Promise.resolve(queue.shift()) : new Promise((resolve, reject) => waiting.push({ resolve, reject }));
}

const exited = (child) =>
  child.exitCode !== null || child.signalCode !== null
    ? Promise.resolve()
    : new Promise((r) => child.once('exit', () => r()));

// ---------------------------------------------------------------- client roles (child processes)

/** Reads stdin lines: the setup line(s), then "go", then anything (or EOF) to close and exit. */
async function clientRole(run) {
  const next = lines({ stdout: process.stdin, once: (_, cb) => process.stdin.once('end', cb) });
  const setup = JSON.parse(await next());
  const secret = setup.secret ? Buffer.from(await next(), 'hex') : undefined;
  const prepared = await run.prepare?.(setup, secret);
  process.stdout.write('ready\n');
  await next();
  const cpuBefore = process.cpuUsage();
  const goAt = performance.now();
  try {
    const held = await Promise.all(
      Array.from({ length: setup.count }, (_, i) => run.one(setup, setup.first + i, secret, prepared)),
    );
    process.stdout.write('done\n');
    if (verbose) {
      const cpu = process.cpuUsage(cpuBefore);
      const phases = Object.entries(run.phases ?? {})
        .map(([k, v]) => `${k} p50 ${pct(v, 0.5)} max ${pct(v, 1)}`)
        .join(', ');
      console.error(
        `clients ${setup.first}+${setup.count}: ${((cpu.user + cpu.system) / 1000).toFixed(0)} ms CPU in ` +
          `${(performance.now() - goAt).toFixed(0)} ms; ${phases}`,
      );
    }
    await next().catch(() => {});
    await Promise.all(held.map((c) => c?.close?.()));
  } catch (err) {
    process.stdout.write(`failed ${err.message.split('\n')[0]}\n`);
  }
  process.exit(0);
}

const verbose = Boolean(process.env.DTRAIN_BENCH_VERBOSE);
const pct = (v, q) => [...v].sort((a, b) => a - b)[Math.max(0, Math.ceil(q * v.length) - 1)]?.toFixed(0);
const phaseAt = (phases, name, since) => verbose && (phases[name] ??= []).push(performance.now() - since);

const dtrainClient = {
  phases: {},
  async prepare() {
    return await import(join(root, 'dist/store/index.js'));
  },
  async one({ port, n, prefix }, i, jobKey, { StoreClient }) {
    // The agent's own connect: retries with backoff while the store turns it away before authentication.
    const t0 = performance.now();
    const c = await StoreClient.connectTcp({ host: '127.0.0.1', port, jobKey, retryForMs: 120000, timeoutMs: 120000 });
    phaseAt(this.phases, 'auth', t0);
    // TCPStore never answers a SET, so its client goes straight on to ADD; dtrain's answers every request,
    // and its client need not wait for the SET's answer either: one connection's requests run in order.
    const member = c.set(`${prefix}/member/${i}`, 'x');
    const count = await c.add(`${prefix}/count`, 1);
    await member;
    if (count === n) await c.set(`${prefix}/all`, String(n));
    phaseAt(this.phases, 'add', t0);
    const all = (await c.get(`${prefix}/all`, 120000)).toString();
    phaseAt(this.phases, 'all', t0);
    if (all !== String(n)) throw new Error(`client ${i} saw ${all} of ${n}`);
    return c;
  },
};

/**
 * The floor under dtrain's store: the same exchanges over plain Node sockets, with nothing else (no
 * authentication, no frames, no store state). HELLO → CHALLENGE; PROOF+SET+ADD → WELCOME+OK+count; the
 * last client SETs "all"; GET → "all" once it is set. Lines of text, one reply write per request batch.
 */
const bareClient = {
  one({ port, n }) {
    return new Promise((resolve, reject) => {
      const socket = net.connect({ host: '127.0.0.1', port, noDelay: true });
      let buf = '';
      let step = 0;
      socket.on('error', reject);
      socket.on('data', (d) => {
        buf += d;
        for (let nl = buf.indexOf('\n'); nl >= 0; nl = buf.indexOf('\n')) {
          const line = buf.slice(0, nl);
          buf = buf.slice(nl + 1);
          step++;
          if (step === 1) socket.write('P\nS\nA\n');
          else if (step === 4 && Number(line) === n) socket.write('L\nG\n');
          else if (step === 4) socket.write('G\n');
          else if (step === 5 && line === 'ok')
            continue; // the last client's SET of "all"
          else if (step >= 5) {
            if (line !== String(n)) reject(new Error(`saw ${line} of ${n}`));
            else resolve({ close: () => socket.destroy() });
          }
        }
      });
      socket.write('H\n');
    });
  },
};

/** etcd v3 through its JSON gateway; one keep-alive connection per client. */
function etcdCall(agent, port, path, body) {
  return new Promise((resolve, reject) => {
    const req = http.request({ host: '127.0.0.1', port, path, method: 'POST', agent }, (res) => {
      let text = '';
      res.on('data', (d) => (text += d));
      res.on('end', () => (res.statusCode === 200 ? resolve(JSON.parse(text)) : reject(new Error(text))));
    });
    req.on('error', reject);
    req.end(JSON.stringify(body));
  });
}
const b64 = (s) => Buffer.from(s).toString('base64');

/** Resolves once a PUT of `key` at or after `revision` is seen, on a watch stream. */
function etcdWatch(agent, port, key, revision) {
  return new Promise((resolve, reject) => {
    const req = http.request({ host: '127.0.0.1', port, path: '/v3/watch', method: 'POST', agent }, (res) => {
      let buf = '';
      res.on('data', (d) => {
        buf += d;
        // The gateway streams one JSON object per message.
        for (let end = buf.indexOf('}\n'); end >= 0; end = buf.indexOf('}\n')) {
          const msg = JSON.parse(buf.slice(0, end + 1));
          buf = buf.slice(end + 2);
          const ev = msg.result?.events?.find((e) => e.kv?.key === b64(key));
          if (ev) {
            resolve(Buffer.from(ev.kv.value, 'base64').toString());
            req.destroy();
          }
        }
      });
      res.on('error', () => {});
    });
    req.on('error', (err) => (err.code === 'ECONNRESET' ? undefined : reject(err)));
    req.write(JSON.stringify({ create_request: { key: b64(key), start_revision: String(revision) } }) + '\n');
  });
}

const etcdClient = {
  async one({ port, n, prefix, base }, i) {
    const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
    const put = await etcdCall(agent, port, '/v3/kv/put', { key: b64(`${prefix}/member/${i}`), value: b64('x') });
    // The store's revision goes up by one per PUT: the N-th member's PUT is revision base + N.
    if (Number(put.header.revision) === base + n) {
      await etcdCall(agent, port, '/v3/kv/put', { key: b64(`${prefix}/all`), value: b64(String(n)) });
    }
    const got = await etcdCall(agent, port, '/v3/kv/range', { key: b64(`${prefix}/all`) });
    const all = got.kvs?.length
      ? Buffer.from(got.kvs[0].value, 'base64').toString()
      : await etcdWatch(new http.Agent({ keepAlive: false }), port, `${prefix}/all`, Number(got.header.revision) + 1);
    if (all !== String(n)) throw new Error(`client ${i} saw ${all} of ${n}`);
    return { close: () => agent.destroy() };
  },
};

// TCPStore clients: PyTorch's own client, whose calls block (releasing the GIL), so a client needs a thread
// to wait in. A process runs at most `threads` driver threads; each takes its share of the clients one after
// another through connect, SET and ADD (none of which waits for the others), then GETs "all" for each of
// them. Up to `threads` clients per process, that is one thread per client, every client as concurrent as
// dtrain's and etcd's; beyond it, clients wait their turn for a thread. TCPStore 1.13 itself also starts one
// background thread per client object (its watch listener, asleep in poll), which no driver can avoid.
const torchClients = `
import sys, threading, datetime, resource, json
import torch.distributed as d
soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
threading.stack_size(256 * 1024)
s = json.loads(sys.stdin.readline())
n, prefix = s['n'], s['prefix']
print('ready', flush=True)
sys.stdin.readline()
held, errors = [], []
def share(mine):
    try:
        stores = []
        for i in mine:
            c = d.TCPStore('127.0.0.1', s['port'], n, False, timeout=datetime.timedelta(seconds=120),
                           wait_for_workers=False)
            stores.append(c)
            c.set(f'{prefix}/member/{i}', 'x')
            if c.add(f'{prefix}/count', 1) == n:
                c.set(f'{prefix}/all', str(n))
        for i, c in zip(mine, stores):
            got = c.get(f'{prefix}/all').decode()
            if got != str(n):
                raise RuntimeError(f'client {i} saw {got} of {n}')
        held.extend(stores)
    except Exception as e:
        errors.append(str(e).split(chr(10))[0])
ids = range(s['first'], s['first'] + s['count'])
workers = min(s['threads'], s['count'])
threads = [threading.Thread(target=share, args=(ids[k::workers],)) for k in range(workers)]
for t in threads: t.start()
for t in threads: t.join()
print(f'failed {errors[0]}' if errors else 'done', flush=True)
sys.stdin.readline()
`;

// The master holds two connections per client (TCPStore 1.13's request and watch connections). Where the
// hard limit on open files is below that and cannot be raised (that needs CAP_SYS_RESOURCE), it says so
// and the run fails at once: started anyway, the master dies at accept (EMFILE) and thousands of clients
// retrying their connections drove this 2-core machine's load average into the thousands.
const torchMaster = `
import sys, datetime, resource
import torch.distributed as d
soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
need = 2 * int(sys.argv[1]) + 1024
try:
    resource.setrlimit(resource.RLIMIT_NOFILE, (max(hard, need), max(hard, need)))
except (ValueError, OSError):
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    if hard < need:
        print(f'the master needs {need} open files (two per client), over the hard limit of {hard}', flush=True)
        sys.exit(3)
s = d.TCPStore('127.0.0.1', 0, int(sys.argv[1]), True, timeout=datetime.timedelta(seconds=120),
               wait_for_workers=False)
print(s.port, flush=True)
sys.stdin.read()
`;

// ---------------------------------------------------------------- driver

const pythonPath = '/usr/bin/python3';
/** Driver threads per TCPStore client process, at most (--threads). */
let torchThreads = 256;

function spawnNode(role, extra = []) {
  // The driver's own Node flags (--cpu-prof, say) reach its clients and store too.
  return spawn(process.execPath, [...process.execArgv, self, role, ...extra], { stdio: ['pipe', 'pipe', 'inherit'] });
}

/** Starts `procs` client processes, says go, and returns the ms until every one reported done. */
async function rendezvous(procs, makeChild, setupFor, secret) {
  const children = [];
  try {
    const nexts = [];
    for (let p = 0; p < procs.length; p++) {
      const child = makeChild();
      children.push(child);
      nexts.push(lines(child));
      child.stdin.write(JSON.stringify(setupFor(procs[p])) + '\n');
      if (secret) child.stdin.write(secret.toString('hex') + '\n');
    }
    for (const next of nexts) if ((await next()) !== 'ready') throw new Error('a client process did not start');
    const started = performance.now();
    for (const c of children) c.stdin.write('go\n');
    const results = await Promise.all(nexts.map((next) => next()));
    const ms = performance.now() - started;
    const failed = results.find((r) => r !== 'done');
    if (failed) throw new Error(failed);
    return ms;
  } finally {
    for (const c of children) c.stdin.end('stop\n');
    await Promise.all(children.map(exited));
  }
}

/** Shares of n over procs processes: [{first, count}]. */
function shares(n, procs) {
  const out = [];
  for (let p = 0, first = 0; p < procs; p++) {
    const count = Math.floor(n / procs) + (p < n % procs ? 1 : 0);
    if (count) out.push({ first, count });
    first += count;
  }
  return out;
}

const runners = {
  async dtrain(n, procs, trial) {
    const jobKey = randomBytes(32);
    const server = spawnNode('dtrain-server');
    const next = lines(server);
    server.stdin.write(jobKey.toString('hex') + '\n');
    const port = Number(await next());
    try {
      return await rendezvous(
        shares(n, procs),
        () => spawnNode('dtrain-clients'),
        (s) => ({ ...s, port, n, prefix: `r${trial}`, secret: true }),
        jobKey,
      );
    } finally {
      server.stdin.end();
      await exited(server);
    }
  },
  async tcpstore(n, procs, trial) {
    const master = spawn(pythonPath, ['-c', torchMaster, String(n)], { stdio: ['pipe', 'pipe', 'inherit'] });
    const first = await lines(master)();
    const port = Number(first);
    if (!Number.isInteger(port)) {
      await exited(master);
      throw new Error(first);
    }
    try {
      return await rendezvous(
        shares(n, procs),
        () => spawn(pythonPath, ['-c', torchClients], { stdio: ['pipe', 'pipe', 'inherit'] }),
        (s) => ({ ...s, port, n, prefix: `r${trial}`, threads: torchThreads }),
      );
    } finally {
      master.stdin.end();
      await exited(master);
    }
  },
  async bare(n, procs) {
    const server = spawnNode('bare-server');
    const port = Number(await lines(server)());
    try {
      return await rendezvous(
        shares(n, procs),
        () => spawnNode('bare-clients'),
        (s) => ({ ...s, port, n }),
      );
    } finally {
      server.stdin.end();
      await exited(server);
    }
  },
  async etcd(n, procs, trial) {
    const { port, stop } = await startEtcd();
    try {
      const agent = new http.Agent({ keepAlive: false });
      const prefix = `r${trial}`;
      const start = await etcdCall(agent, port, '/v3/kv/put', { key: b64(`${prefix}/start`), value: b64('') });
      const base = Number(start.header.revision);
      return await rendezvous(
        shares(n, procs),
        () => spawnNode('etcd-clients'),
        (s) => ({ ...s, port, n, prefix, base }),
      );
    } finally {
      await stop();
    }
  },
};

/** A fresh single-member etcd on loopback, its data in a temporary folder (on disk, fsync as shipped). */
async function startEtcd() {
  const dir = mkdtempSync(join(tmpdir(), 'dtrain-bench-etcd-'));
  const port = 23790 + Math.floor(Math.random() * 1000) * 2;
  const url = (p) => `http://127.0.0.1:${p}`;
  const etcd = spawn(
    'etcd',
    [
      '--data-dir',
      join(dir, 'data'),
      '--listen-client-urls',
      url(port),
      '--advertise-client-urls',
      url(port),
      '--listen-peer-urls',
      url(port + 1),
      '--initial-advertise-peer-urls',
      url(port + 1),
      '--initial-cluster',
      `default=${url(port + 1)}`,
      '--logger',
      'zap',
      '--log-level',
      'error',
    ],
    { stdio: ['ignore', 'ignore', 'inherit'] },
  );
  const stop = async () => {
    etcd.kill('SIGTERM');
    await exited(etcd);
    rmSync(dir, { recursive: true, force: true });
  };
  for (let i = 0; i < 200; i++) {
    const ok = await etcdCall(new http.Agent(), port, '/v3/kv/range', { key: b64('x') }).then(
      () => true,
      () => false,
    );
    if (ok) return { port, stop };
    await new Promise((r) => setTimeout(r, 50));
  }
  await stop();
  throw new Error('etcd did not answer within 10 s');
}

async function serverRole() {
  const next = lines({ stdout: process.stdin, once: (_, cb) => process.stdin.once('end', cb) });
  const jobKey = Buffer.from(await next(), 'hex');
  const { StoreServer } = await import(join(root, 'dist/store/index.js'));
  let evicted = 0;
  const server = await StoreServer.start({ jobKey, onViolation: (why) => void (evicted += /evicted/.test(why)) });
  const cpuBefore = process.cpuUsage();
  process.on('exit', () => {
    const cpu = process.cpuUsage(cpuBefore);
    if (verbose) console.error(`store: ${evicted} evicted, ${((cpu.user + cpu.system) / 1000).toFixed(0)} ms CPU`);
  });
  process.stdout.write(`${server.port}\n`);
  process.stdin.once('end', () => void server.close().then(() => process.exit(0)));
}

/** The bare floor's server: answers each line at once, except GET, which waits for "all". */
async function bareServerRole() {
  const { listenBacklog } = await import(join(root, 'dist/store/admission.js'));
  let count = 0;
  let all;
  const waiting = [];
  const server = net.createServer({ noDelay: true }, (socket) => {
    let buf = '';
    socket.on('error', () => {});
    socket.on('data', (d) => {
      buf += d;
      const out = [];
      for (let nl = buf.indexOf('\n'); nl >= 0; nl = buf.indexOf('\n')) {
        const op = buf[0];
        buf = buf.slice(nl + 1);
        if (op === 'H') out.push('C');
        else if (op === 'P' || op === 'S') out.push('ok');
        else if (op === 'A') out.push(String(++count));
        else if (op === 'L') {
          all = String(count);
          out.push('ok');
          for (const w of waiting.splice(0)) w.write(`${all}\n`);
        } else if (op === 'G') {
          if (all === undefined) waiting.push(socket);
          else out.push(all);
        }
      }
      if (out.length) socket.write(out.join('\n') + '\n');
    });
  });
  await new Promise((r) => server.listen({ host: '127.0.0.1', port: 0, backlog: listenBacklog }, r));
  const cpuBefore = process.cpuUsage();
  process.on('exit', () => {
    const cpu = process.cpuUsage(cpuBefore);
    if (verbose) console.error(`store: 0 evicted, ${((cpu.user + cpu.system) / 1000).toFixed(0)} ms CPU`);
  });
  process.stdout.write(`${server.address().port}\n`);
  process.stdin.resume();
  process.stdin.once('end', () => process.exit(0));
}

function percentile(sorted, q) {
  return sorted[Math.min(sorted.length, Math.max(1, Math.ceil(q * sorted.length))) - 1];
}

async function main() {
  const { values } = parseArgs({
    args: process.argv.slice(2),
    options: {
      sizes: { type: 'string', default: '100,1000,10000' },
      repeats: { type: 'string', default: '5' },
      procs: { type: 'string', default: '4' },
      impls: { type: 'string', default: 'dtrain,tcpstore,etcd' },
      threads: { type: 'string', default: String(torchThreads) },
      json: { type: 'boolean', default: false },
    },
  });
  const sizes = values.sizes.split(',').map(Number);
  const repeats = Number(values.repeats);
  const procs = Number(values.procs);
  const impls = values.impls.split(',');
  torchThreads = Number(values.threads);
  for (const impl of impls) if (!runners[impl]) throw new Error(`--impls: unknown ${impl}`);
  const torch = spawnSync(pythonPath, ['-c', 'import torch; print(torch.__version__)'], { encoding: 'utf8' });
  const etcdVersion = spawnSync('etcd', ['--version'], { encoding: 'utf8' });
  const versions = {
    torch: torch.status === 0 ? torch.stdout.trim() : 'unavailable',
    etcd: etcdVersion.status === 0 ? /etcd Version: (\S+)/.exec(etcdVersion.stdout)?.[1] : 'unavailable',
  };
  const loadBefore = loadavg();
  const rows = [];
  let trial = 0;
  for (const n of sizes) {
    const times = Object.fromEntries(impls.map((i) => [i, []]));
    const errors = {};
    for (let r = 0; r < repeats; r++) {
      for (const impl of r % 2 ? [...impls].reverse() : impls) {
        if (errors[impl]) continue;
        try {
          times[impl].push(await runners[impl](n, procs, trial++));
          console.error(`${impl} ${n}: ${times[impl].at(-1).toFixed(1)} ms (load ${loadavg()[0].toFixed(2)})`);
        } catch (err) {
          errors[impl] = err.message;
          console.error(`${impl} ${n}: failed: ${err.message}`);
        }
      }
    }
    for (const impl of impls) {
      const t = [...times[impl]].sort((a, b) => a - b);
      const mean = t.reduce((s, x) => s + x, 0) / (t.length || NaN);
      rows.push({
        impl,
        clients: n,
        repeats: t.length,
        mean_ms: mean,
        p50_ms: percentile(t, 0.5),
        p99_ms: percentile(t, 0.99),
        error: errors[impl],
      });
    }
  }
  const machine = {
    cpu: cpus()[0]?.model ?? '?',
    cores: cpus().length,
    load_before: loadBefore.map((l) => +l.toFixed(2)),
    load_after: loadavg().map((l) => +l.toFixed(2)),
  };
  if (values.json) {
    process.stdout.write(
      JSON.stringify({ procs, threads: torchThreads, repeats, versions, machine, rows }, null, 2) + '\n',
    );
    return;
  }
  console.log(
    `store rendezvous: N clients, each connects, SETs, ADDs and waits for all; ${repeats} repeats, alternating; ` +
      `clients in ${procs} processes`,
  );
  console.log(`PyTorch ${versions.torch} (TCPStore), etcd ${versions.etcd}`);
  console.log(
    `machine: ${machine.cpu}, ${machine.cores} cores; load ${machine.load_before.join(' ')} before, ` +
      `${machine.load_after.join(' ')} after`,
  );
  const pad = (s, w) => String(s).padStart(w);
  console.log(`${'impl'.padEnd(10)}${pad('clients', 8)}${pad('mean ms', 10)}${pad('p50 ms', 10)}${pad('p99 ms', 10)}`);
  for (const r of rows) {
    const f = (x) => (Number.isFinite(x) ? x.toFixed(1) : '-');
    const note = r.error ? `  failed: ${r.error}` : '';
    console.log(
      `${r.impl.padEnd(10)}${pad(r.clients, 8)}${pad(f(r.mean_ms), 10)}${pad(f(r.p50_ms), 10)}${pad(f(r.p99_ms), 10)}` +
        note,
    );
  }
}

const role = process.argv[2];
if (role === 'dtrain-server') await serverRole();
else if (role === 'dtrain-clients') await clientRole(dtrainClient);
else if (role === 'etcd-clients') await clientRole(etcdClient);
else if (role === 'bare-server') await bareServerRole();
else if (role === 'bare-clients') await clientRole(bareClient);
else await main();
