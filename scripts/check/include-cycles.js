// Include cycles in addon/: headers that include each other, directly or through others, fail the lint.
// Quoted includes resolve against the including file's folder, then addon/src and addon/ (binding.gyp's
// include_dirs); system headers (<...>) are not followed.
import { existsSync, readFileSync } from 'node:fs';
import { dirname, join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import { cppSources } from './cpp-sources.js';

const root = fileURLToPath(new URL('../..', import.meta.url));
const files = cppSources(root);
const edges = new Map();
for (const file of files) {
  const text = readFileSync(join(root, file), 'utf8');
  const targets = [];
  for (const m of text.matchAll(/^\s*#\s*include\s+"([^"]+)"/gm)) {
    const found = [dirname(file), 'addon/src', 'addon']
      .map((base) => join(base, m[1]))
      .find((candidate) => existsSync(join(root, candidate)));
    if (found) targets.push(relative('.', found));
  }
  edges.set(file, targets);
}

// Depth-first search with three colours; a grey node met again closes a cycle.
const state = new Map();
const cycles = [];
function visit(node, path) {
  state.set(node, 'grey');
  path.push(node);
  for (const next of edges.get(node) ?? []) {
    if (state.get(next) === 'grey') cycles.push([...path.slice(path.indexOf(next)), next]);
    else if (!state.has(next)) visit(next, path);
  }
  path.pop();
  state.set(node, 'black');
}
for (const file of files) if (!state.has(file)) visit(file, []);

for (const cycle of cycles) console.error(`include cycle: ${cycle.join(' -> ')}`);
if (cycles.length) process.exit(1);
console.log(`include-cycles: ${files.length} files, no cycle`);
