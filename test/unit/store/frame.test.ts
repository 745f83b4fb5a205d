import t from 'tap';
import {
  FrameError,
  FrameReader,
  Op,
  decodeBody,
  encodeBody,
  encodeFrame,
  frame,
  parseBoundedUint,
  parseInt64,
  serverHoldMs,
} from '../../../src/store/frame.js';

t.test('a body survives encode and decode, args byte for byte', async (t) => {
  const args = [Buffer.from('key'), Buffer.alloc(0), Buffer.from([0, 255, 10, 13]), 'ünï'];
  const m = decodeBody(encodeBody(Op.cas, 0xfffffffe, args));
  t.equal(m.code, Op.cas);
  t.equal(m.id, 0xfffffffe);
  t.same(
    m.args.map((a) => [...a]),
    args.map((a) => [...Buffer.from(a)]),
  );
});

t.test('malformed bodies throw FrameError', async (t) => {
  const good = encodeBody(Op.set, 7, ['k', 'v']);
  t.throws(() => decodeBody(good.subarray(0, 5)), FrameError, 'shorter than a header');
  t.throws(() => decodeBody(good.subarray(0, good.length - 1)), FrameError, 'argument runs past the end');
  t.throws(() => decodeBody(Buffer.concat([good, Buffer.of(0)])), FrameError, 'trailing byte');
  const lying = Buffer.from(good);
  lying.writeUInt32BE(0xffffffff, 6);
  t.throws(() => decodeBody(lying), FrameError, 'huge argument length');
  t.throws(
    () =>
      encodeBody(
        Op.check,
        1,
        Array.from({ length: 256 }, () => 'k'),
      ),
    FrameError,
    'argc fits a byte',
  );
});

t.test('the reader reassembles frames split at every byte and joined together', async (t) => {
  const bodies = [
    encodeBody(Op.get, 1, ['a', '0']),
    encodeBody(Op.ping, 2, []),
    encodeBody(Op.set, 3, ['b', 'x'.repeat(1000)]),
  ];
  const stream = Buffer.concat(bodies.map(frame));
  for (const step of [1, 3, 7, stream.length]) {
    const reader = new FrameReader(4096);
    const got: Buffer[] = [];
    for (let i = 0; i < stream.length; i += step) got.push(...reader.push(stream.subarray(i, i + step)));
    t.same(
      got.map((b) => b.toString('hex')),
      bodies.map((b) => b.toString('hex')),
      `chunks of ${step}`,
    );
    t.equal(reader.pending, 0);
  }
});

t.test('an oversized length is refused as soon as its 4 bytes arrive', async (t) => {
  const reader = new FrameReader(256);
  t.same(reader.push(Buffer.of(0, 0)), []);
  t.throws(() => reader.push(Buffer.of(1, 1)), /257 bytes exceeds the limit of 256/);
  t.same(new FrameReader(256).push(frame(Buffer.alloc(256))).length, 1, 'exactly the limit is fine');
});

t.test('numbers are canonical decimals', async (t) => {
  const i = (s: string) => parseInt64(Buffer.from(s));
  t.equal(i('0'), 0n);
  t.equal(i('-42'), -42n);
  t.equal(i('9223372036854775807'), 2n ** 63n - 1n);
  t.equal(i('-9223372036854775808'), -(2n ** 63n));
  for (const bad of ['', '-0', '+1', '01', '1.5', ' 1', '9223372036854775808', '1e3', '0x10', '-']) {
    t.equal(i(bad), undefined, JSON.stringify(bad));
  }
  const u = (s: string) => parseBoundedUint(Buffer.from(s), 100);
  t.equal(u('100'), 100);
  t.equal(u('101'), undefined);
  t.equal(u('-1'), undefined);
  t.equal(u('007'), undefined);
});

t.test('server hold time comes from the timeout argument of blocking ops', async (t) => {
  const b = (...a: string[]) => a.map((x) => Buffer.from(x));
  t.equal(serverHoldMs(Op.get, b('k', '1500')), 1500);
  t.equal(serverHoldMs(Op.wait, b('250', 'a', 'b')), 250);
  t.equal(serverHoldMs(Op.barrier, b('n', '4', '900')), 900);
  t.equal(serverHoldMs(Op.set, b('k', '1500')), 0);
  t.equal(serverHoldMs(Op.get, b('k', 'junk')), 0);
});

t.test('encodeFrame is frame(encodeBody); next() hands out bodies one at a time', async (t) => {
  const messages: [number, number, (Buffer | string)[]][] = [
    [Op.get, 1, ['k', '100']],
    [Op.ping, 2, []],
    [Op.set, 3, ['big', Buffer.alloc(70000, 7)]],
  ];
  const frames = messages.map(([code, id, args]) => encodeFrame(code, id, args));
  messages.forEach(([code, id, args], i) => t.same(frames[i], frame(encodeBody(code, id, args))));
  const reader = new FrameReader(1 << 20);
  const stream = Buffer.concat(frames);
  reader.add(stream.subarray(0, 5));
  t.equal(reader.next(), undefined, 'nothing whole yet');
  reader.add(stream.subarray(5, frames[0].length + frames[1].length + 10));
  t.same(decodeBody(reader.next()!).id, 1);
  t.same(decodeBody(reader.next()!).id, 2);
  t.equal(reader.next(), undefined);
  t.equal(reader.pending, 10);
  reader.add(stream.subarray(frames[0].length + frames[1].length + 10));
  t.same(decodeBody(reader.next()!).args[1], Buffer.alloc(70000, 7));
  t.equal(reader.next(), undefined);
  t.equal(reader.pending, 0);
});
