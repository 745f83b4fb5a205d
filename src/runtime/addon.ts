/**
 * The one place the native addon (build/Release/dtrain_native.node) is found and loaded. Every part of it
 * (collectives, optimizer kernels, process helpers, the CUDA part's loader, doctor's check) takes its typed
 * piece from `loadAddon()`, so DTRAIN_ADDON (another build: debug, sanitizer) reaches all of them alike.
 */
import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';

/**
 * DTRAIN_ADDON when set; else build/Release under the package root, two levels up from src/runtime (tests)
 * and dist/runtime (built, the bundles too: their import.meta.url is the module's own dist/ URL).
 */
export function addonPath(env: NodeJS.ProcessEnv = process.env): string {
  return env.DTRAIN_ADDON || fileURLToPath(new URL('../../build/Release/dtrain_native.node', import.meta.url));
}

/** The addon's exports, untyped: each part's module declares and checks the shape it uses. */
export type AddonExports = Record<string, unknown>;

const loaded = new Map<string, AddonExports>();

/** Loads the addon once per path; throws one line naming the path and how to build it. */
export function loadAddon(): AddonExports {
  const path = addonPath();
  const hit = loaded.get(path);
  if (hit) return hit;
  if (!existsSync(path))
    throw new Error(`dtrain native addon not built (${path}): run npm rebuild dtrain (npm run build in a checkout)`);
  const exports = createRequire(import.meta.url)(path) as AddonExports;
  loaded.set(path, exports);
  return exports;
}
