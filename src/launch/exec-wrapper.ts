/**
 * Where the per-worker shepherd `dtrain-exec` lives (addon/src/process/exec-wrapper.c explains what it
 * does). The addon build produces it next to the addon; when it is missing (an addon built before the
 * shepherd existed) it is compiled here once, with the same C compiler node-gyp used, into the same place.
 */
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, renameSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { StartError } from '../util/errors.js';

const root = fileURLToPath(new URL('../../', import.meta.url));
export const execWrapperPath = `${root}build/Release/dtrain-exec`;
const source = `${root}addon/src/process/exec-wrapper.c`;

/** The signal that makes dtrain-exec SIGKILL its worker and every descendant (SIGRTMIN + 1 on Linux/glibc). */
export const killAllSignal = 35;

let checked = false;

export function ensureExecWrapper(): string {
  if (checked || existsSync(execWrapperPath)) {
    checked = true;
    return execWrapperPath;
  }
  if (!existsSync(source)) throw new StartError(`dtrain-exec is missing (${execWrapperPath}) and so is its source; reinstall dtrain`);
  mkdirSync(`${root}build/Release`, { recursive: true });
  // A private name then rename: concurrent launches never run a half-written binary.
  const tmp = `${execWrapperPath}.${process.pid}.tmp`;
  try {
    execFileSync(process.env.CC ?? 'cc', ['-O2', '-o', tmp, source], { stdio: ['ignore', 'ignore', 'pipe'] });
    renameSync(tmp, execWrapperPath);
  } catch (err) {
    const detail = (err as { stderr?: Buffer }).stderr?.toString().trim().split('\n')[0] ?? (err as Error).message;
    throw new StartError(`cannot build dtrain-exec (${detail}); run npm run build:addon`);
  }
  checked = true;
  return execWrapperPath;
}
