/**
 * Store micro-benchmark: GET round trips per second, one request in flight and 32 pipelined,
 *   - over TCP with authentication (store in one process, client in another: controller ↔ agent),
 *   - over the agent's Unix proxy (store, agent+proxy, worker: three processes),
 *   - and PyTorch's TCPStore from Debian's python3-torch on the same machine, for reference.
 *
 *   TS_NODE_TRANSPILE_ONLY=1 node --import=@tapjs/typescript/import test/helpers/store-bench.ts [seconds]
 *
 * The job key reaches child processes on stdin, never in argv or the environment.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { StoreServer } from '../../src/store/server.js';
import { StoreClient } from '../../src/store/client.js';
import { StoreProxy } from '../../src/store/proxy.js';

const self = fileURLToPath(import.meta.url);
const seconds = Number(process.argv[3] ?? process.argv[2] ?? 2) || 2;

/** The first line of a stream, leaving the stream open (for-await would destroy it on break). */
function readLine(stream: NodeJS.ReadableStream): Promise<string> {
  return new Promise((resolve, reject) => {
    let text = '';
    const onData = (chunk: Buffer) => {
      text += chunk.toString();
      if (!text.includes('\n')) return;
      stream.off('data', onData);
      stream.pause();
      resolve(text.split('\n')[0]);
    };
    stream.on('data', onData);
    stream.once('end', () => reject(new Error('stream ended before a line')));
  });
}

/** Round trips per second with `depth` GETs kept in flight. */
async function measure(client: StoreClient, depth: number): Promise<number> {
  await client.set('bench', 'x'.repeat(32));
  for (let i = 0; i < 200; i++) await client.get('bench'); // warm up the JIT
  let done = 0;
  const until = performance.now() + seconds * 1000;
  const lane = async () => {
    while (performance.now() < until) {
      await client.get('bench');
      done++;
    }
  };
  const started = performance.now();
  await Promise.all(Array.from({ length: depth }, lane));
  return Math.round(done / ((performance.now() - started) / 1000));
}

function child(role: string): ChildProcess {
  return spawn(process.execPath, [...process.execArgv, self, role], { stdio: ['pipe', 'pipe', 'inherit'] });
}

async function serverRole() {
  const jobKey = Buffer.from(await readLine(process.stdin), 'hex');
  const server = await StoreServer.start({ jobKey });
  process.stdout.write(`${server.port}\n`);
  process.stdin.resume();
  process.stdin.on('end', () => void server.close());
}

async function workerRole() {
  const socketPath = await readLine(process.stdin);
  const client = await StoreClient.connectUnix(socketPath);
  const one = await measure(client, 1);
  const many = await measure(client, 32);
  process.stdout.write(`${one} ${many}\n`);
  await client.close();
}

function torchRole(): Promise<string> {
  const code = `
import sys, time, datetime, subprocess
import torch.distributed as d
master_code = ("import sys, datetime, torch.distributed as d\\n"
  "s = d.TCPStore('127.0.0.1', 0, 2, True, timeout=datetime.timedelta(seconds=60), wait_for_workers=False)\\n"
  "print(s.port, flush=True)\\nsys.stdin.read()")
m = subprocess.Popen([sys.executable, '-c', master_code], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
port = int(m.stdout.readline())
c = d.TCPStore('127.0.0.1', port, 2, False, timeout=datetime.timedelta(seconds=60))
c.set('bench', 'x' * 32)
for _ in range(200): c.get('bench')
n = 0; t0 = time.perf_counter()
while time.perf_counter() - t0 < ${seconds}:
    c.get('bench'); n += 1
print(round(n / (time.perf_counter() - t0)))
m.stdin.close(); m.wait()
`;
  return new Promise((resolve) => {
    const py = spawn('/usr/bin/python3', ['-c', code], { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    py.stdout.on('data', (d) => (out += d));
    py.on('close', (code) => resolve(code === 0 ? out.trim() : 'unavailable'));
    py.on('error', () => resolve('unavailable'));
  });
}

async function main() {
  const jobKey = randomBytes(32);
  const server = child('server');
  server.stdin!.write(`${jobKey.toString('hex')}\n`);
  const port = Number(await readLine(server.stdout!));
  const upstream = await StoreClient.connectTcp({ host: '127.0.0.1', port, jobKey });
  const tcpOne = await measure(upstream, 1);
  const tcpMany = await measure(upstream, 32);

  const dir = mkdtempSync(path.join(tmpdir(), 'dtrain-store-bench-'));
  const proxy = await StoreProxy.start({ upstream, dir: path.join(dir, 'agent'), attempt: 0, jobKey });
  const worker = child('worker');
  worker.stdin!.end(`${proxy.socketPath}\n`);
  const [unixOne, unixMany] = (await readLine(worker.stdout!)).split(' ').map(Number);
  await new Promise((r) => worker.once('close', r));
  await proxy.close();
  await upstream.close();
  server.stdin!.end();
  await new Promise((r) => server.once('close', r));
  rmSync(dir, { recursive: true, force: true });

  const torch = await torchRole();
  const rows = [
    ['dtrain TCP (authenticated), 1 in flight', tcpOne],
    ['dtrain TCP (authenticated), 32 in flight', tcpMany],
    ['dtrain Unix proxy → TCP, 1 in flight', unixOne],
    ['dtrain Unix proxy → TCP, 32 in flight', unixMany],
    ['PyTorch TCPStore (Debian torch), 1 in flight', torch],
  ];
  console.log(`GET round trips/s, ${seconds} s each, separate processes for store, agent and worker:`);
  for (const [name, value] of rows) console.log(`  ${String(name).padEnd(48)} ${value}`);
}

const role = process.argv[2];
if (role === 'server') await serverRole();
else if (role === 'worker') await workerRole();
else await main();
