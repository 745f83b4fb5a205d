import t from 'tap';
import { Chalk } from 'chalk';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { main } from '../../../src/cli/main.js';
import { colorLevel } from '../../../src/cli/schedule.js';
import { planPipeline } from '../../../src/runtime/pipeline/schedule.js';
import { renderTimelineText } from '../../../src/runtime/pipeline/timeline-text.js';
import { renderTimelineSvg } from '../../../src/runtime/pipeline/timeline-svg.js';

/** Runs `dtrain ...` in this process and captures what it prints and the exit code it sets. */
async function dtrain(...argv: string[]) {
  let stdout = '';
  let stderr = '';
  const out = process.stdout.write.bind(process.stdout);
  const err = process.stderr.write.bind(process.stderr);
  process.stdout.write = (chunk: string) => ((stdout += chunk), true);
  process.stderr.write = (chunk: string) => ((stderr += chunk), true);
  const before = process.exitCode;
  process.exitCode = 0;
  try {
    await main(argv);
  } finally {
    process.stdout.write = out;
    process.stderr.write = err;
  }
  const code = process.exitCode;
  process.exitCode = before;
  return { stdout, stderr, code };
}

t.test('--json: one document with the contract fields', async (t) => {
  const r = await dtrain('schedule', '--kind', '1f1b', '--stages', '4', '--microbatches', '6', '--json');
  t.equal(r.code, 0);
  const doc = JSON.parse(r.stdout);
  t.same(Object.keys(doc), ['kind', 'stages', 'microbatches', 'virtual_stages', 'per_stage', 'bubble_fraction']);
  t.match(doc, { kind: '1f1b', stages: 4, microbatches: 6, virtual_stages: 1 });
  t.same(doc.per_stage[0].order, ['F0', 'F1', 'F2', 'F3', 'B0', 'F4', 'B1', 'F5', 'B2', 'B3', 'B4', 'B5']);
  t.same(
    doc.per_stage.map((s: { peak_in_flight: number }) => s.peak_in_flight),
    [4, 3, 2, 1],
  );
  t.equal(doc.bubble_fraction, 3 / 9);

  const inter = JSON.parse(
    (
      await dtrain(
        'schedule',
        '--kind',
        'interleaved-1f1b',
        '--stages',
        '2',
        '--microbatches',
        '4',
        '--virtual-stages',
        '2',
        '--json',
      )
    ).stdout,
  );
  t.equal(inter.virtual_stages, 2);
  t.equal(inter.per_stage[1].order[3], 'B0.1', 'interleaved labels carry the chunk');
  t.equal(inter.bubble_fraction, 1 / 9);
});

t.test('terminal timeline: a row per stage, idle units visible, no colour when NO_COLOR is set', async (t) => {
  const saved = { NO_COLOR: process.env.NO_COLOR, FORCE_COLOR: process.env.FORCE_COLOR };
  process.env.NO_COLOR = '1';
  delete process.env.FORCE_COLOR;
  t.teardown(() => Object.assign(process.env, saved));
  const r = await dtrain('schedule', '--kind', 'gpipe', '--stages', '3', '--microbatches', '2');
  t.equal(r.code, 0);
  t.notMatch(r.stdout, /\x1b\[/, 'no escape codes');
  const rows = r.stdout.split('\n').filter((l) => l.startsWith('stage '));
  t.equal(rows.length, 3);
  t.match(rows[0], /^stage 0 │F0 F1 ·/);
  t.match(rows[2], /^stage 2 │· {2}· {2}F0 F1 B0 {4}B1/);
  t.match(r.stdout, /bubble 50\.0% of the timeline/);
});

t.test('colour: chalk decides from the TTY and FORCE_COLOR, NO_COLOR turns it off', async (t) => {
  const saved = { NO_COLOR: process.env.NO_COLOR, FORCE_COLOR: process.env.FORCE_COLOR };
  t.teardown(() => Object.assign(process.env, saved));
  delete process.env.FORCE_COLOR;
  process.env.NO_COLOR = '1';
  t.equal(colorLevel(2), 0);
  process.env.NO_COLOR = '';
  t.equal(colorLevel(2), 2, 'an empty NO_COLOR does not count');
  process.env.NO_COLOR = '1';
  process.env.FORCE_COLOR = '1';
  t.equal(colorLevel(1), 1, 'an explicit FORCE_COLOR wins, as in Node itself');

  const plan = planPipeline({ kind: '1f1b', stages: 2, microbatches: 2 });
  const coloured = renderTimelineText(plan, { color: new Chalk({ level: 1 }), columns: 120 });
  t.match(coloured, /\x1b\[44m\x1b\[37mF0/, 'forward cells on blue');
  t.match(coloured, /\x1b\[42m\x1b\[30mB0/, 'backward cells on green');
});

t.test('a wide timeline is cut into bands that fit the terminal', async (t) => {
  const plan = planPipeline({ kind: '1f1b', stages: 4, microbatches: 32 });
  const text = renderTimelineText(plan, { color: new Chalk({ level: 0 }), columns: 80 });
  const lines = text.split('\n');
  t.ok(
    lines.every((l) => [...l].length <= 80),
    'no line wider than the terminal',
  );
  const rows = lines.filter((l) => l.startsWith('stage 0'));
  t.ok(rows.length > 1, `${rows.length} bands`);
  const units = rows.map((r) => r.slice('stage 0 │'.length).replace(/ {2}peak \d+$/, '')).join('');
  t.equal(units.length, plan.timeline.makespan * 4, 'the bands together hold the whole timeline');
});

t.test('--svg: one box per op labelled with its microbatch, a legend, the bubble in the title', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'dtrain-schedule-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const file = join(dir, 's.svg');
  const r = await dtrain('schedule', '--kind', '1f1b', '--stages', '4', '--microbatches', '8', '--svg', file, '--json');
  t.equal(r.code, 0);
  JSON.parse(r.stdout);
  const svg = readFileSync(file, 'utf8');
  t.match(svg, /^<svg xmlns="http:\/\/www.w3.org\/2000\/svg"/);
  t.match(svg, /<title>1f1b: 4 stages, 8 microbatches — bubble fraction 27\.3%<\/title>/);
  t.equal(svg.match(/class="op forward"/g)?.length, 32);
  t.equal(svg.match(/class="op backward"/g)?.length, 32);
  t.match(svg, /class="legend"[^]*forward[^]*backward[^]*idle/);
  const labels = [...svg.matchAll(/class="op forward">.*?<text[^>]*>(\d+)<\/text>/g)].map((m) => Number(m[1]));
  t.same(
    [...new Set(labels)].sort((a, b) => a - b),
    [0, 1, 2, 3, 4, 5, 6, 7],
  );
  const inter = renderTimelineSvg(
    planPipeline({ kind: 'interleaved-1f1b', stages: 2, microbatches: 2, virtualStages: 2 }),
  );
  t.match(inter, />1\.1<\/text>/, 'interleaved boxes say microbatch.chunk');
});

t.test('a pipeline too long for a terminal: planned in seconds, then one line, exit 2, no SVG written', async (t) => {
  // 200,000 stages: the simulation swept every stage until none moved (quadratic: minutes), and the
  // pictures spread every label into Math.max (a stack overflow, "internal error")
  const dir = mkdtempSync(join(tmpdir(), 'dtrain-schedule-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const svg = join(dir, 'long.svg');
  const started = Date.now();
  const r = await dtrain('schedule', '--kind', '1f1b', '--stages', '200000', '--microbatches', '1', '--svg', svg);
  t.equal(r.code, 2);
  t.equal(
    r.stderr,
    'dtrain: 200000 stages over 600000 time units is too large to draw in a terminal ' +
      '(at most 4000000 characters): --json prints the schedule\n',
  );
  t.equal(r.stdout, '');
  t.notOk(existsSync(svg), 'refused before the SVG is written');
  t.ok(Date.now() - started < 20_000, `took ${Date.now() - started} ms`);
  const json = await dtrain('schedule', '--kind', 'gpipe', '--stages', '1', '--microbatches', '400000', '--json');
  t.equal(json.code, 0, json.stderr);
  t.equal(JSON.parse(json.stdout).per_stage[0].order.length, 800000);
});

t.test('--svg naming a FIFO: one line, exit 2, when no process reads it; written through when one does', async (t) => {
  const { execFileSync, spawn } = await import('node:child_process');
  const dir = mkdtempSync(join(tmpdir(), 'dtrain-schedule-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const fifo = join(dir, 'pipe.svg');
  execFileSync('mkfifo', [fifo]);
  const args = ['schedule', '--kind', '1f1b', '--stages', '4', '--microbatches', '200', '--svg', fifo, '--json'];
  const none = await dtrain(...args);
  t.equal(none.code, 2);
  t.equal(none.stderr, `dtrain: cannot write --svg ${fifo}: a pipe no process reads\n`);
  t.match(JSON.parse(none.stdout), { exit_code: 2 }, 'with --json, the error as its one document');

  // a reader that is there: the whole picture (more than a pipe holds at once) reaches it
  const reader = spawn('cat', [fifo]);
  let got = '';
  reader.stdout.on('data', (b: Buffer) => (got += b.toString()));
  const ended = new Promise((r) => reader.on('close', r));
  await new Promise((r) => setTimeout(r, 300)); // cat has opened the pipe
  const read = await dtrain(...args);
  await ended;
  t.equal(read.code, 0, read.stderr);
  t.ok(got.length > 65536, `${got.length} bytes`);
  t.match(got, /<\/svg>\n?$/);
});

t.test('bad arguments: exit 2 and one line', async (t) => {
  const cases: [string[], RegExp][] = [
    [
      ['--kind', 'zigzag', '--stages', '2', '--microbatches', '2'],
      /^dtrain: schedule kind "zigzag" is not one of 1f1b, gpipe, interleaved-1f1b\n$/,
    ],
    [
      ['--kind', '1f1b', '--stages', '0', '--microbatches', '2'],
      /^dtrain: --stages must be a whole number >= 1, got "0"\n$/,
    ],
    [
      ['--kind', '1f1b', '--stages', 'four', '--microbatches', '2'],
      /^dtrain: --stages must be a whole number >= 1, got "four"\n$/,
    ],
    [['--kind', '1f1b', '--stages', '2'], /^dtrain: Missing required argument: microbatches\n$/],
    [
      ['--kind', 'interleaved-1f1b', '--stages', '4', '--microbatches', '6', '--virtual-stages', '2'],
      /multiple of stages/,
    ],
    [['--kind', '1f1b', '--stages', '2', '--microbatches', '2', '--virtual-stages', '3'], /need kind interleaved-1f1b/],
    [['--kind', '1f1b', '--stages', '2', '--stages', '3', '--microbatches', '2'], /--stages is given 2 times/],
    [
      ['--kind', '1f1b', '--stages', '2000', '--microbatches', '1000'],
      /^dtrain: 2000 stages × 1000 microbatches × 1 chunks is too large to draw \(at most 1000000\)\n$/,
    ],
    [
      ['--kind', '1f1b', '--stages', '2', '--microbatches', '2', '--svg', '/nonexistent-dir/x.svg'],
      /^dtrain: cannot write --svg \/nonexistent-dir\/x.svg: ENOENT\n$/,
    ],
  ];
  for (const [argv, msg] of cases) {
    const r = await dtrain('schedule', ...argv);
    t.equal(r.code, 2, argv.join(' '));
    t.match(r.stderr, msg);
    t.equal(r.stderr.trim().split('\n').length, 1, 'one line');
    t.equal(r.stdout, '');
  }
  const j = await dtrain('schedule', '--kind', '1f1b', '--stages', '0', '--microbatches', '2', '--json');
  t.equal(j.code, 2);
  t.match(JSON.parse(j.stdout), { exit_code: 2 }, '--json errors are still one JSON document');
});
