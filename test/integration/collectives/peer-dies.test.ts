/**
 * A point-to-point peer dying never aborts the survivor (once, an exception escaped the progress
 * thread and std::terminate killed the process). Every pending send and receive to the dead rank
 * rejects promptly naming it, whether the rank exits (exit hooks tell its peers) or is SIGKILLed (only
 * the kernel knows), over shared memory and TCP, for small messages and for a send larger than the
 * shared-memory ring.
 */
import t from 'tap';
import { fixture, runWorkers } from '../../helpers/collectives-harness.js';

interface P2pResult {
  what: string;
  error: string | null;
  ms: number;
}

const layouts: Array<[string, number[]]> = [
  ['shm', [2]],
  ['tcp', [1, 1]],
];
const cases: Array<[mode: string, floats: number, expect: string[]]> = [
  ['recv', 16, ['recv']],
  ['both', 16, ['recv']], // the small send fits the ring/socket buffer and completes
  // more than the shared-memory ring (256 KiB) or the sockets' buffers (several MB) take, so the send
  // waits on the peer: 4 MB over shm, 32 MB over TCP
  ['send', 1_000_000, ['send']],
];
const sendFloats = (transport: string, floats: number) => (transport === 'tcp' && floats > 16 ? 8_000_000 : floats);

for (const [transport, nodes] of layouts) {
  for (const [mode, smallest, rejected] of cases) {
    const floats = sendFloats(transport, smallest);
    for (const how of ['exit', 'kill']) {
      t.test(`${transport}: ${mode} of ${floats} floats to a peer that dies (${how})`, async (t) => {
        const res = await runWorkers({
          nodes,
          script: fixture('p2p-peer-dies.mjs'),
          env: { P2P_MODE: mode, P2P_FLOATS: String(floats), P2P_HOW: how },
        });
        const [survivor, dead] = res;
        t.equal(dead.code ?? dead.signal, how === 'kill' ? 'SIGKILL' : 3, 'the peer died as asked');
        t.equal(survivor.signal, null, `the survivor was not killed by a signal: ${survivor.stderr.slice(-800)}`);
        t.equal(survivor.code, 0, survivor.stderr.slice(-800));
        t.notMatch(survivor.stderr, /terminate called/);
        const results: P2pResult[] = survivor.report.results;
        for (const what of rejected) {
          const r = results.find((x) => x.what === what);
          t.match(
            r?.error,
            new RegExp(`^${what} on group world \\(rank 0\\): rank 1 (died|closed its connection)`),
            `${what} names the dead rank`,
          );
          t.ok(r!.ms < 5000, `${what} failed after ${r!.ms} ms, long before the 300 s timeout`);
        }
      });
    }
  }
}

t.test('shm: a dead peer is noticed while the progress thread waits on another, live one', async (t) => {
  const res = await runWorkers({
    nodes: [3],
    script: fixture('p2p-peer-dies.mjs'),
    env: { P2P_MODE: 'mixed', P2P_FLOATS: '16', P2P_HOW: 'kill' },
  });
  const results: P2pResult[] = res[0].report.results;
  const dead = results.find((r) => r.what === 'recv')!;
  const live = results.find((r) => r.what === 'recv from live')!;
  t.match(dead.error, /rank 2 died/);
  t.ok(
    dead.ms < 1000,
    `the receive from the dead rank failed after ${dead.ms} ms, before the live rank's late send (1500 ms)`,
  );
  // The group is poisoned by the failure, so the live receive is refused or fails too; it must settle.
  t.ok(live.ms < 10000, `the receive from the live rank settled after ${live.ms} ms`);
  t.equal(res[1].code, 0, res[1].stderr.slice(-800));
});
