/**
 * The signal the agent sends a rank to have it write its stack (`dtrain stacks`, hang diagnosis), and the
 * Node side of it. SIGURG because its default action is to ignore it: a rank that installed no handler (a
 * shell wrapper, `python -I`, a Node program before init()) is not killed by being asked. Nothing else
 * sends it to a worker (only out-of-band TCP data on a socket the process claimed with F_SETOWN, which
 * neither gloo nor dtrain's collectives use), and dtrain never forwards it. The realtime signals were
 * the other candidates, but their default action terminates; SIGWINCH reaches a terminal's foreground jobs.
 */
import { constants } from 'node:os';
import { loadAddon } from './addon.js';

export const STACK_SIGNAL = 'SIGURG' as const;

interface StackAddon {
  process: { installStackSignal(signal: number, path: string): boolean };
}

/**
 * A Node rank: from init(), STACK_SIGNAL writes the main thread's JS stack to DTRAIN_STACK_FILE (the
 * addon interrupts V8, so a busy loop answers too; addon/src/process/js_stack.cc).
 */
export function installStackDump(env: NodeJS.ProcessEnv): void {
  const file = env.DTRAIN_STACK_FILE;
  if (!file) return;
  try {
    (loadAddon() as unknown as StackAddon).process.installStackSignal(constants.signals[STACK_SIGNAL], file);
  } catch {
    // no addon, no stacks: the agent says so for this rank
  }
}
