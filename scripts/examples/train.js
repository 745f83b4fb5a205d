#!/usr/bin/env node
// The quickstart's entrypoint (configs/quickstart.yaml). The program is TypeScript in src/examples/train/
// (compiled with the rest of the package by `npm run build`, which `npm install` runs); this file only keeps
// the configs' `node scripts/examples/train.js` stable.
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

const program = new URL('../../dist/examples/train/main.js', import.meta.url);
if (!existsSync(fileURLToPath(program))) {
  console.error(
    'train: dist/examples/train/main.js is missing: build the package first (npm run build, or npx tsc -p .)',
  );
  process.exit(2);
}
await import(program.href);
