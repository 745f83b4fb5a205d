// hang_timeout on the agent side: what counts as a rank making progress.
import t from 'tap';
import { ProgressWatch } from '../../../src/launch/progress-watch.js';

t.test('output is progress until a rank reports steps; then only its reports and collectives count', async (t) => {
  const reports: number[][] = [];
  const reported = new Set([1]);
  const watch = new ProgressWatch(
    () => new Map(),
    (ranks) => reports.push(ranks),
    1000,
    () => null,
    (rank) => reported.has(rank),
  );
  t.teardown(() => watch.stop());
  watch.output(1);
  watch.output(2);
  await new Promise((r) => setTimeout(r, 400));
  t.same(reports, [[2]], 'rank 1 prints but reports steps: its output is not progress');
  reported.add(2);
  watch.output(2);
  await new Promise((r) => setTimeout(r, 400));
  t.same(reports, [[2]], 'once rank 2 reports, its output no longer counts either');
});
