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

t.test('each stream decides its colour: a terminal gets colours, a file next to it does not', async (t) => {
  const saved = { NO_COLOR: process.env.NO_COLOR, FORCE_COLOR: process.env.FORCE_COLOR, TERM: process.env.TERM };
  delete process.env.NO_COLOR;
  delete process.env.FORCE_COLOR;
  process.env.TERM = 'xterm';
  t.teardown(() => {
    for (const [k, v] of Object.entries(saved))
      if (v === undefined) delete process.env[k];
      else process.env[k] = v;
  });
  const tty = Object.assign(new PassThrough(), { isTTY: true });
  const file = new PassThrough();
  let ttyText = '';
  let fileText = '';
  tty.on('data', (b: Buffer) => (ttyText += b.toString()));
  file.on('data', (b: Buffer) => (fileText += b.toString()));
  for (const [out, err] of [
    [file, tty],
    [tty, file],
  ] as const) {
    ttyText = fileText = '';
    const sink = new ConsoleSink({ out, err });
    sink.lines(0, 'stdout', Buffer.from('o\n'));
    sink.lines(0, 'stderr', Buffer.from('e\n'));
    t.match(ttyText, /^\x1b\[\d+m\[rank 0\]\x1b\[39m [oe]\n$/, 'the terminal is coloured');
    t.match(fileText, /^\[rank 0\] [oe]\n$/, 'the file is plain');
  }
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
