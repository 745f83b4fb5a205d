/**
 * Peer TCP connections are authenticated with the job key the store proxy hands out (challenge-response;
 * the key never crosses the wire): a rank whose key differs cannot join, and both sides say why instead
 * of hanging. With the right key the same layout works.
 */
import t from 'tap';
import { fixture, runWorkers } from '../../helpers/collectives-harness.js';

t.test('same key: two nodes connect and reduce', async (t) => {
  const res = await runWorkers({ nodes: [1, 1], script: fixture('init-only.mjs') });
  for (const r of res) {
    t.equal(r.report.error, null, `rank ${r.rank}: ${r.report.error}`);
    t.equal(r.report.sum, 3);
  }
});

t.test('a rank holding another key is refused, and the wait ends at the rendezvous timeout', async (t) => {
  const res = await runWorkers({
    nodes: [1, 1],
    script: fixture('init-only.mjs'),
    wrongPeerKeyOnNode: 1,
    env: { DTRAIN_RENDEZVOUS_TIMEOUT: '3s' },
  });
  const [zero, one] = [res[0].report, res[1].report];
  // rank 1 connects to rank 0 and checks rank 0's proof with its own (wrong) key
  t.match(one.error, /rank 0 .*could not prove it holds the job key: refusing the connection/);
  // rank 0 never gets a peer that proves the key: it stops waiting at the rendezvous timeout
  t.match(zero.error, /timed out after \d+ ms waiting for rank 1 to connect \(rendezvous timeout\)/);
  t.ok(zero.elapsedMs < 10_000, `rank 0 gave up after ${zero.elapsedMs} ms`);
});

t.test(
  'a peer that cannot prove the key is refused by the listening rank, which still accepts the real one',
  async (t) => {
    const res = await runWorkers({ nodes: [1, 1], script: fixture('impostor.mjs') });
    for (const r of res) {
      t.equal(r.code, 0, r.stderr.slice(-1000));
      t.equal(r.report?.sum, 3, `rank ${r.rank}: the real peers connected and reduced`);
    }
    t.same(
      res[1].report?.impostor,
      { challenged: true, accepted: false },
      "rank 0 challenged the impostor and closed without its 'A'",
      { reports: res.map((r) => r.report) },
    );
  },
);

t.test('a worker that never calls dist.close() still exits cleanly', async (t) => {
  const res = await runWorkers({ nodes: [2], script: fixture('init-only.mjs'), env: { COLL_NO_CLOSE: '1' } });
  for (const r of res) {
    t.equal(r.code, 0, `rank ${r.rank} exits 0: ${r.stderr.slice(-500)}`);
    t.equal(r.signal, null);
    t.equal(r.report.sum, 3);
  }
});
