import { chmodSync, existsSync, statSync, symlinkSync } from 'node:fs';
import { join } from 'node:path';
import t from 'tap';
import { makeDirs, makeDirsSync } from '../../../src/util/make-dirs.js';

const both = [
  ['sync', async (dir: string, mode?: number) => makeDirsSync(dir, mode)],
  ['async', makeDirs],
] as const;

for (const [name, make] of both) {
  t.test(`${name}: makes the missing folders, parent first, each with the mode`, async (t) => {
    const root = t.testdir();
    chmodSync(root, 0o751);
    const deep = join(root, 'a', 'b', 'c');
    await make(deep, 0o700);
    for (const p of [join(root, 'a'), join(root, 'a', 'b'), deep]) t.equal(statSync(p).mode & 0o777, 0o700, p);
    t.equal(statSync(root).mode & 0o777, 0o751, 'an existing folder is left as it was');
    await make(deep);
    await make(join(root, 'a', '.', 'b', '..', 'b'));
    t.ok(existsSync(deep), 'existing folders (and . and ..) are no error');
  });

  t.test(`${name}: a parent that exists but cannot hold folders ends in its error, at once`, async (t) => {
    const root = t.testdir({ file: 'x' });
    symlinkSync(join(root, 'nowhere'), join(root, 'dangling'));
    await t.rejects(make(join(root, 'dangling', 'x')), { code: 'ENOENT' }, 'through a dangling link');
    await t.rejects(make(join(root, 'file', 'x')), { code: 'ENOTDIR' }, 'under a file');
    await t.rejects(make(join(root, 'file')), { code: 'EEXIST' }, 'a file where the folder should be');
    if (existsSync('/proc/self')) {
      // procfs answers ENOENT for any new name; Node's own recursive mkdir retries that forever.
      await t.rejects(make('/proc/dtrain-test-no-such/x'), { code: 'ENOENT', path: '/proc/dtrain-test-no-such' });
    }
  });
}
