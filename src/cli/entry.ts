/**
 * bin/dtrain's way in: dist/cli-bundle.js (scripts/build/bundle-cli.js: the CLI's modules in one file,
 * ~25 ms less start-up) while it matches the modules in dist/, else those modules as tsc built them.
 * `dtrain agent --stdio` takes dist/agent-bundle.js instead: the agent's modules only (cli/agent-entry.ts).
 * DTRAIN_NO_BUNDLE=1 always takes the modules.
 */
import { readFileSync, statSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

type Main = typeof import('./main.js');
type AgentEntry = typeof import('./agent-entry.js');

const dist = new URL('../', import.meta.url);

export async function run(argv: string[]): Promise<void> {
  restoreHeldEnvironment();
  if (argv.length === 2 && argv[0] === 'agent' && argv[1] === '--stdio') {
    const { agentMain } = bundleIsCurrent(dist, 'agent-bundle')
      ? await loadBundle<AgentEntry>('agent-bundle')
      : await import('./agent-entry.js');
    return agentMain();
  }
  const { main } = bundleIsCurrent() ? await loadBundle<Main>('cli-bundle') : await import('./main.js');
  await main(argv);
}

/** Every module the bundle was made from still has the mtime it had then (a later tsc changes them). */
export function bundleIsCurrent(dir: URL = dist, name: 'cli-bundle' | 'agent-bundle' = 'cli-bundle'): boolean {
  if (process.env.DTRAIN_NO_BUNDLE === '1') return false;
  try {
    const { inputs } = JSON.parse(readFileSync(fileURLToPath(new URL(`${name}.json`, dir)), 'utf8')) as {
      inputs: Record<string, number>;
    };
    statSync(fileURLToPath(new URL(`${name}.js`, dir)));
    return Object.entries(inputs).every(
      ([id, mtime]) => statSync(fileURLToPath(new URL(id, dir)), { throwIfNoEntry: false })?.mtimeMs === mtime,
    );
  } catch {
    return false;
  }
}

async function loadBundle<T>(name: string): Promise<T> {
  // A variable specifier: the bundle exists only after the build step.
  const bundle = (await import(new URL(`${name}.js`, dist).href)) as { loadMain(): Promise<T> };
  return bundle.loadMain();
}

/**
 * bin/dtrain's shell line held NODE_EXTRA_CA_CERTS back from this process (Node loads the file at start-up
 * and dtrain makes no TLS connection); put it back before anything can start a child.
 */
export function restoreHeldEnvironment(env: NodeJS.ProcessEnv = process.env): void {
  const held = env.DTRAIN_HELD_NODE_EXTRA_CA_CERTS;
  if (held === undefined) return;
  env.NODE_EXTRA_CA_CERTS = held;
  delete env.DTRAIN_HELD_NODE_EXTRA_CA_CERTS;
}
