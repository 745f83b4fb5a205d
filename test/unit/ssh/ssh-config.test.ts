import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { homedir, tmpdir } from 'node:os';
import { join } from 'node:path';
import t from 'tap';
import { parseSshConfig, resolveHost } from '../../../src/launch/ssh/ssh-config.js';
import { defaultSshSettings, resolveTarget } from '../../../src/launch/ssh/target.js';
import { StartError } from '../../../src/util/errors.js';

const config = `
# global defaults come last in OpenSSH files, first value wins
Host gpu-*
  HostName %h.cluster.example
  User trainer
  IdentityFile ~/.ssh/cluster_key
Host gpu-7
  Port 2207
Host alias-a
  HostName=10.1.2.3
  Port 2222
  User alice
  IdentityFile "/keys/with space"
  IdentitiesOnly yes
  UserKnownHostsFile /tmp/kh
Match exec "false"
  User never
Host behind
  ProxyJump jumpuser@bastion:2200
Host bastion
  HostName 192.0.2.9
Host weird
  ProxyCommand nc %h %p
Host *
  User fallback
  IdentityFile ~/.ssh/id_default
`;

t.test('first value wins; IdentityFile accumulates; tokens and ~ expand', async (t) => {
  const blocks = parseSshConfig(config);
  const gpu = resolveHost(blocks, 'gpu-7');
  t.equal(gpu.hostName, 'gpu-7.cluster.example');
  t.equal(gpu.user, 'trainer');
  t.equal(gpu.port, 2207);
  t.same(gpu.identityFiles, [join(homedir(), '.ssh/cluster_key'), join(homedir(), '.ssh/id_default')]);
  const a = resolveHost(blocks, 'alias-a');
  t.equal(a.hostName, '10.1.2.3');
  t.equal(a.port, 2222);
  t.equal(a.user, 'alice', 'Match blocks are not applied');
  t.equal(a.identityFiles[0], '/keys/with space');
  t.equal(a.identitiesOnly, true);
  t.same(a.userKnownHostsFiles, ['/tmp/kh']);
  t.equal(resolveHost(blocks, 'other').user, 'fallback');
});

t.test('targets: node entry > ssh section > ~/.ssh/config', async (t) => {
  const blocks = parseSshConfig(config);
  const base = { ...defaultSshSettings };
  const a = resolveTarget({ host: 'alias-a' }, base, blocks, {});
  t.match(a, { alias: 'alias-a', hostName: '10.1.2.3', port: 2222, user: 'alice', knownHostsFiles: ['/tmp/kh'] });
  const b = resolveTarget(
    { host: 'alias-a', user: 'bob', port: 22 },
    { ...base, user: 'carol', identity_file: '/k' },
    blocks,
    {},
  );
  t.match(b, { port: 22, user: 'bob' });
  t.equal(b.identityFiles[0], '/k');
  t.equal(resolveTarget({ host: 'alias-a' }, { ...base, user: 'carol' }, blocks, {}).user, 'carol');
  t.equal(
    resolveTarget({ host: 'alias-a' }, base, blocks, { SSH_AUTH_SOCK: '/s' }).agentSocket,
    undefined,
    'IdentitiesOnly: no agent',
  );
  t.equal(resolveTarget({ host: 'gpu-1' }, base, blocks, { SSH_AUTH_SOCK: '/s' }).agentSocket, '/s');
  t.equal(resolveTarget({ host: 'x' }, { ...base, known_hosts: '/kh2' }, blocks, {}).knownHostsFiles[0], '/kh2');
});

t.test('ProxyJump hops resolve through the config; ProxyCommand is refused', async (t) => {
  const blocks = parseSshConfig(config);
  const target = resolveTarget({ host: 'behind', user: 'me' }, defaultSshSettings, blocks, {});
  t.equal(target.user, 'me');
  t.equal(target.jumps.length, 1);
  t.match(target.jumps[0], { alias: 'bastion', hostName: '192.0.2.9', user: 'jumpuser', port: 2200 });
  t.throws(() => resolveTarget({ host: 'weird' }, defaultSshSettings, blocks, {}), StartError);
  t.throws(() => resolveTarget({ host: 'weird' }, defaultSshSettings, blocks, {}), /weird: ProxyCommand/);
});

t.test('Include reads other files', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'dtrain-sshcfg-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  writeFileSync(join(dir, 'one.conf'), 'Host inc\n  HostName 10.9.9.9\n');
  const blocks = parseSshConfig(`Include ${dir}/*.conf\nHost *\n  User z\n`, dir);
  t.equal(resolveHost(blocks, 'inc').hostName, '10.9.9.9');
  t.equal(resolveHost(blocks, 'inc').user, 'z');
});
