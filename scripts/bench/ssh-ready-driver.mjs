// Latency from SSH connect to a ready agent, for one host, for scripts/bench/ssh-launch.sh: each round
// opens a connection with the SSH spawner and starts `dtrain agent --stdio` there, timed until the agent's
// hello (its code loaded, reading its spec), then closes; the reference, interleaved, is OpenSSH's
// `ssh -F <testbed config> <host> node -e 0` (connect, authenticate, start node, exit). One process does
// every round, so the controller's own start is not counted; the first round of each warms up.
// DTRAIN_BASELINE=/path/to/another/built/checkout adds its agent (its bin/dtrain on the host) to the same
// rounds, so before/after compare on one loaded machine.
//   node ssh-ready-driver.mjs <testbed.json> <remote bin/dtrain> [rounds=20]
import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { startSshAgents } from '../../dist/launch/ssh/spawner.js';
import { defaultSshSettings } from '../../dist/launch/ssh/target.js';

const [bedPath, dtrain, roundsArg] = process.argv.slice(2);
const rounds = Number(roundsArg ?? 20);
const bed = JSON.parse(readFileSync(bedPath, 'utf8'));
const host = bed.hosts[0];
const settings = {
  ...defaultSshSettings,
  user: bed.user,
  identity_file: bed.client_key,
  known_hosts: bed.known_hosts,
  remote_dtrain: dtrain,
};

const remotes = { agent: dtrain };
if (process.env.DTRAIN_BASELINE) remotes.baseline = join(process.env.DTRAIN_BASELINE, 'bin/dtrain');

async function agentReady(remote) {
  const t0 = performance.now();
  const [agent] = await startSshAgents({
    nodes: [{ node_rank: 0, host: host.address }],
    settings: { ...settings, remote_dtrain: remote },
    workdir: process.cwd(),
    store: { host: '127.0.0.1', port: 9 },
    helloTimeoutMs: 30_000,
    keepaliveIntervalMs: 5000,
    sshConfigPath: '/dev/null',
  });
  const ms = performance.now() - t0;
  agent.close();
  return ms;
}

function sshNode() {
  const t0 = performance.now();
  const r = spawnSync('ssh', ['-F', bed.ssh_config, '-x', host.name, 'node', '-e', '0']);
  if (r.status !== 0) throw new Error(`ssh ${host.name} node -e 0: exit ${r.status}: ${r.stderr}`);
  return performance.now() - t0;
}

const times = { ssh: [] };
for (const [name, remote] of Object.entries(remotes)) {
  times[name] = [];
  await agentReady(remote);
}
sshNode();
for (let i = 0; i < rounds; i++) {
  for (const [name, remote] of Object.entries(remotes)) times[name].push(await agentReady(remote));
  times.ssh.push(sshNode());
}
const stats = (a) => {
  const s = [...a].sort((x, y) => x - y);
  const at = (q) => s[Math.min(s.length - 1, Math.floor(q * s.length))].toFixed(1);
  return `mean ${(s.reduce((x, y) => x + y, 0) / s.length).toFixed(1)} ms, p50 ${at(0.5)}, p99 ${at(0.99)}`;
};
for (const name of Object.keys(remotes)) {
  const label = `connect -> ready dtrain agent${name === 'agent' ? '' : ` (${name})`} (1 host, ${rounds} rounds)`;
  console.log(`${label.padEnd(60)}${stats(times[name])}`);
}
console.log(`${'ssh host node -e 0 (OpenSSH, same host)'.padEnd(60)}${stats(times.ssh)}`);
