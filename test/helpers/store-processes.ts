/** Child processes for store integration tests: the stand-in agents and workers of test/helpers. */
import { spawn, type ChildProcess } from 'node:child_process';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const helpers = path.dirname(fileURLToPath(import.meta.url));

/** Runs test/helpers/<script> in a Node child (TypeScript, transpiled), stdin and stdout piped. */
export function node(script: string, env: NodeJS.ProcessEnv = {}): ChildProcess {
  return spawn(process.execPath, ['--import=@tapjs/typescript/import', path.join(helpers, script)], {
    stdio: ['pipe', 'pipe', 'inherit'],
    env: { ...process.env, TS_NODE_TRANSPILE_ONLY: '1', ...env },
  });
}

/** The first match of `pattern` in the child's stdout, waiting up to timeoutMs. */
export function line(p: ChildProcess, pattern: RegExp, timeoutMs = 30000): Promise<string> {
  return new Promise((resolve, reject) => {
    let out = '';
    const timer = setTimeout(() => reject(new Error(`no ${pattern} within ${timeoutMs} ms; got ${out}`)), timeoutMs);
    p.stdout!.on('data', (d: Buffer) => {
      out += d.toString();
      const m = out.match(pattern);
      if (m) {
        clearTimeout(timer);
        resolve(m[0]);
      }
    });
  });
}

export async function until(what: string, cond: () => boolean, timeoutMs = 10000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!cond()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting until ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

export const exited = (p: ChildProcess) =>
  new Promise<number | null>((r) =>
    p.exitCode !== null || p.signalCode !== null ? r(p.exitCode) : p.once('exit', (code) => r(code)),
  );
