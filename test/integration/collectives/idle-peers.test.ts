/**
 * A worker's peer listener is reachable by anyone who can reach its address: idle or slow connections
 * (a port scanner, a stuck client) must neither stall nor break group formation, and the listener binds
 * the address peers use (DTRAIN_SOCKET_IFNAME, else the interface routing to MASTER_ADDR), not every
 * interface.
 */
import t from 'tap';
import { networkInterfaces } from 'node:os';
import { fixture, runWorkers } from '../../helpers/collectives-harness.js';

t.test('idle connections to a peer port while groups form do not stall newGroup', async (t) => {
  const res = await runWorkers({
    nodes: [1, 1],
    script: fixture('idle-peers.mjs'),
    env: { COLL_IDLE_AT_ONCE: '4', DTRAIN_RENDEZVOUS_TIMEOUT: '30s' },
  });
  for (const r of res) {
    t.equal(r.report?.error, undefined, `rank ${r.rank}: ${r.report?.error} ${r.stderr.slice(-500)}`);
    t.equal(r.report?.sum, 3, `rank ${r.rank} reduced after the groups formed`);
    // An idle connection held the listener 5 s each before; a group forms in milliseconds without them.
    for (const ms of r.report?.groupMs ?? []) t.ok(ms < 3000, `rank ${r.rank}: a newGroup took ${ms} ms`);
  }
  t.ok(res[1].report?.idler?.bound?.length, 'the idler found the listener');
});

t.test('the peer listener binds the chosen address, not 0.0.0.0', async (t) => {
  // a non-loopback interface of this machine, when it has one: chosen by name, and by the route to MASTER_ADDR
  const [ifname, nic] =
    Object.entries(networkInterfaces())
      .flatMap(([name, addrs]) => (addrs ?? []).map((a) => [name, a] as const))
      .find(([, a]) => a.family === 'IPv4' && !a.internal) ?? [];
  const cases: [Record<string, string>, string][] = [
    [{}, '127.0.0.1'],
    [{ DTRAIN_SOCKET_IFNAME: 'lo' }, '127.0.0.1'],
    [{ MASTER_ADDR: '127.0.0.1' }, '127.0.0.1'],
    ...(nic
      ? ([
          [{ DTRAIN_SOCKET_IFNAME: `=${ifname}` }, nic.address],
          [{ DTRAIN_SOCKET_IFNAME: '^lo' }, nic.address],
          [{ MASTER_ADDR: nic.address }, nic.address],
        ] as [Record<string, string>, string][])
      : []),
  ];
  for (const [env, addr] of cases) {
    const res = await runWorkers({
      nodes: [1, 1],
      script: fixture('idle-peers.mjs'),
      env: { ...env, COLL_IDLE_AT_ONCE: '0' },
    });
    const idler = res[1].report?.idler;
    t.same(idler?.bound, [addr], `${JSON.stringify(env)}: bound to ${addr} only`);
    t.equal(idler?.endpoint?.replace(/:\d+$/, ''), addr, `${JSON.stringify(env)}: published where it listens`);
    t.equal(res[0].report?.sum, 3, `${JSON.stringify(env)}: the group works over it`);
  }
});

t.test('a DTRAIN_SOCKET_IFNAME that names no interface fails group formation with one clear line', async (t) => {
  const res = await runWorkers({
    nodes: [1, 1],
    script: fixture('init-only.mjs'),
    env: { DTRAIN_SOCKET_IFNAME: '=nosuchif0', DTRAIN_RENDEZVOUS_TIMEOUT: '5s' },
  });
  t.match(res[0].report.error, /DTRAIN_SOCKET_IFNAME==nosuchif0 matches no interface with an IPv4 address \(.*lo/);
});
