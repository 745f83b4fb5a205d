import t from 'tap';
import { cutLongLines, lastLines, lastLineWith, LineSplitter, linesOf } from '../../../src/launch/line-split.js';

t.test('whole lines only, carried across chunks', async (t) => {
  const s = new LineSplitter();
  t.equal(s.push(Buffer.from('ab')), null);
  t.equal(s.push(Buffer.from('c\nde'))?.toString(), 'abc\n');
  t.equal(s.push(Buffer.from('f\ng\nh'))?.toString(), 'def\ng\n');
  t.equal(s.flush()?.toString(), 'h\n');
  t.equal(s.flush(), null);
});

t.test('a line over the cap is cut rather than held without bound', async (t) => {
  const s = new LineSplitter(8);
  t.equal(s.push(Buffer.from('0123')), null);
  t.equal(s.push(Buffer.from('456789'))?.toString(), '0123456789\n');
  t.equal(s.push(Buffer.from('x\n'))?.toString(), 'x\n');
});

t.test('multi-byte characters split across chunks stay intact', async (t) => {
  const s = new LineSplitter();
  const bytes = Buffer.from('héllo\n');
  t.equal(s.push(bytes.subarray(0, 2)), null);
  t.same(linesOf(s.push(bytes.subarray(2))!), ['héllo']);
});

t.test('lastLines and linesOf', async (t) => {
  const block = Buffer.from('a\nb\nc\nd\n');
  t.same(lastLines(block, 2), ['c', 'd']);
  t.same(lastLines(block, 10), ['a', 'b', 'c', 'd']);
  t.same(linesOf(block), ['a', 'b', 'c', 'd']);
  t.same(linesOf(Buffer.from('\n')), ['']);
});

t.test('lastLines cuts a line over its byte limit and says how long it was', async (t) => {
  const block = Buffer.from(`${'x'.repeat(10)}\nshort\n`);
  t.same(lastLines(block, 2, 5), ['xxxxx… [cut: 10 bytes]', 'short']);
});

t.test('cutLongLines cuts only the lines over the limit and names the file holding them whole', async (t) => {
  const block = Buffer.from(`ok\n${'a'.repeat(9)}\nfine\n${'\x01'.repeat(12)}\n`);
  t.equal(
    cutLongLines(block, 5, 'rank_3.err').toString(),
    'ok\naaaaa… [cut: 9 bytes, whole line in rank_3.err]\nfine\n' +
      `${'\x01'.repeat(5)}… [cut: 12 bytes, whole line in rank_3.err]\n`,
  );
  const small = Buffer.from('a\nbb\n');
  t.equal(cutLongLines(small, 5, 'f'), small, 'a block without long lines is passed on as it is');
});

t.test('lastLineWith: the last whole line holding a mark, cut at a bound', async (t) => {
  const block = Buffer.from('a timed out after 1\nb\nc timed out after 2 ms\nd\n');
  const mark = Buffer.from('timed out after ');
  t.equal(lastLineWith(block, mark), 'c timed out after 2 ms');
  t.equal(lastLineWith(block, mark, 5), 'c tim');
  t.equal(lastLineWith(Buffer.from('x\ny\n'), mark), undefined);
  t.equal(lastLineWith(Buffer.from('timed out after 3\n'), mark), 'timed out after 3', 'the first line of the block');
});
