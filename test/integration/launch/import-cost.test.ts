// What a plain `dtrain launch` loads besides its own bundle: the packages it resolves at run time, seen by
// an ESM resolve hook. Each package is modules to find, read and compile on every launch (execa alone is
// about 150, a third of a small launch's time), so the scheduler-only ones wait until a scheduler command
// runs.
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import t from 'tap';
import { built, runDtrain, tempDir } from '../../helpers/launch.js';

const skip = !built() && 'run npm run build:ts first';

/** Registers a resolve hook that appends every bare specifier (a package) to $DTRAIN_TEST_PACKAGES. */
const hooks = `
import { appendFileSync } from 'node:fs';
export async function resolve(specifier, context, next) {
  if (!/^(\\.|\\/|node:|file:|data:)/.test(specifier))
    appendFileSync(process.env.DTRAIN_TEST_PACKAGES, specifier + '\\n');
  return next(specifier, context);
}`;

t.test('a local launch resolves no scheduler-only package (execa)', { skip }, async (t) => {
  const dir = tempDir(t, 'imports');
  const seen = join(dir, 'packages.txt');
  writeFileSync(seen, '');
  const register = join(dir, 'register.mjs');
  writeFileSync(
    register,
    `import { register } from 'node:module';\n` +
      `register(${JSON.stringify('data:text/javascript,' + encodeURIComponent(hooks))});\n`,
  );
  const args = ['launch', '--nproc-per-node', '2', '--set', `logs.dir=${dir}/logs`, '--', '/bin/true'];
  // (tap puts its own hooks in every child too: their packages are in the list, never execa)
  const r = await runDtrain(args, {
    cwd: dir,
    env: { NODE_OPTIONS: `--import ${register}`, DTRAIN_TEST_PACKAGES: seen },
  });
  t.equal(r.code, 0, r.stderr);
  const packages = new Set(readFileSync(seen, 'utf8').split('\n').filter(Boolean));
  t.ok(packages.size > 0, `the hook saw the packages resolved: ${[...packages].join(', ')}`);
  t.notOk(packages.has('execa'), 'execa is not loaded');
});
