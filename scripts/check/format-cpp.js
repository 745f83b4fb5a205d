// clang-format over addon/ (.clang-format): `--write` formats in place, otherwise any difference fails.
import { execFileSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { cppSources } from './cpp-sources.js';

const root = fileURLToPath(new URL('../..', import.meta.url));
const files = cppSources(root);
const args = process.argv.includes('--write') ? ['-i'] : ['--dry-run', '--Werror'];
try {
  execFileSync('clang-format', [...args, ...files], { cwd: root, stdio: 'inherit' });
} catch (err) {
  if (err.code === 'ENOENT') console.error('format-cpp: clang-format is not installed (apt-get install clang-format)');
  process.exit(1);
}
