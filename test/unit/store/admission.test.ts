import t from 'tap';
import { randomBytes } from 'node:crypto';
import {
  PreAuthQueue,
  minPreAuthBudget,
  preAuthBudget,
  preAuthBudgetFor,
  preAuthShareOfOpenFiles,
} from '../../../src/store/admission.js';
import { openFileLimit } from '../../../src/store/open-files.js';
import { StoreServer } from '../../../src/store/server.js';

t.test('the unauthenticated budget: the backlog, at most a quarter of the open files, at least 64', async (t) => {
  t.equal(preAuthBudgetFor(undefined), preAuthBudget, 'a limit not known: the full budget');
  t.equal(preAuthBudgetFor(1_048_576), preAuthBudget, 'a high limit: the full budget');
  t.equal(preAuthBudgetFor(4 * preAuthBudget), preAuthBudget);
  t.equal(preAuthBudgetFor(8192), 8192 * preAuthShareOfOpenFiles, 'a lower limit: its quarter');
  t.equal(preAuthBudgetFor(1024), 256, "the usual 1,024: strangers leave three quarters to the job's agents");
  t.equal(preAuthBudgetFor(100), minPreAuthBudget, 'never below the floor');
  t.ok(preAuthBudget >= 1000, 'a burst of a thousand agents fits');
});

t.test('a full queue evicts its oldest; those that left no longer count', async (t) => {
  const q = new PreAuthQueue<string>(3);
  t.equal(q.admit('a'), undefined);
  t.equal(q.admit('b'), undefined);
  t.equal(q.admit('c'), undefined);
  t.equal(q.admit('d'), 'a', 'the oldest goes');
  q.leave('b'); // authenticated
  t.equal(q.size, 2);
  t.equal(q.admit('e'), undefined, 'room again');
  t.equal(q.admit('f'), 'c');
  t.equal(q.size, 3);
});

t.test('the store sizes its budget by its own open-file limit', async (t) => {
  const limit = openFileLimit();
  t.ok(limit !== undefined && limit > 0, `this process may open ${limit} files`);
  const server = await StoreServer.start({ jobKey: randomBytes(32) });
  t.teardown(() => server.close());
  t.equal(server.options.maxUnauthenticated, preAuthBudgetFor(limit));
  const chosen = await StoreServer.start({ jobKey: randomBytes(32), maxUnauthenticated: 8 });
  t.teardown(() => chosen.close());
  t.equal(chosen.options.maxUnauthenticated, 8, 'an explicit budget wins');
});
