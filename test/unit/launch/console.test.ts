import { PassThrough } from 'node:stream';
import t from 'tap';
import { ConsoleSink, wantsColour } from '../../../src/launch/console.js';

t.test('prefixes every line with its rank (and host when several), one write per batch', async (t) => {
  const out = new PassThrough();
  const err = new PassThrough();
  const writes: string[] = [];
  out.on('data', (b: Buffer) => writes.push(b.toString()));
  const sink = new ConsoleSink({ out, err, colour: false, hostOf: (r) => (r < 2 ? 'a' : 'b') });
  sink.lines(3, 'stdout', Buffer.from('x\ny\n'));
  t.same(writes, ['[b rank 3] x\n[b rank 3] y\n']);
  const plain = new ConsoleSink({ out, err, colour: false });
  plain.lines(0, 'stdout', Buffer.from('z\n'));
  t.equal(writes[1], '[rank 0] z\n');
});

t.test('colour per rank only when asked', async (t) => {
  const out = new PassThrough();
  let text = '';
  out.on('data', (b: Buffer) => (text += b.toString()));
  new ConsoleSink({ out, err: out, colour: true }).lines(1, 'stderr', Buffer.from('q\n'));
  t.match(text, /^\x1b\[\d+m\[rank 1\]\x1b\[39m q\n$/);
  const tty = Object.assign(new PassThrough(), { isTTY: true });
  t.equal(wantsColour(tty, {}), true);
  t.equal(wantsColour(tty, { NO_COLOR: '1' }), false);
  t.equal(wantsColour(new PassThrough(), { FORCE_COLOR: '1' }), true);
  t.equal(wantsColour(tty, { FORCE_COLOR: '0' }), false);
  t.equal(wantsColour(new PassThrough(), {}), false);
});

t.test('a full stream reports backpressure and calls back on drain', async (t) => {
  const out = new PassThrough({ highWaterMark: 16 });
  const sink = new ConsoleSink({ out, err: out, colour: false });
  t.equal(sink.lines(0, 'stdout', Buffer.from('a long enough line to fill it\n')), false);
  const drained = new Promise<void>((r) => sink.onDrain('stdout', r));
  out.resume();
  await drained;
  t.pass('drain delivered');
});
