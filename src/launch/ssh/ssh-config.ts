/**
 * The part of ~/.ssh/config that decides where and as whom dtrain connects: Host blocks (patterns with `*`,
 * `?`, `!negation`), HostName, User, Port, IdentityFile (repeatable), IdentitiesOnly, UserKnownHostsFile,
 * ProxyJump, ProxyCommand (reported so the spawner can refuse it), Include. As in OpenSSH the first value
 * found for a keyword wins. `Match` blocks are skipped (their conditions need a shell): a host that relies
 * on one gets the values outside it.
 */
import { readFileSync, readdirSync } from 'node:fs';
import { homedir, userInfo } from 'node:os';
import { basename, dirname, isAbsolute, join } from 'node:path';

export interface SshConfigHost {
  hostName?: string;
  user?: string;
  port?: number;
  identityFiles: string[];
  identitiesOnly?: boolean;
  userKnownHostsFiles?: string[];
  proxyJump?: string;
  proxyCommand?: string;
}

interface Directive {
  keyword: string;
  args: string[];
}

interface Block {
  /** null: directives before the first Host line, which apply to every host */
  patterns: string[] | null;
  /** true for Match blocks, which dtrain does not evaluate */
  skipped: boolean;
  directives: Directive[];
}

function splitArgs(rest: string): string[] {
  const out: string[] = [];
  const re = /"([^"]*)"|(\S+)/g;
  let m: RegExpExecArray | null;
  while ((m = re.exec(rest))) out.push(m[1] ?? m[2]);
  return out;
}

export function parseSshConfig(text: string, includeBase = join(homedir(), '.ssh'), depth = 0): Block[] {
  const blocks: Block[] = [{ patterns: null, skipped: false, directives: [] }];
  for (const raw of text.split('\n')) {
    const line = raw.trim();
    if (!line || line.startsWith('#')) continue;
    const m = /^(\S+?)(?:\s*=\s*|\s+)(.*)$/.exec(line);
    if (!m) continue;
    const keyword = m[1].toLowerCase();
    const args = splitArgs(m[2]);
    if (keyword === 'host') {
      blocks.push({ patterns: args, skipped: false, directives: [] });
    } else if (keyword === 'match') {
      const all = args.length === 1 && args[0].toLowerCase() === 'all';
      blocks.push({ patterns: all ? ['*'] : [], skipped: !all, directives: [] });
    } else if (keyword === 'include' && depth < 8) {
      // Included files are read in place: their Host lines open blocks of their own, then the
      // enclosing block continues (OpenSSH semantics, close enough for the keywords read here).
      const current = blocks[blocks.length - 1];
      for (const file of args.flatMap((a) => expandInclude(a, includeBase))) {
        let inner: string;
        try {
          inner = readFileSync(file, 'utf8');
        } catch {
          continue;
        }
        const innerBlocks = parseSshConfig(inner, includeBase, depth + 1);
        innerBlocks[0].patterns = current.patterns;
        innerBlocks[0].skipped = current.skipped;
        blocks.push(...innerBlocks);
      }
      blocks.push({ patterns: current.patterns, skipped: current.skipped, directives: [] });
    } else {
      blocks[blocks.length - 1].directives.push({ keyword, args });
    }
  }
  return blocks;
}

function expandInclude(arg: string, base: string): string[] {
  const path = expandTilde(arg);
  const full = isAbsolute(path) ? path : join(base, path);
  const name = basename(full);
  if (!/[*?]/.test(name)) return [full];
  const re = new RegExp(
    `^${name
      .replace(/[.+^${}()|[\]\\]/g, '\\$&')
      .replace(/\*/g, '.*')
      .replace(/\?/g, '.')}$`,
  );
  try {
    return readdirSync(dirname(full))
      .filter((f) => re.test(f))
      .sort()
      .map((f) => join(dirname(full), f));
  } catch {
    return [];
  }
}

function patternMatches(patterns: string[], host: string): boolean {
  let matched = false;
  for (const p of patterns) {
    const negated = p.startsWith('!');
    const glob = negated ? p.slice(1) : p;
    const re = new RegExp(
      `^${glob
        .replace(/[.+^${}()|[\]\\]/g, '\\$&')
        .replace(/\*/g, '.*')
        .replace(/\?/g, '.')}$`,
      'i',
    );
    if (re.test(host)) {
      if (negated) return false;
      matched = true;
    }
  }
  return matched;
}

export function expandTilde(path: string): string {
  if (path === '~') return homedir();
  if (path.startsWith('~/')) return join(homedir(), path.slice(2));
  return path;
}

/** The settings that apply to `alias` (the name written in the dtrain config). */
export function resolveHost(blocks: Block[], alias: string): SshConfigHost {
  const first = new Map<string, string[]>();
  const identityFiles: string[] = [];
  const knownHosts: string[] = [];
  for (const block of blocks) {
    if (block.skipped) continue;
    if (block.patterns && !patternMatches(block.patterns, alias)) continue;
    for (const d of block.directives) {
      if (d.keyword === 'identityfile') identityFiles.push(...d.args);
      else if (!first.has(d.keyword)) first.set(d.keyword, d.args);
      if (d.keyword === 'userknownhostsfile' && knownHosts.length === 0) knownHosts.push(...d.args);
    }
  }
  const one = (k: string) => first.get(k)?.[0];
  const hostName = one('hostname');
  const user = one('user');
  const port = one('port');
  const host: SshConfigHost = { identityFiles: [] };
  if (hostName) host.hostName = hostName.replace(/%h/g, alias).replace(/%%/g, '%');
  if (user) host.user = user;
  if (port && /^\d+$/.test(port)) host.port = Number(port);
  const tokens = (s: string) =>
    s.replace(/%(.)/g, (whole, t: string) => {
      switch (t) {
        case 'd':
          return homedir();
        case 'u':
          return userInfo().username;
        case 'h':
          return host.hostName ?? alias;
        case 'n':
          return alias;
        case 'r':
          return host.user ?? userInfo().username;
        case 'p':
          return String(host.port ?? 22);
        case '%':
          return '%';
        default:
          return whole;
      }
    });
  host.identityFiles = identityFiles.map((f) => expandTilde(tokens(f)));
  const only = one('identitiesonly');
  if (only) host.identitiesOnly = only.toLowerCase() === 'yes';
  if (knownHosts.length && knownHosts[0].toLowerCase() !== 'none') {
    host.userKnownHostsFiles = knownHosts.map((f) => expandTilde(tokens(f)));
  }
  const jump = one('proxyjump');
  if (jump && jump.toLowerCase() !== 'none') host.proxyJump = jump;
  const command = first.get('proxycommand');
  if (command && command[0].toLowerCase() !== 'none') host.proxyCommand = command.join(' ');
  return host;
}

/** Reads the user's config (absent file: no settings). */
export function loadUserSshConfig(path = join(homedir(), '.ssh', 'config')): Block[] {
  try {
    return parseSshConfig(readFileSync(path, 'utf8'), dirname(path));
  } catch {
    return [];
  }
}
