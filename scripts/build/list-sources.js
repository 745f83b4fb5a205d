// Lists the C++ sources of a folder (recursively) for binding.gyp, so adding a file needs no gyp edit.
// CommonJS-free on purpose: gyp runs this with plain `node`, and the package is "type": "module".
import { readdirSync } from 'node:fs';
import { join } from 'node:path';

function walk(dir) {
  return readdirSync(dir, { withFileTypes: true }).flatMap((e) =>
    e.isDirectory() ? walk(join(dir, e.name)) : /\.(cc|cpp)$/.test(e.name) ? [join(dir, e.name)] : [],
  );
}
process.stdout.write(walk(process.argv[2]).sort().join(' ') + '\n');
