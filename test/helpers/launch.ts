/** Runs the real `dtrain` CLI (built: dist/) for the launch integration tests, and small process probes. */
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

export const root = fileURLToPath(new URL('../../', import.meta.url));
export const dtrainBin = join(root, 'bin/dtrain');
export const fixtures = join(root, 'test/fixtures/launch');

export function built(): boolean {
  return existsSync(join(root, 'dist/cli/main.js')) && existsSync(join(root, 'dist/launch/controller.js'));
}

export interface Run {
  child: ChildProcess;
  done: Promise<{ code: number | null; signal: NodeJS.Signals | null; stdout: string; stderr: string; ms: number }>;
}

export function startDtrain(
  args: string[],
  opts: { cwd: string; env?: Record<string, string>; stdoutPipe?: boolean } = { cwd: root },
): Run {
  const t0 = Date.now();
  const child = spawn(process.execPath, [dtrainBin, ...args], {
    cwd: opts.cwd,
    env: { ...process.env, NO_COLOR: '1', FORCE_COLOR: undefined, ...opts.env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let stdout = '';
  let stderr = '';
  if (!opts.stdoutPipe) child.stdout.on('data', (b: Buffer) => (stdout += b.toString()));
  child.stderr.on('data', (b: Buffer) => (stderr += b.toString()));
  const done = new Promise<Awaited<Run['done']>>((resolve) =>
    child.on('close', (code, signal) => resolve({ code, signal, stdout, stderr, ms: Date.now() - t0 })),
  );
  return { child, done };
}

export function runDtrain(args: string[], opts?: { cwd: string; env?: Record<string, string> }) {
  return startDtrain(args, opts).done;
}

export function tempDir(t: { teardown(fn: () => void): void }, label = 'launch'): string {
  const dir = mkdtempSync(join(tmpdir(), `dtrain-test-${label}-`));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

export function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    // a zombie still answers kill(0): it has exited, only not been reaped
    return !/^State:\s+Z/m.test(readFileSync(`/proc/${pid}/status`, 'utf8'));
  } catch {
    return false;
  }
}

export async function waitFor(cond: () => boolean, ms: number): Promise<boolean> {
  const end = Date.now() + ms;
  while (Date.now() < end) {
    if (cond()) return true;
    await new Promise((r) => setTimeout(r, 50));
  }
  return cond();
}

/** A config file for the tests: YAML text written under dir. */
export function yamlConfig(lines: string[]): string {
  return lines.join('\n') + '\n';
}
