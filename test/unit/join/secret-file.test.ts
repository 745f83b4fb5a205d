// The join secret file: hex key, owner-only permissions, one clear line (exit 2) otherwise.
import t, { type Test } from 'tap';
import { execFileSync } from 'node:child_process';
import { chmodSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { parseJoinAddress, readSecretFile } from '../../../src/launch/join/secret-file.js';

function file(t: Test, text: string, mode: number): string {
  const f = path.join(t.testdir({}), 'secret');
  writeFileSync(f, text);
  chmodSync(f, mode);
  return f;
}

t.test('a 0600 file of hex digits is the key (a trailing newline is fine)', async (t) => {
  const hex = 'ab'.repeat(32);
  t.same(readSecretFile(file(t, hex + '\n', 0o600)), Buffer.from(hex, 'hex'));
  t.equal(readSecretFile(file(t, 'CD'.repeat(16), 0o400)).length, 16);
});

t.test('loose permissions, a short or non-hex key, a missing file: exit 2 naming the file', async (t) => {
  const loose = file(t, 'ab'.repeat(32), 0o640);
  t.throws(() => readSecretFile(loose), {
    exitCode: 2,
    message: `secret file ${loose} is readable or writable by others (mode 0640): run chmod 600 ${loose}`,
  });
  t.throws(() => readSecretFile(file(t, 'ab'.repeat(15), 0o600)), {
    exitCode: 2,
    message: /expected the job key as at least 32 hex digits/,
  });
  t.throws(() => readSecretFile(file(t, 'not hex at all, but long enough to pass a length check', 0o600)), {
    name: 'UsageError',
    exitCode: 2,
  });
  t.throws(() => readSecretFile('/nonexistent/secret'), {
    exitCode: 2,
    message: 'secret file /nonexistent/secret: cannot read it (no such file)',
  });
});

t.test('a FIFO, a device or a huge file is refused at once, never waited on or read to its end', async (t) => {
  const fifo = path.join(t.testdir({}), 'secret');
  execFileSync('mkfifo', ['-m', '600', fifo]);
  for (const f of [fifo, '/dev/zero']) {
    const message = `secret file ${f}: cannot read it (not a regular file)`;
    t.throws(() => readSecretFile(f), { exitCode: 2, message });
  }
  t.throws(() => readSecretFile(file(t, 'ab'.repeat(4096), 0o600)), {
    exitCode: 2,
    message: /expected the job key/,
  });
});

t.test('--join addresses', async (t) => {
  t.same(parseJoinAddress('node0:29400'), { host: 'node0', port: 29400 });
  t.same(parseJoinAddress('[fe80::1]:1'), { host: 'fe80::1', port: 1 });
  for (const bad of ['node0', 'node0:', ':29400', 'node0:70000', 'a:b', 'fe80::1:29400']) {
    t.throws(() => parseJoinAddress(bad), { name: 'UsageError', exitCode: 2 }, bad);
  }
});
