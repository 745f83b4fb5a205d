/**
 * A stand-in agent process for store integration tests: reads {port, dir, attempt, retryForMs?} and the job key
 * (hex) as two lines on stdin, connects to the store, serves a proxy, blocks one GET upstream (so
 * the test can watch it being dropped when this process dies), and prints `ready <socketPath>`.
 */
import { StoreClient } from '../../src/store/client.js';
import { StoreProxy } from '../../src/store/proxy.js';

let input = '';
// eslint-disable-next-line @typescript-eslint/no-misused-promises -- a failure should crash this stand-in
process.stdin.on('data', async (chunk: Buffer) => {
  input += chunk.toString();
  const lines = input.split('\n');
  if (lines.length < 3) return;
  process.stdin.removeAllListeners('data');
  const { port, dir, attempt, retryForMs } = JSON.parse(lines[0]) as {
    port: number;
    dir: string;
    attempt: number;
    retryForMs?: number;
  };
  const jobKey = Buffer.from(lines[1], 'hex');
  const upstream = await StoreClient.connectTcp({ host: '127.0.0.1', port, jobKey, retryForMs });
  const proxy = await StoreProxy.start({ upstream, dir, attempt, jobKey });
  upstream.get('agent-never', 600000).catch(() => {});
  upstream.once('close', () => process.exit(3));
  process.stdout.write(`ready ${proxy.socketPath}\n`);
});
