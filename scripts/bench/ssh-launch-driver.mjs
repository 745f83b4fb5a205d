// One dtrain-side run for scripts/bench/ssh-launch.sh: connect to every host with the SSH spawner, start an
// agent on each, have each run `node -e 0` as a worker, wait until all have exited, close. Timed from the
// outside (hyperfine), so node's own startup counts as it does for pdsh's process.
//   node ssh-launch-driver.mjs <testbed.json> <remote agent path>
import { readFileSync } from 'node:fs';
import { createInterface } from 'node:readline';
import { startSshAgents } from '../../dist/launch/ssh/spawner.js';
import { defaultSshSettings } from '../../dist/launch/ssh/target.js';

const [bedPath, agentPath] = process.argv.slice(2);
const bed = JSON.parse(readFileSync(bedPath, 'utf8'));
const agents = await startSshAgents({
  nodes: bed.hosts.map((h, i) => ({ node_rank: i, host: h.address })),
  settings: {
    ...defaultSshSettings,
    user: bed.user,
    identity_file: bed.client_key,
    known_hosts: bed.known_hosts,
    remote_dtrain: agentPath,
  },
  workdir: process.cwd(),
  store: { host: '127.0.0.1', port: 9 },
  helloTimeoutMs: 30_000,
  keepaliveIntervalMs: 5000,
  sshConfigPath: '/dev/null',
});
const node = process.execPath;
await Promise.all(
  agents.map(
    (a) =>
      new Promise((resolve, reject) => {
        createInterface({ input: a.stdout }).on('line', (line) => {
          const msg = JSON.parse(line);
          if (msg.type !== 'exit') return;
          if (msg.code !== 0) reject(new Error(`${a.node.host}: worker exited ${msg.code}`));
          else resolve();
        });
        a.stdin.write(
          JSON.stringify({ type: 'run', id: 0, argv: [node, '-e', '0'], env: { PATH: '/usr/bin:/bin' } }) + '\n',
        );
      }),
  ),
);
agents.forEach((a) => a.close());
