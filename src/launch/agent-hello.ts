/**
 * The controller's side of an agent's start, for every spawner that talks to the agent over its stdio (the SSH
 * channel, the srun step): the agent's last stderr lines, which explain an exit before the hello, and the
 * hello itself, the first line of its stdout.
 */
import type { Readable } from 'node:stream';
import { parseAgentHello, type AgentHello } from './agent-contract.js';

/** The last lines of a starting agent's stderr: enough for the line that says why it stopped. */
const TAIL_LINES = 5;

/** Keeps the last non-empty lines of `stderr` in `lines` until stop(). */
export function keepStderrTail(stderr: Readable): { lines: string[]; stop(): void } {
  const lines: string[] = [];
  const onData = (chunk: Buffer) => {
    lines.push(...chunk.toString('utf8').split('\n').filter(Boolean));
    lines.splice(0, Math.max(0, lines.length - TAIL_LINES));
  };
  stderr.on('data', onData);
  return { lines, stop: () => stderr.off('data', onData) };
}

export interface HelloWait {
  timeoutMs: number;
  /** why no line came within timeoutMs */
  late(): string;
  /** why the stream ended before the hello: settles once the agent's exit is known */
  ended(): Promise<string>;
  /** a reason that ends the wait when it comes (the program could not start) */
  failed?: Promise<string>;
  /** the error each reason, or a line that is no hello, becomes */
  error(message: string): Error;
}

/**
 * The agent's hello, read from `out`; whatever came after it is put back for the controller's reader, and `out`
 * is left paused with no listener of this wait.
 */
export function readAgentHello(out: Readable, wait: HelloWait): Promise<AgentHello> {
  return new Promise<AgentHello>((resolve, reject) => {
    let buffered = '';
    const timer = setTimeout(() => {
      cleanup();
      reject(wait.error(wait.late()));
    }, wait.timeoutMs);
    const onData = (chunk: Buffer) => {
      buffered += chunk.toString('utf8');
      const nl = buffered.indexOf('\n');
      if (nl < 0) return;
      cleanup();
      const first = buffered.slice(0, nl);
      const rest = buffered.slice(nl + 1);
      if (rest) out.unshift(Buffer.from(rest, 'utf8'));
      const parsed = parseAgentHello(first);
      if ('error' in parsed) reject(wait.error(parsed.error));
      else resolve(parsed.hello);
    };
    const onEnd = () => {
      cleanup();
      void wait.ended().then((why) => reject(wait.error(why)));
    };
    const cleanup = () => {
      clearTimeout(timer);
      out.off('data', onData);
      out.off('end', onEnd);
      out.pause();
    };
    out.on('data', onData);
    out.on('end', onEnd);
    void wait.failed?.then((why) => {
      cleanup();
      reject(wait.error(why));
    });
  });
}
