// The one duration grammar (src/config/duration.ts): the config, --set and the worker environment all read it.
import t from 'tap';
import { DURATION_PATTERN, formatDuration, parseDuration } from '../../../src/config/duration.js';
import { configSchema } from '../../../src/config/schema.js';
import { parseDurationMs } from '../../../src/runtime/worker-env.js';

t.test('spellings', async (t) => {
  const cases: [string | number, number][] = [
    ['90s', 90_000],
    ['250ms', 250],
    ['5m', 300_000],
    ['1h', 3_600_000],
    ['1h30m', 5_400_000],
    ['2m30s500ms', 150_500],
    ['1.5s', 1500],
    ['0.5', 500],
    ['300', 300_000],
    [' 30s ', 30_000],
    [45, 45_000],
    [0.25, 250],
    ['0s', 0],
  ];
  for (const [text, ms] of cases) {
    t.equal(parseDuration(text), ms, `config: ${JSON.stringify(text)}`);
    t.equal(parseDurationMs(String(text), 'X'), ms, `worker: ${JSON.stringify(text)}`);
  }
  for (const bad of ['', 'soon', '5 m', '1d', '-1s', 's', '1h 30m', '30s5', 'ms']) {
    t.equal(parseDuration(bad), undefined, `config refuses ${JSON.stringify(bad)}`);
    t.throws(() => parseDurationMs(bad, 'DTRAIN_COLLECTIVE_TIMEOUT'), {
      name: 'InitError',
      message: /^DTRAIN_COLLECTIVE_TIMEOUT=.* is not a duration/,
    });
  }
  t.equal(parseDuration(-1), undefined);
  t.equal(parseDuration(Infinity), undefined);
});

t.test("the schema's pattern is the parser's", async (t) => {
  t.equal(configSchema.$defs.duration.anyOf[1].pattern, DURATION_PATTERN);
});

t.test('formatDuration writes what parseDuration reads back exactly', async (t) => {
  const samples = [0, 1, 999, 1000, 1500, 59_999, 60_000, 90_000, 3_600_000, 5_400_000, 86_400_000, 3_600_001];
  // a fixed spread over 1 ms .. 10^9 ms (deterministic)
  for (let i = 1; i <= 200; i++) samples.push((i * 2_654_435_761) % 10 ** (1 + (i % 9)));
  for (const ms of samples) {
    t.equal(parseDuration(formatDuration(ms)), ms, `${ms} → ${formatDuration(ms)}`);
    t.equal(parseDurationMs(formatDuration(ms), 'X'), ms);
  }
  t.equal(formatDuration(5_400_000), '90m');
  t.equal(formatDuration(1500), '1500ms');
});
