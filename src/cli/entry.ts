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
type BundleName = 'cli-bundle' | 'agent-bundle';

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

/** Whether a bundle may stand in for the modules in dist/, and when not, why (one line). */
export type BundleFreshness = { current: true } | { current: false; why: string };

/**
 * The bundle freshness check: the bundle exists and every module it was made from still has the mtime it
 * had then (a later tsc rewrites them). A stale bundle is not an error: dtrain runs the modules as tsc
 * built them, only slower to start. Whether dtrain is installed at all is bin/dtrain's check (no dist/).
 */
export function bundleFreshness(dir: URL = dist, name: BundleName = 'cli-bundle'): BundleFreshness {
  if (process.env.DTRAIN_NO_BUNDLE === '1') return { current: false, why: 'DTRAIN_NO_BUNDLE=1' };
  let inputs: Record<string, number>;
  try {
    ({ inputs } = JSON.parse(readFileSync(fileURLToPath(new URL(`${name}.json`, dir)), 'utf8')) as {
      inputs: Record<string, number>;
    });
    statSync(fileURLToPath(new URL(`${name}.js`, dir)));
  } catch {
    return { current: false, why: `no ${name}.js and ${name}.json in ${fileURLToPath(dir)} (the build makes them)` };
  }
  for (const [id, mtime] of Object.entries(inputs)) {
    if (statSync(fileURLToPath(new URL(id, dir)), { throwIfNoEntry: false })?.mtimeMs !== mtime)
      return { current: false, why: `${id} changed since ${name}.js was made (npm run build:ts makes it again)` };
  }
  return { current: true };
}

export function bundleIsCurrent(dir: URL = dist, name: BundleName = 'cli-bundle'): boolean {
  return bundleFreshness(dir, name).current;
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
