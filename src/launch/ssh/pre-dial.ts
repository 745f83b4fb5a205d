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

  /**
   * Dials the direct targets among the first `settings.concurrency` nodes: the spawner's first batch (its
   * limiter admits nodes in order), so no more handshakes are ever pending than without this.
   */
  static start(
    nodes: readonly Pick<NodePlan, 'node_rank' | 'host' | 'user' | 'port'>[],
    settings: SshSettings,
    sshConfigPath?: string,
  ): PreDials {
    const dials = new PreDials();
    const blocks = loadUserSshConfig(sshConfigPath);
    for (const node of nodes.slice(0, settings.concurrency)) {
      let target;
      try {
        target = resolveTarget(node, settings, blocks);
      } catch {
        continue; // the spawner reports it
      }
      const key = `${target.hostName}:${target.port}`;
      if (target.jumps.length || dials.sockets.has(key)) continue;
      let socket: Socket;
      try {
        socket = connect({ host: target.hostName, port: target.port });
      } catch {
        continue; // e.g. a port out of range: the spawner's own dial reports it
      }
      const entry = { socket, failed: false };
      const failed = () => void (entry.failed = true);
      socket.on('error', failed).on('close', failed);
      dials.sockets.set(key, entry);
    }
    return dials;
  }

  /** The socket dialled to host:port, once; undefined when there is none or it already failed or was closed. */
  take(hostName: string, port: number): Socket | undefined {
    const key = `${hostName}:${port}`;
    const entry = this.sockets.get(key);
    if (!entry) return undefined;
    this.sockets.delete(key);
    // sshd's banner arrives at once and nobody reads it here, so a peer that then closed shows only in the
    // stream state (no 'end' is emitted while data is buffered); ssh2 checks the same flag.
    const peerEnded =
      (entry.socket as unknown as { _readableState?: { ended?: boolean } })._readableState?.ended === true;
    if (entry.failed || entry.socket.destroyed || peerEnded) {
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
