/**
 * Where the per-worker shepherd `dtrain-exec` lives (addon/src/process/exec-wrapper.c explains what it
 * does). It is built at install, with the addon (binding.gyp's executable target); nothing is compiled
 * while a job launches, so a missing one is a start failure that says how to build it.
 */
import { accessSync, constants } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { StartError } from '../util/errors.js';

export const execWrapperPath = fileURLToPath(new URL('../../build/Release/dtrain-exec', import.meta.url));

/** The signal that makes dtrain-exec SIGKILL its worker and every descendant (SIGRTMIN + 1 on Linux/glibc). */
export const killAllSignal = 35;

let found = false;

/** The shepherd's path; StartError (exit 3) when it is not built. */
export function ensureExecWrapper(): string {
  if (found) return execWrapperPath;
  try {
    accessSync(execWrapperPath, constants.X_OK);
  } catch {
    throw new StartError(
      `dtrain-exec is not built (${execWrapperPath}): run npm rebuild dtrain (npm run build in a checkout)`,
    );
  }
  found = true;
  return execWrapperPath;
}
