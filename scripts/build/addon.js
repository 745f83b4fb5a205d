// Builds the native addon with node-gyp (npm's bundled copy; no download: npm's nodedir points at
// the installed Node headers), then the optional CUDA part when nvcc is present.
import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..', '..');

function nodeGyp() {
  if (process.env.npm_config_node_gyp && existsSync(process.env.npm_config_node_gyp))
    return process.env.npm_config_node_gyp;
  const npmCli = process.env.npm_execpath;
  const candidates = [
    npmCli && join(dirname(npmCli), '..', 'node_modules', 'node-gyp', 'bin', 'node-gyp.js'),
    join(
      dirname(process.execPath),
      '..',
      'lib',
      'node_modules',
      'npm',
      'node_modules',
      'node-gyp',
      'bin',
      'node-gyp.js',
    ),
  ].filter(Boolean);
  const found = candidates.find((c) => existsSync(c));
  if (!found) throw new Error('node-gyp not found: it ships with npm; reinstall npm or set npm_config_node_gyp');
  return found;
}

const jobs = String(Math.max(1, Math.min(4, (await import('node:os')).availableParallelism())));
const r = spawnSync(process.execPath, [nodeGyp(), 'rebuild', '--release', '-j', jobs], { cwd: root, stdio: 'inherit' });
if (r.status !== 0) process.exit(r.status ?? 1);

const cudaBuild = join(root, 'scripts', 'build', 'cuda.js');
if (existsSync(cudaBuild)) {
  execFileSync(process.execPath, [cudaBuild], { cwd: root, stdio: 'inherit' });
}
