/**
 * A store in a process of its own (as in the controller), for the scale test: reads the job key (hex) on
 * stdin, starts the store and prints `listening {port, budget, openFiles}`; each `stats` line on stdin is
 * answered `stats {authenticated, unauthenticated, evicted}`. Closes when stdin ends.
 */
import { StoreServer } from '../../src/store/server.js';
import { openFileLimit } from '../../src/store/open-files.js';

let evicted = 0;
let text = '';
let server: StoreServer | undefined;
process.stdin.on('data', (chunk: Buffer) => {
  text += chunk.toString();
  const parts = text.split('\n');
  text = parts.pop()!;
  for (const line of parts) void onLine(line);
});
process.stdin.once('end', () => void server?.close().then(() => process.exit(0)));

async function onLine(line: string) {
  if (!server) {
    server = await StoreServer.start({
      jobKey: Buffer.from(line, 'hex'),
      onViolation: (why) => void (evicted += Number(/evicted/.test(why))),
    });
    const budget = server.options.maxUnauthenticated;
    process.stdout.write(`listening ${JSON.stringify({ port: server.port, budget, openFiles: openFileLimit() })}\n`);
  } else if (line === 'stats') {
    const { authenticated, unauthenticated } = server.stats();
    process.stdout.write(`stats ${JSON.stringify({ authenticated, unauthenticated, evicted })}\n`);
  }
}
