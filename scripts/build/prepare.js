// npm's install and prepare hooks: `install` builds the native addon (and the CUDA part), `prepare` the
// TypeScript; `npm run build` does both. `npx dtrain` inside a clone makes npm link the clone into its npx
// cache and run these hooks again, which would rebuild everything under a job that may be running: when the
// clone is already built, that second build is skipped. This is the one place a build is judged present:
// a launch compiles nothing (a missing dtrain-exec is a start error that names `npm rebuild dtrain`).
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
const part = process.argv[2];
const outputs = {
  addon: ['build/Release/dtrain_native.node', 'build/Release/dtrain-exec'],
  ts: ['dist/cli/main.js'],
}[part];
if (!outputs) {
  console.error('usage: prepare.js addon|ts');
  process.exit(2);
}
if (process.env.npm_command === 'exec' && outputs.every((f) => existsSync(join(root, f)))) process.exit(0);
const steps = part === 'addon' ? [['run', 'build:addon']] : [['run', 'build:ts']];
for (const args of steps) {
  const r = spawnSync('npm', args, { cwd: root, stdio: 'inherit' });
  if (r.status !== 0) process.exit(r.status ?? 1);
}
if (part === 'ts') await import('./link-bin.js');
