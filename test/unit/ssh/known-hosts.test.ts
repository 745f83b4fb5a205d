import { createHmac, randomBytes } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t from 'tap';
import {
  checkHostKey,
  hostFieldMatches,
  hostKeyName,
  keyTypeOfBlob,
  KnownHostsFile,
  parseKnownHosts,
} from '../../../src/launch/ssh/known-hosts.js';

function blob(type: string, body: string): Buffer {
  const t = Buffer.from(type);
  const len = Buffer.alloc(4);
  len.writeUInt32BE(t.length);
  return Buffer.concat([len, t, Buffer.from(body)]);
}
const keyA = blob('ssh-ed25519', 'key-a');
const keyB = blob('ssh-ed25519', 'key-b');
const rsa = blob('ssh-rsa', 'key-r');
const b64 = (k: Buffer) => k.toString('base64');

function hashed(name: string): string {
  const salt = randomBytes(20);
  return `|1|${salt.toString('base64')}|${createHmac('sha1', salt).update(name).digest('base64')}`;
}

t.test('names: port 22 is bare, other ports are bracketed', async (t) => {
  t.equal(hostKeyName('node-a', 22), 'node-a');
  t.equal(hostKeyName('10.0.0.1', 2222), '[10.0.0.1]:2222');
  t.equal(keyTypeOfBlob(keyA), 'ssh-ed25519');
});

t.test('patterns, negation and hashed names', async (t) => {
  t.ok(hostFieldMatches('node-a,10.0.0.1', 'node-a'));
  t.ok(hostFieldMatches('node-*', 'node-b'));
  t.ok(hostFieldMatches('node-?', 'node-c'));
  t.notOk(hostFieldMatches('node-?', 'node-cc'));
  t.notOk(hostFieldMatches('node-*,!node-bad', 'node-bad'), 'negation wins');
  t.ok(hostFieldMatches(hashed('[h1]:2222'), '[h1]:2222'));
  t.notOk(hostFieldMatches(hashed('[h1]:2222'), 'h1'));
});

t.test('verdicts: match, changed, unknown, revoked', async (t) => {
  const entries = parseKnownHosts(
    [
      '# comment',
      `node-a ${'ssh-ed25519'} ${b64(keyA)}`,
      `${hashed('[node-b]:2222')} ssh-ed25519 ${b64(keyA)}`,
      `node-c ssh-rsa ${b64(rsa)}`,
      `@revoked * ssh-ed25519 ${b64(blob('ssh-ed25519', 'stolen'))}`,
      `@cert-authority *.example ssh-ed25519 ${b64(keyB)}`,
      'garbage',
    ].join('\n'),
  );
  t.equal(entries.length, 5);
  t.same(checkHostKey(entries, ['node-a'], keyA), { kind: 'match', line: 2 });
  t.same(checkHostKey(entries, ['node-a'], keyB), { kind: 'changed', line: 2, keyType: 'ssh-ed25519' });
  t.same(checkHostKey(entries, ['[node-b]:2222'], keyA), { kind: 'match', line: 3 });
  t.same(checkHostKey(entries, ['node-b'], keyA), { kind: 'unknown', otherTypes: [] }, 'the port is part of the name');
  t.same(checkHostKey(entries, ['node-c'], keyA), { kind: 'unknown', otherTypes: ['ssh-rsa'] });
  t.same(checkHostKey(entries, ['x.example'], keyB), { kind: 'unknown', otherTypes: [] }, 'CA lines are not host keys');
  t.same(checkHostKey(entries, ['node-a'], blob('ssh-ed25519', 'stolen')), { kind: 'revoked', line: 5 });
});

t.test('accept-new appends serialized lines that are found afterwards', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'dtrain-kh-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const path = join(dir, 'sub', 'known_hosts');
  const file = await KnownHostsFile.load(path);
  const keys = Array.from({ length: 20 }, (_, i) => blob('ssh-ed25519', `k${i}`));
  await Promise.all(keys.map((k, i) => file.add(`h${i}`, k)));
  const lines = readFileSync(path, 'utf8').trim().split('\n');
  t.equal(lines.length, 20, 'one whole line per host');
  const reloaded = await KnownHostsFile.load(path);
  keys.forEach((k, i) => t.equal(reloaded.check([`h${i}`], k).kind, 'match'));
});
