/**
 * Integration-test access to scripts/testbed/netns-hosts.sh: each test file brings up its own hosts under a
 * unique prefix and subnet and tears them down at the end, whatever happened. Needs root; `skipReason()` says
 * why a machine cannot run these tests (CI sets DTRAIN_REQUIRE_INTEGRATION=1 to turn that into a failure).
 */
import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

export const repoRoot = fileURLToPath(new URL('../..', import.meta.url));
const script = `${repoRoot}scripts/testbed/netns-hosts.sh`;

export interface TestbedHost {
  name: string;
  namespace: string;
  hostname: string;
  address: string;
  port: number;
  user: string;
  host_key: string;
  sshd_log: string;
}

export interface Testbed {
  prefix: string;
  controller_address: string;
  state_dir: string;
  user: string;
  client_key: string;
  known_hosts: string;
  ssh_config: string;
  hosts: TestbedHost[];
  down(): void;
}

export function skipReason(): string | undefined {
  if (process.getuid?.() !== 0) return 'needs root (network namespaces)';
  if (!existsSync('/usr/sbin/sshd')) return 'needs openssh-server (/usr/sbin/sshd)';
  if (spawnSync('ip', ['netns', 'list']).status !== 0) return 'needs iproute2 with netns support';
  return undefined;
}

/** Unique per process, so concurrent test files (and a developer's own testbed) never collide. */
export function testbedUp(count: number, tag: string): Testbed {
  const n = process.pid % 200;
  const prefix = `${tag}${n.toString(36)}`.slice(0, 8);
  let out = '';
  // Another test process may hold the subnet this pid maps to: move on to the next free one.
  for (let attempt = 0; ; attempt++) {
    const subnet = `10.231.${20 + ((n + attempt * 37) % 200)}`;
    const r = spawnSync(script, ['up', String(count), '--prefix', prefix, '--subnet', subnet, '--json'], {
      encoding: 'utf8',
    });
    if (r.status === 0) {
      out = r.stdout;
      break;
    }
    if (!/already in use/.test(r.stderr) || attempt >= 5) throw new Error(`testbed: ${r.stderr.trim()}`);
  }
  const desc = JSON.parse(out) as Omit<Testbed, 'down'>;
  let isUp = true;
  const down = () => {
    if (!isUp) return;
    isUp = false;
    spawnSync(script, ['down', '--prefix', prefix], { stdio: 'ignore' });
  };
  // tap ends a test that runs past its timeout with SIGALRM (and a user with SIGINT): take the hosts down
  // then too, or their namespaces and sshds outlive the test.
  for (const sig of ['SIGALRM', 'SIGINT', 'SIGTERM'] as const) {
    process.once(sig, () => {
      down();
      process.kill(process.pid, sig);
    });
  }
  process.once('exit', down);
  return { ...desc, down };
}

/** Runs a command inside a host's network namespace (e.g. to cut its link). */
export function inHost(host: TestbedHost, argv: string[]): string {
  return execFileSync('ip', ['netns', 'exec', host.namespace, ...argv], { encoding: 'utf8' });
}

/** Pids living in a host's namespace other than its sshd listener. */
export function strayPids(host: TestbedHost): number[] {
  const pids = execFileSync('ip', ['netns', 'pids', host.namespace], { encoding: 'utf8' })
    .split('\n')
    .filter(Boolean)
    .map(Number);
  return pids.filter((pid) => {
    const r = spawnSync('ps', ['-o', 'args=', '-p', String(pid)], { encoding: 'utf8' });
    return r.status === 0 && !/\[listener\]/.test(r.stdout);
  });
}
