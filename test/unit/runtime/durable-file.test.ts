// writeFileDurably: what a reader can observe (fsync itself cannot be): the whole new content in a new file
// renamed over the old one (never the old file rewritten in place), and no tmp file left beside it.
import t from 'tap';
import { mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { writeFileDurably } from '../../../src/runtime/index.js';

const tmp = mkdtempSync(join(tmpdir(), 'dtrain-durable-'));
t.teardown(() => rmSync(tmp, { recursive: true, force: true }));

t.test('replaces the file whole (text or bytes) by rename, nothing left beside it', async (t) => {
  const path = join(tmp, 'latest.json');
  writeFileSync(path, 'old and longer than the new content\n');
  const old = statSync(path).ino;
  await writeFileDurably(path, '{"step": 3}\n');
  t.equal(readFileSync(path, 'utf8'), '{"step": 3}\n');
  t.not(statSync(path).ino, old, 'a new file renamed into place, not the old one rewritten');
  const bytes = new Uint8Array([0, 1, 2, 255]);
  await writeFileDurably(join(tmp, 'model.bin'), bytes);
  t.same([...readFileSync(join(tmp, 'model.bin'))], [...bytes]);
  t.same(readdirSync(tmp).sort(), ['latest.json', 'model.bin']);
});

t.test('a missing directory rejects with the cause', async (t) => {
  await t.rejects(writeFileDurably(join(tmp, 'nosuch/latest.json'), 'x'), { code: 'ENOENT' });
});
