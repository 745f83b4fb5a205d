// Fixed ports that are taken are a clear start failure (exit 3), never a hang.
import { createServer, type Server } from 'node:net';
import t from 'tap';
import { built, runDtrain, tempDir } from '../../helpers/launch.js';

const skip = !built() && 'run npx tsc -p . first';

function occupy(t: { teardown(fn: () => void): void }): Promise<number> {
  return new Promise((resolve) => {
    const s: Server = createServer().listen(0, '0.0.0.0', () => resolve((s.address() as { port: number }).port));
    t.teardown(() => s.close());
  });
}

t.test('master.port taken: exit 3 naming the key', { skip }, async (t) => {
  const dir = tempDir(t);
  const port = await occupy(t);
  const r = await runDtrain(
    ['launch', '--nproc-per-node', '2', '--master-port', String(port), '--set', `logs.dir=${dir}/logs`, '--', 'true'],
    { cwd: dir },
  );
  t.equal(r.code, 3, r.stderr);
  t.match(r.stderr, new RegExp(`master\\.port: port ${port} is already in use`));
  t.notMatch(r.stderr, /\n\s+at /, 'no stack trace');
});

t.test('rendezvous.port taken: exit 3', { skip }, async (t) => {
  const dir = tempDir(t);
  const port = await occupy(t);
  const r = await runDtrain(
    [
      'launch',
      '--nproc-per-node',
      '1',
      '--set',
      `rendezvous.port=${port}`,
      '--set',
      'rendezvous.addr=0.0.0.0',
      '--set',
      `logs.dir=${dir}/logs`,
      '--',
      'true',
    ],
    { cwd: dir },
  );
  t.equal(r.code, 3, r.stderr);
  t.match(r.stderr, String(port));
  t.notMatch(r.stderr, /\n\s+at /, 'no stack trace');
});
