// What every backend's dist shares (src/runtime/dist-core.ts), through the CPU backend's real init() in a
// world of one, which needs no store.
import t from 'tap';
import { init } from '../../../src/runtime/init.js';

t.test('newGroup and alloc refuse bad input with one line; stats names each group; close may repeat', async (t) => {
  const dist = await init({ DTRAIN_BACKEND: 'cpu' });
  t.teardown(() => dist.close());
  t.equal(dist.backend, 'cpu');
  t.equal(dist.device, undefined);
  await t.rejects(dist.newGroup([1]), { name: 'InitError', message: 'newGroup: 1 is not a rank of the world (0..0)' });
  await t.rejects(dist.newGroup([0, 0]), { name: 'InitError', message: 'newGroup: ranks [0, 0] repeat a rank' });
  await t.rejects(dist.newGroup([]), { message: 'newGroup: rank 0 is not in []; only members call it' });
  const first = await dist.newGroup([0]);
  const second = await dist.newGroup([0]);
  t.same([first.name, second.name], ['group0', 'group1'], 'named in call order, refused calls not counted');
  const buf = dist.alloc(Float32Array, 4);
  t.same([buf.length, buf.byteOffset], [4, 0]);
  t.throws(() => dist.alloc(Float32Array, -1), { message: 'alloc: length -1 is not a non-negative integer' });
  buf.fill(2);
  await first.allReduce(buf);
  t.same([...buf], [2, 2, 2, 2]);
  t.same(Object.keys(dist.stats()), ['world', 'data', 'pipeline', 'tensor', 'group0', 'group1']);
  await dist.close();
  await dist.close();
  t.not(await init({ DTRAIN_BACKEND: 'cpu' }), dist, 'after close, init builds a new dist');
  await (await init({})).close();
});
