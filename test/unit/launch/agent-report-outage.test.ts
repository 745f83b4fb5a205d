import t from 'tap';
import { oncePerOutage } from '../../../src/launch/agent-process.js';

t.test('a run of failed reports prints one line; a success re-arms it', async (t) => {
  const lines: string[] = [];
  const report = oncePerOutage((m) => lines.push(m));
  report.failed('connection reset');
  report.failed('connection reset');
  report.failed('socket closed');
  t.same(lines, ['connection reset'], 'one line for the whole outage');
  report.recovered();
  report.failed('socket closed');
  t.same(lines, ['connection reset', 'socket closed'], 'the next outage is reported again');
});
