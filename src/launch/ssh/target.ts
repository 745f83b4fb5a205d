/**
 * Where and as whom to connect for one node: the config's `ssh` section, the node's own user/port, and the
 * user's ~/.ssh/config alias merged in one place. Precedence (most specific first): the node entry, the
 * config's `ssh` section, ~/.ssh/config, then OpenSSH's defaults (local user name, port 22, ~/.ssh/id_*).
 */
import { existsSync } from 'node:fs';
import { homedir, userInfo } from 'node:os';
import { join } from 'node:path';
import { StartError } from '../../util/errors.js';
import { expandTilde, resolveHost, type parseSshConfig } from './ssh-config.js';

export type StrictHostKeyChecking = 'yes' | 'accept-new' | 'no';

/** The config's `ssh` section, durations already in milliseconds. */
export interface SshSettings {
  user?: string;
  port?: number;
  identity_file?: string;
  known_hosts?: string;
  strict_host_key_checking: StrictHostKeyChecking;
  connect_timeout_ms: number;
  concurrency: number;
  remote_dtrain?: string;
  forward_env: string[];
  prelude?: string;
}

export const defaultSshSettings: SshSettings = {
  strict_host_key_checking: 'yes',
  connect_timeout_ms: 10_000,
  concurrency: 32,
  forward_env: ['NCCL_*', 'CUDA_*', 'UCX_*', 'PYTHON*'],
};

export interface SshTarget {
  /** the name written in the dtrain config (what messages show) */
  alias: string;
  /** what is resolved and dialled */
  hostName: string;
  port: number;
  user: string;
  /** private keys to offer, in order, before the agent */
  identityFiles: string[];
  agentSocket?: string;
  /** files to verify the host key against; the first receives accept-new additions */
  knownHostsFiles: string[];
  /** hops to go through first (ProxyJump), outermost first */
  jumps: SshTarget[];
}

type ConfigBlocks = ReturnType<typeof parseSshConfig>;

const defaultIdentities = ['id_ed25519', 'id_ecdsa', 'id_rsa'];

function parseJumpSpec(spec: string): { host: string; user?: string; port?: number } {
  // [user@]host[:port], or ssh://[user@]host[:port]
  const m = /^(?:ssh:\/\/)?(?:([^@]+)@)?(\[[^\]]+\]|[^:]+)(?::(\d+))?$/.exec(spec.trim());
  if (!m) throw new Error(`cannot parse ProxyJump entry "${spec}"`);
  const out: { host: string; user?: string; port?: number } = { host: m[2].replace(/^\[|\]$/g, '') };
  if (m[1]) out.user = m[1];
  if (m[3]) out.port = Number(m[3]);
  return out;
}

export function resolveTarget(
  node: { host: string; user?: string; port?: number },
  settings: SshSettings,
  blocks: ConfigBlocks,
  env: NodeJS.ProcessEnv = process.env,
  depth = 0,
): SshTarget {
  const fromConfig = resolveHost(blocks, node.host);
  if (fromConfig.proxyCommand) {
    throw new StartError(
      `ProxyCommand in ~/.ssh/config is not supported by dtrain (use ProxyJump, or set rendezvous.addr and ` +
        `reach the node directly)`,
      node.host,
    );
  }
  const sshDir = join(homedir(), '.ssh');
  const explicit = [
    ...(settings.identity_file ? [expandTilde(settings.identity_file)] : []),
    ...fromConfig.identityFiles,
  ];
  const identityFiles = explicit.length
    ? explicit
    : defaultIdentities.map((f) => join(sshDir, f)).filter((f) => existsSync(f));
  const knownHostsFiles = settings.known_hosts
    ? [expandTilde(settings.known_hosts)]
    : (fromConfig.userKnownHostsFiles ?? [join(sshDir, 'known_hosts'), join(sshDir, 'known_hosts2')]);
  const target: SshTarget = {
    alias: node.host,
    hostName: fromConfig.hostName ?? node.host,
    port: node.port ?? settings.port ?? fromConfig.port ?? 22,
    user: node.user ?? settings.user ?? fromConfig.user ?? userInfo().username,
    identityFiles,
    knownHostsFiles,
    jumps: [],
  };
  // IdentitiesOnly stops OpenSSH offering agent keys; honour it the same way.
  if (env.SSH_AUTH_SOCK && !fromConfig.identitiesOnly) target.agentSocket = env.SSH_AUTH_SOCK;
  if (fromConfig.proxyJump) {
    if (depth > 4) throw new StartError('ProxyJump chain is longer than 5 hops (a loop in ~/.ssh/config?)', node.host);
    target.jumps = fromConfig.proxyJump
      .split(',')
      .map((spec) => {
        let hop: { host: string; user?: string; port?: number };
        try {
          hop = parseJumpSpec(spec);
        } catch (err) {
          throw new StartError((err as Error).message, node.host);
        }
        // A hop is resolved like any host, but its user/port come from its own spec or config, not the node's.
        const hopSettings: SshSettings = { ...settings };
        delete hopSettings.user;
        delete hopSettings.port;
        const resolved = resolveTarget(hop, hopSettings, blocks, env, depth + 1);
        return resolved.jumps.length ? [...resolved.jumps, { ...resolved, jumps: [] }] : [resolved];
      })
      .flat();
  }
  return target;
}

/** `user@host:port` for messages (the alias, plus the dialled address when it differs). */
export function describeTarget(t: SshTarget): string {
  const addr = t.hostName === t.alias ? '' : ` (${t.hostName})`;
  return `${t.user}@${t.alias}${t.port === 22 ? '' : `:${t.port}`}${addr}`;
}

/** The config's `ssh` section as config/normalise gives it (connect_timeout in ms) → spawner settings. */
export function sshSettingsFromConfig(ssh: {
  user?: string;
  port?: number;
  identity_file?: string;
  known_hosts?: string;
  strict_host_key_checking: StrictHostKeyChecking;
  connect_timeout: number;
  concurrency: number;
  remote_dtrain?: string;
  forward_env: string[];
  prelude?: string;
}): SshSettings {
  const { connect_timeout, ...rest } = ssh;
  const settings: SshSettings = { ...defaultSshSettings, connect_timeout_ms: connect_timeout };
  for (const [k, v] of Object.entries(rest))
    if (v !== undefined) (settings as unknown as Record<string, unknown>)[k] = v;
  return settings;
}
