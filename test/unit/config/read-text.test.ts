// readBoundedText: a config, hostfile or env_file is UTF-8; where it is not, the line and column of the first
// byte UTF-8 does not allow (decoded blindly, a Latin-1 'é' became an odd key or value).
import t from 'tap';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { readBoundedText, TextReadError } from '../../../src/config/read-text.js';

const tmp = mkdtempSync(join(tmpdir(), 'dtrain-read-text-'));
t.teardown(() => rmSync(tmp, { recursive: true, force: true }));

const file = (name: string, bytes: Buffer) => {
  const path = join(tmp, name);
  writeFileSync(path, bytes);
  return path;
};

t.test('UTF-8 text, U+FFFD and all, reads as it is', async (t) => {
  const text = 'entrypoint: x # ünïcödé \uFFFD 𝔘\nname: café\n';
  t.equal(readBoundedText(file('ok.yaml', Buffer.from(text))), text);
});

t.test('not UTF-8: one reason naming the line and column of the first bad byte', async (t) => {
  const cases: [string, Buffer, string][] = [
    ['latin-1', Buffer.concat([Buffer.from('entrypoint: x\nname: caf'), Buffer.from([0xe9, 0x0a])]), '2, column 10'],
    ['after U+FFFD', Buffer.concat([Buffer.from('a: \uFFFD é '), Buffer.from([0xc3])]), '1, column 8'],
    ['binary', Buffer.from([0xff, 0xfe, 0x00]), '1, column 1'],
  ];
  for (const [what, bytes, where] of cases) {
    const err = (() => {
      try {
        readBoundedText(file(`${what}.yaml`, bytes));
      } catch (e) {
        return e;
      }
      return undefined;
    })();
    t.type(err, TextReadError, what);
    t.equal((err as Error).message, `it is not UTF-8 text (line ${where}): save it as UTF-8`, what);
  }
});
