// The rendering half of scripts/bench/performance.mjs: the SVG line chart and the generated part of
// docs/performance.md, from given results (no benchmark runs here).
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import t from 'tap';
// @ts-expect-error: a plain ESM bench script without type declarations
import { formatBytes, lineChart, logTicks } from '../../../scripts/bench/svg-chart.mjs';
// @ts-expect-error: a plain ESM bench script without type declarations
import * as perfDoc from '../../../scripts/bench/perf-doc.mjs';

const { BEGIN_MARKER, END_MARKER, generatedSections, markdownTable, replaceGenerated, updateSections } = perfDoc;

/** The path data of each series, by name, as [x, y] pixel pairs. */
function seriesPaths(svg: string): Map<string, number[][]> {
  const out = new Map<string, number[][]>();
  for (const m of svg.matchAll(/<path class="series" data-series="([^"]*)" d="([^"]*)"/g)) {
    const points = [...m[2].matchAll(/[ML](-?[\d.]+) (-?[\d.]+)/g)].map((p) => [Number(p[1]), Number(p[2])]);
    out.set(m[1], points);
  }
  return out;
}

const tickPositions = (svg: string, axis: 'x' | 'y') =>
  [
    ...svg.matchAll(
      new RegExp(`<g class="${axis}-tick" data-value="([^"]+)"><line x1="([\\d.]+)" y1="([\\d.]+)"`, 'g'),
    ),
  ].map((m) => ({ value: Number(m[1]), px: Number(axis === 'x' ? m[2] : m[3]) }));

t.test('a chart has one path per series, its points in x order, and a legend entry for each', async (t) => {
  const svg: string = lineChart({
    title: 'launch',
    x: { label: 'workers', log: true, ticks: [4, 16, 64, 256] },
    y: { label: 'ms' },
    series: [
      // given out of order: the path must still run left to right
      {
        name: 'dtrain launch',
        points: [
          [64, 300],
          [4, 100],
          [256, 900],
          [16, 150],
        ],
      },
      {
        name: 'mpirun',
        points: [
          [4, 80],
          [16, 120],
          [64, 400],
          [256, 1500],
        ],
      },
    ],
  });
  const paths = seriesPaths(svg);
  t.same([...paths.keys()], ['dtrain launch', 'mpirun']);
  for (const [name, pts] of paths) {
    t.equal(pts.length, 4, `${name}: one point per x`);
    for (let i = 1; i < pts.length; i++) t.ok(pts[i][0] > pts[i - 1][0], `${name}: point ${i} right of point ${i - 1}`);
  }
  // higher values are drawn higher (smaller y pixel): dtrain's 100 → 150 → 300 → 900 rises
  const d = paths.get('dtrain launch')!;
  for (let i = 1; i < d.length; i++) t.ok(d[i][1] < d[i - 1][1], 'y grows upwards');
  t.equal([...svg.matchAll(/<g class="legend">/g)].length, 2, 'a legend entry per series');
  t.match(svg, /class="x-label"[^>]*>workers \(log scale\)</);
  t.match(svg, /class="y-label"[^>]*>ms</);
  t.match(svg, /^<svg xmlns="http:\/\/www.w3.org\/2000\/svg"/);
  t.match(svg, /<\/svg>\n$/);
});

t.test('a log axis spaces powers evenly; its ticks are where the data is', async (t) => {
  t.same(logTicks(1, 1000), [1, 10, 100, 1000]);
  t.same(logTicks(3, 900), [1, 10, 100, 1000], 'the decades around the data');
  t.same(logTicks(2, 30), [1, 10, 100]);
  t.same(logTicks(2, 8), [1, 2, 5, 10], 'fewer than three decades: 2× and 5× fill in');
  t.same(logTicks(0.04, 3), [0.01, 0.1, 1, 10]);
  t.throws(() => logTicks(0, 10), /0 < min/);

  const svg: string = lineChart({
    title: 'busbw',
    x: { label: 'size', log: true, ticks: [4096, 65536, 1048576, 16777216], format: formatBytes },
    y: { label: 'GB/s', log: true },
    series: [
      {
        name: 'a',
        points: [
          [4096, 0.04],
          [65536, 0.5],
          [1048576, 2],
          [16777216, 3],
        ],
      },
    ],
  });
  const xs = tickPositions(svg, 'x');
  t.same(
    xs.map((x) => x.value),
    [4096, 65536, 1048576, 16777216],
  );
  const gaps = xs.slice(1).map((x, i) => x.px - xs[i].px);
  for (const g of gaps) t.ok(Math.abs(g - gaps[0]) < 0.05, `equal factors, equal gaps (${g} vs ${gaps[0]})`);
  t.match(svg, />4 KiB</);
  t.match(svg, />16 MiB</);
  const ys = tickPositions(svg, 'y').map((y) => y.value);
  t.same(ys, [0.01, 0.1, 1, 10], 'log y ticks cover the data (0.04 to 3)');
  // the point at x = 65536 sits on its tick
  const p = seriesPaths(svg).get('a')!;
  t.ok(Math.abs(p[1][0] - xs[1].px) < 0.05, 'a point lies on the tick of its x');
});

t.test('a linear axis starts at zero; names are escaped', async (t) => {
  const svg: string = lineChart({
    title: 'a < b & c',
    x: { label: 'world' },
    y: { label: 'samples/s' },
    series: [
      {
        name: 'PyTorch <DDP>',
        points: [
          [1, 1200],
          [2, 2100],
          [4, 3300],
        ],
      },
    ],
  });
  t.equal(tickPositions(svg, 'y')[0].value, 0);
  t.ok(tickPositions(svg, 'y').at(-1)!.value >= 3300, 'the top tick is at or above the largest value');
  t.match(svg, /data-series="PyTorch &lt;DDP&gt;"/);
  t.match(svg, /<title>a &lt; b &amp; c<\/title>/);
  t.throws(
    () =>
      lineChart({
        title: 'x',
        x: { label: 'x', log: true },
        y: { label: 'y' },
        series: [{ name: 's', points: [[0, 1]] }],
      }),
    /x > 0/,
  );
});

t.test('markdown tables escape pipes and have a separator row', async (t) => {
  t.equal(markdownTable(['a', 'b'], [['1', 'x|y']]), '| a | b |\n|---|---|\n| 1 | x\\|y |');
});

const handWritten = ['# Performance', '', '## Method', '', 'Hand-written text that must stay.', ''].join('\n');

t.test('the generated part is replaced and the hand-written text kept', async (t) => {
  const first: string = replaceGenerated(`${handWritten}\nAfter the figures, also hand-written.\n`, 'old figures');
  // no markers yet: appended after everything
  t.ok(first.startsWith(handWritten));
  t.match(first, /After the figures, also hand-written\.\n\n<!-- BEGIN/);
  const moved = first.replace('After the figures, also hand-written.\n', '') + '\nA closing remark.\n';
  const second: string = replaceGenerated(moved, 'new figures');
  t.ok(second.startsWith(handWritten), 'text before the markers kept');
  t.ok(second.endsWith('\nA closing remark.\n'), 'text after the markers kept');
  t.match(second, /new figures/);
  t.notMatch(second, /old figures/);
  t.equal(second.split(BEGIN_MARKER).length, 2);
  t.equal(second.split(END_MARKER).length, 2);
  t.equal(replaceGenerated(second, 'new figures'), second, 'a rerun with the same figures changes nothing');
  t.throws(() => replaceGenerated(`${BEGIN_MARKER}\n${BEGIN_MARKER}\n${END_MARKER}`, 'x'), /exactly one/);
  t.throws(() => replaceGenerated(`${END_MARKER}\n${BEGIN_MARKER}`, 'x'), /exactly one/);
});

t.test('a run of some figures keeps the other figures as they were', async (t) => {
  const missing = (id: string) => `### (${id}) not run yet`;
  const all: string = updateSections(
    handWritten,
    'intro',
    ['a', 'b', 'c'],
    new Map([
      ['a', 'A1'],
      ['b', 'B1'],
      ['c', 'C1'],
    ]),
    missing,
  );
  const some: string = updateSections(all, 'intro', ['a', 'b', 'c'], new Map([['b', 'B2']]), missing);
  t.same(Object.fromEntries(generatedSections(some)), { a: 'A1', b: 'B2', c: 'C1' });
  t.ok(some.startsWith(handWritten));
  const fresh: string = updateSections(handWritten, 'intro', ['a', 'b'], new Map([['b', 'B1']]), missing);
  t.equal(generatedSections(fresh).get('a'), '### (a) not run yet');
});

t.test('the committed docs/performance.md has one pair of markers and the method text', async (t) => {
  const doc = readFileSync(fileURLToPath(new URL('../../../docs/performance.md', import.meta.url)), 'utf8');
  t.equal(doc.split(BEGIN_MARKER).length, 2);
  t.equal(doc.split(END_MARKER).length, 2);
  t.ok(doc.indexOf(BEGIN_MARKER) > doc.indexOf('## Method'), 'the hand-written method comes first');
  t.match(doc, /node scripts\/bench\/performance\.mjs/);
});
