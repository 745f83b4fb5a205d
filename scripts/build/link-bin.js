// Puts this package's own `dtrain` into node_modules/.bin, so that `npx dtrain ...` in a clone runs this
// checkout at once. Without it npx does not look at the project's own bin and installs a copy of the
// project into its cache first (minutes on a fresh machine).
import { existsSync, mkdirSync, readlinkSync, rmSync, symlinkSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
const binDir = join(root, 'node_modules', '.bin');
const link = join(binDir, 'dtrain');
const target = join('..', '..', 'bin', 'dtrain');
// Only for a clone with its own node_modules; an installed dtrain gets its bin link from npm itself.
if (existsSync(join(root, 'node_modules'))) {
  mkdirSync(binDir, { recursive: true });
  let current = null;
  try {
    current = readlinkSync(link);
  } catch {
    // no link yet
  }
  if (current !== target) {
    rmSync(link, { force: true });
    symlinkSync(target, link);
  }
}
