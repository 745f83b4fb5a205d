/**
 * Starting `dtrain agent` on a connected host: one exec channel running the constant remote command, the
 * launch header on stdin, then the version exchange. Before the agent's hello every failure (prelude, workdir,
 * node or dtrain missing, version mismatch, agent dying) is a StartError naming the host.
 *
 * Version exchange (the first line each way, newline-delimited JSON, before any other agent message):
 *   controller → agent: {"type":"hello","version":"<controller version>","spec_within_ms":<n>}
 *   agent → controller: {"type":"hello","version":"<agent version>","hostname":"<os hostname>","pid":<pid>}
 * The controller refuses a different version (exit 3); the agent also exits when its stdin closes.
 */
import type { Readable, Writable } from 'node:stream';
import type { ClientChannel } from 'ssh2';
import { StartError } from '../../util/errors.js';
import { controllerHelloLine, type AgentExit, type AgentHello } from '../agent-contract.js';
import { keepStderrTail, readAgentHello } from '../agent-hello.js';
import type { SshConnection } from './connect.js';
import { encodeHeader, preludeExitMarker, remoteCommand, RemoteExit, type RemoteLaunch } from './remote-command.js';

export interface AgentChannel {
  /** the agent's hello (version checked) */
  hello: AgentHello;
  /** controller → agent messages; ending it tells the agent the controller is gone */
  stdin: Writable;
  /** agent → controller messages, from the line after the hello */
  stdout: Readable;
  /** the agent's own diagnostics and its workers' relayed output */
  stderr: Readable;
  exited: Promise<AgentExit>;
}

const exitReasons: Record<number, string> = {
  [RemoteExit.noHeader]: 'the remote shell got no launch header (stdin closed early)',
  [RemoteExit.preludeFailed]: 'ssh.prelude failed',
  [RemoteExit.workdirMissing]: 'workdir does not exist there',
  [RemoteExit.nodeMissing]:
    'node is not installed there (or not on PATH for non-interactive SSH; ssh.prelude can set PATH)',
  [RemoteExit.dtrainMissing]: 'dtrain is not installed there (set ssh.remote_dtrain to its path)',
  127: '/bin/sh could not run the agent command',
};

function exec(conn: SshConnection, command: string): Promise<ClientChannel> {
  return new Promise((resolve, reject) =>
    conn.client.exec(command, (err, channel) =>
      err
        ? reject(new StartError(`sshd refused to run a command: ${err.message}`, conn.target.alias))
        : resolve(channel),
    ),
  );
}

/**
 * `pipelined`: the controller's next message (the spec), written as soon as it resolves, without waiting for
 * the agent's hello: the agent reads it right after answering, so no round trip is spent and every agent
 * sets up while the others still start. A mismatched agent may get it before the refusal; it is closed then.
 */
export async function startAgentChannel(
  conn: SshConnection,
  launch: RemoteLaunch,
  controllerVersion: string,
  helloTimeoutMs: number,
  pipelined?: Promise<string>,
): Promise<AgentChannel> {
  const host = conn.target.alias;
  const channel = await exec(conn, remoteCommand);
  const exited = new Promise<AgentExit>((resolve) => {
    let result: AgentExit = { code: null, signal: null };
    channel.on(
      'exit',
      (code: number | null, signal?: string) => (result = { code: code ?? null, signal: signal ?? null }),
    );
    channel.on('close', () => resolve(result));
  });
  const tail = keepStderrTail(channel.stderr);

  channel.write(encodeHeader(launch));
  channel.write(controllerHelloLine(controllerVersion, helloTimeoutMs));
  let ended = false;
  channel.once('close', () => (ended = true));
  void pipelined?.then(
    (line) => void (ended || channel.write(line)),
    () => {},
  );

  // Whatever came after the hello belongs to the controller's reader: readAgentHello puts it back.
  const hello = await readAgentHello(channel, {
    timeoutMs: helloTimeoutMs,
    late: () => `the agent did not answer within ${helloTimeoutMs / 1000}s (slow ssh.prelude?)`,
    ended: async () => {
      const { code, signal } = await exited;
      const last = tail.lines[tail.lines.length - 1];
      if (last === preludeExitMarker)
        return `ssh.prelude exited the remote shell with code ${code ?? signal} (use a status, not exit, in a prelude)`;
      // no exit status at all: the connection went (a cut link, sshd gone), not the agent
      const why =
        code !== null
          ? (exitReasons[code] ?? `the agent exited with code ${code} before the version exchange`)
          : signal !== null
            ? `the agent was killed by ${signal}`
            : 'the SSH connection closed before the agent answered';
      const detail = last ? `: ${last}` : '';
      return `${why}${detail}`;
    },
    error: (message) => new StartError(message, host),
  }).catch((err: unknown) => {
    channel.end();
    channel.close();
    throw err;
  });
  tail.stop();
  // A flowing stream without listeners drops data: hold the agent's lines for whoever reads stderr next.
  channel.stderr.pause();

  if (hello.version !== controllerVersion) {
    channel.end();
    channel.close();
    throw new StartError(
      `dtrain version mismatch: the controller runs ${controllerVersion}, ${host} has ${hello.version} ` +
        `(${launch.dtrain}); install the same version on every node`,
      host,
    );
  }
  return { hello, stdin: channel, stdout: channel, stderr: channel.stderr, exited };
}
