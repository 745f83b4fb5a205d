import t from 'tap';
import { formatDuration, joinCommand, parseDuration, splitCommand } from '../../../src/config/index.js';
import { closest } from '../../../src/config/suggest.js';

t.test('entrypoints split like a shell, without expansion', async (t) => {
  t.same(splitCommand('python3 train.py --lr 1e-3'), ['python3', 'train.py', '--lr', '1e-3']);
  t.same(splitCommand(`node -e 'console.log("a b")' "x y" z\\ w`), ['node', '-e', 'console.log("a b")', 'x y', 'z w']);
  t.same(
    splitCommand('echo $HOME `id` *.py ; rm'),
    ['echo', '$HOME', '`id`', '*.py', ';', 'rm'],
    'nothing is expanded or interpreted',
  );
  t.same(splitCommand(`a "" '' "q\\"uote" "\\$x"`), ['a', '', '', 'q"uote', '$x']);
  t.same(splitCommand('  '), []);
  t.throws(() => splitCommand('a "b'), /unterminated double quote/);
  t.throws(() => splitCommand("a 'b"), /unterminated single quote/);
  t.throws(() => splitCommand('a \\'), /lone backslash/);
});

t.test('joinCommand quotes only what needs it, and round-trips', async (t) => {
  const argv = ['python3', 'train.py', '--name', "it's a run", '--x=1'];
  t.equal(joinCommand(argv), `python3 train.py --name 'it'\\''s a run' --x=1`);
  t.same(splitCommand(joinCommand(argv)), argv);
});

t.test('durations', async (t) => {
  t.equal(parseDuration('30s'), 30_000);
  t.equal(parseDuration('5m'), 300_000);
  t.equal(parseDuration('1h30m'), 5_400_000);
  t.equal(parseDuration('250ms'), 250);
  t.equal(parseDuration(1.5), 1500);
  t.equal(parseDuration('90'), 90_000);
  t.equal(parseDuration('5sec'), undefined);
  t.equal(parseDuration('s'), undefined);
  t.equal(parseDuration(-1), undefined);
  t.equal(formatDuration(30_000), '30s');
  t.equal(formatDuration(3_600_000), '1h');
  t.equal(formatDuration(90_000), '90s');
  t.equal(formatDuration(120_000), '2m');
  t.equal(formatDuration(1500), '1500ms');
});

t.test('did-you-mean picks a close key and nothing for a far one', async (t) => {
  t.equal(closest('tensr', ['data', 'tensor', 'pipeline']), 'tensor');
  t.equal(closest('pipleine', ['data', 'tensor', 'pipeline']), 'pipeline');
  t.equal(closest('zero', ['data', 'tensor', 'pipeline']), undefined);
});
