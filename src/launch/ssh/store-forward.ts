/**
 * How agents reach the controller's store over their SSH connection: a remote port forward (ssh2
 * `forwardIn`, OpenSSH's `ssh -R 127.0.0.1:0:...`). sshd listens on the node's loopback on a port it picks;
 * each connection the agent makes there arrives here as a channel, piped to the store's local listener.
 *
 * Why this and not the alternatives: it needs nothing on the node but the agent's ordinary TCP store client,
 * it works through NAT and firewalls (the connection is outbound from the controller), sshd removes the
 * listener when the connection ends (nothing to clean up on the node), and AllowTcpForwarding is OpenSSH's
 * default. Other local users of the node can connect to the loopback port, which is why the store
 * authenticates every connection with the per-job key (challenge-response: the key never crosses). A
 * streamlocal (Unix socket) forward would restrict the socket by file mode, but needs a private folder on
 * the node before the agent exists and leaves a socket file behind if sshd is killed. Where forwarding is
 * disabled, `rendezvous.addr` selects direct TCP instead.
 */
import { connect as netConnect } from 'node:net';
import { StartError } from '../../util/errors.js';
import type { SshConnection } from './connect.js';

export interface StoreEndpoint {
  host: string;
  port: number;
}

/** Starts the forward; resolves to the address agents on that node dial (`127.0.0.1:<port>`). */
export function forwardStore(conn: SshConnection, store: StoreEndpoint): Promise<StoreEndpoint> {
  const { client, target } = conn;
  return new Promise((resolve, reject) => {
    client.forwardIn('127.0.0.1', 0, (err, port) => {
      if (err) {
        reject(
          new StartError(
            `sshd refused to forward the store port (${err.message}; AllowTcpForwarding disabled?); ` +
              'set rendezvous.addr to an address of this machine that the nodes reach directly',
            target.alias,
          ),
        );
        return;
      }
      client.on('tcp connection', (details, accept, rejectConn) => {
        if (details.destPort !== port) return rejectConn();
        const stream = accept();
        const local = netConnect({ port: store.port, host: store.host, noDelay: true });
        const closeBoth = () => {
          stream.destroy();
          local.destroy();
        };
        local.on('error', closeBoth);
        stream.on('error', closeBoth);
        stream.pipe(local).pipe(stream);
      });
      resolve({ host: '127.0.0.1', port });
    });
  });
}
