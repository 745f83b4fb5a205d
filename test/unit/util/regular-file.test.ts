import { execFileSync } from 'node:child_process';
import { mkdirSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import t from 'tap';
import { readRegularFile, readRegularFileSync } from '../../../src/util/regular-file.js';

const readers = [
  ['sync', async (p: string, max: number) => readRegularFileSync(p, max)],
  ['async', readRegularFile],
] as const;

for (const [name, read] of readers) {
  t.test(`${name}: a regular file, at most the bound; anything else refused at once`, async (t) => {
    const dir = t.testdir({ small: 'hello', big: 'x'.repeat(100_000) });
    t.equal((await read(join(dir, 'small'), 64)).toString(), 'hello');
    t.equal((await read(join(dir, 'big'), 1000)).length, 1000, 'cut at the bound');
    execFileSync('mkfifo', [join(dir, 'fifo')]);
    symlinkSync('/dev/urandom', join(dir, 'random'));
    mkdirSync(join(dir, 'folder'));
    // a FIFO nobody writes: a plain open would wait for a writer for good
    for (const f of ['fifo', 'random', 'folder'])
      await t.rejects(read(join(dir, f), 64), { code: 'ENOTREG', message: `${join(dir, f)} is not a regular file` });
    await t.rejects(read(join(dir, 'absent'), 64), { code: 'ENOENT' });
    writeFileSync(join(dir, 'empty'), '');
    t.equal((await read(join(dir, 'empty'), 64)).length, 0);
  });
}
