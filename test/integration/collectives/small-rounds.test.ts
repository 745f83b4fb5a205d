/**
 * The small all-reduce alternates two shared-memory slots by round parity and skips the "has everyone
 * read my slot?" wait; these runs check that no rank ever overwrites a slot a slower peer still reads,
 * including when other ops (which use the control block and staging area) come in between.
 */
import t from 'tap';
import { fixture, runWorkers } from '../../helpers/collectives-harness.js';

for (const ranks of [2, 3, 4]) {
  t.test(
    `${ranks} ranks: back-to-back small all-reduces stay exact with skewed ranks and other ops between`,
    async (t) => {
      const res = await runWorkers({
        nodes: [ranks],
        script: fixture('small-rounds.mjs'),
        env: { SMALL_ROUNDS: ranks > 2 ? '1500' : '3000' },
        timeoutMs: 120_000,
      });
      for (const r of res) {
        t.equal(r.code, 0, r.stderr.slice(-800));
        t.same(r.report.failures, [], `rank ${r.rank}`);
        t.ok(r.report.checks > 10_000, `rank ${r.rank} made ${r.report.checks} checks`);
        t.ok(r.report.algorithms.includes('one-step'), 'the one-step path ran');
      }
    },
  );
}
