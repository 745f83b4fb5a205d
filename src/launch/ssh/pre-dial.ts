/**
 * TCP connections to the first SSH nodes, dialled as soon as the plan exists, before ssh2 and the rest of
 * the launch load (ssh2 alone is ~35 ms of the controller's start, all on one core). Meanwhile each sshd
 * accepts, forks and re-executes itself for the connection, and its banner waits in the socket; the SSH
 * spawner then takes the socket instead of dialling (connect.ts hands it to ssh2 as `sock`).
 *
 * Only what the spawner would dial first: direct targets (a ProxyJump node is dialled through its hop),
 * one connection per host:port, at most ssh.concurrency in all, so the spawner's handshake limits hold as
 * they would without this. A socket that failed or closed before it was taken is not used: the spawner
 * dials afresh and reports that attempt's error, so failures read exactly as before. close() ends what
 * was not taken (a launch that fails before its SSH start leaves nothing open).
 */
import { connect, type Socket } from 'node:net';
import type { NodePlan } from '../../plan/types.js';
import { loadUserSshConfig } from './ssh-config.js';
import { resolveTarget, type SshSettings } from './target.js';

export class PreDials {
  private readonly sockets = new Map<string, { socket: Socket; failed: boolean }>();

  /** Dials the first `settings.concurrency` distinct direct targets of `nodes`. */
  static start(nodes: readonly Pick<NodePlan, 'node_rank' | 'host' | 'user' | 'port'>[], settings: SshSettings, sshConfigPath?: string): PreDials {
    const dials = new PreDials();
    const blocks = loadUserSshConfig(sshConfigPath);
    for (const node of nodes) {
      if (dials.sockets.size >= settings.concurrency) break;
      let target;
      try {
        target = resolveTarget(node, settings, blocks);
      } catch {
        continue; // the spawner reports it
      }
      const key = `${target.hostName}:${target.port}`;
      if (target.jumps.length || dials.sockets.has(key)) continue;
      const entry = { socket: connect({ host: target.hostName, port: target.port }), failed: false };
      const failed = () => void (entry.failed = true);
      entry.socket.on('error', failed).on('close', failed);
      dials.sockets.set(key, entry);
    }
    return dials;
  }

  /** The socket dialled to host:port, once; undefined when there is none or it already failed. */
  take(hostName: string, port: number): Socket | undefined {
    const key = `${hostName}:${port}`;
    const entry = this.sockets.get(key);
    if (!entry) return undefined;
    this.sockets.delete(key);
    if (entry.failed || entry.socket.destroyed) {
      entry.socket.destroy();
      return undefined;
    }
    return entry.socket;
  }

  /** Ends every socket not taken. */
  close(): void {
    for (const { socket } of this.sockets.values()) socket.destroy();
    this.sockets.clear();
  }

  get size(): number {
    return this.sockets.size;
  }
}
