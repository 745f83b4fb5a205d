/**
 * Where the per-worker shepherd `dtrain-exec` lives (addon/src/process/exec-wrapper.c explains what it
 * does). `npm run build:addon` builds it with the addon (binding.gyp's executable target). A build
 * folder that lost it, or a source edited since, is repaired here with the system C compiler: one C
 * file, a fraction of a second, so a launch never fails for want of it while a compiler exists.
 */
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, renameSync, statSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { StartError } from '../util/errors.js';

const root = fileURLToPath(new URL('../../', import.meta.url));
export const execWrapperPath = `${root}build/Release/dtrain-exec`;
const source = `${root}addon/src/process/exec-wrapper.c`;

/** The signal that makes dtrain-exec SIGKILL its worker and every descendant (SIGRTMIN + 1 on Linux/glibc). */
export const killAllSignal = 35;

let checked = false;

export function ensureExecWrapper(): string {
  if (checked || upToDate()) {
    checked = true;
    return execWrapperPath;
  }
  if (!existsSync(source))
    throw new StartError(`dtrain-exec is missing (${execWrapperPath}) and so is its source; reinstall dtrain`);
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

/** Present, and not older than its source (a checkout with a newer shepherd rebuilds it). */
function upToDate(): boolean {
  if (!existsSync(execWrapperPath)) return false;
  try {
    return statSync(execWrapperPath).mtimeMs >= statSync(source).mtimeMs;
  } catch {
    return true; // no source shipped: use the binary as it is
  }
}
