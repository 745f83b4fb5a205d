// `--help` of every command wraps at word boundaries: the words of the help printed at a narrow and at the
// default width are exactly those printed at a width where nothing wraps.
import t from 'tap';
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

const entry = new URL('../../../dist/cli/entry.js', import.meta.url);

function help(args: string[], columns?: number): string {
  const code =
    (columns ? `process.stdout.columns = ${columns};` : '') +
    `const m = await import(${JSON.stringify(entry.href)}); await m.run(${JSON.stringify(args)});`;
  const r = spawnSync(process.execPath, ['--input-type=module', '-e', code], { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`dtrain ${args.join(' ')} exited ${r.status}: ${r.stderr}`);
  return r.stdout;
}

// yargs may set a right-aligned [type] flush against the text before it on a narrow terminal: not a broken word
const words = (text: string) =>
  text
    .split(/\s+|(?=\[)/)
    .filter(Boolean)
    .sort();

if (!existsSync(fileURLToPath(entry))) {
  t.plan(0, 'dist/ is not built: run `npm run build:ts`');
} else {
  t.test('no help output of any command breaks a word', async (t) => {
    const { commands } = (await import('../../../src/cli/commands.js')) as {
      commands: { command?: string | readonly string[] }[];
    };
    const names = commands.map((c) => String(c.command).split(' ')[0]);
    t.ok(names.includes('bench') && names.includes('launch'), names.join(' '));
    for (const args of [['--help'], ...names.map((n) => [n, '--help'])]) {
      const unwrapped = words(help(args, 10000));
      t.same(words(help(args)), unwrapped, `dtrain ${args.join(' ')} (not a terminal: 100 columns)`);
      t.same(words(help(args, 60)), unwrapped, `dtrain ${args.join(' ')} on a 60-column terminal`);
    }
  });

  t.test("on a terminal, help uses the terminal's width", async (t) => {
    const lines = help(['bench', '--help'], 60).split('\n');
    t.ok(
      lines.every((l) => l.length <= 60),
      lines.filter((l) => l.length > 60).join('\n') || 'every line fits 60 columns',
    );
    t.ok(
      help(['bench', '--help'], 200)
        .split('\n')
        .some((l) => l.length > 110),
      'a wide terminal gets wide lines',
    );
  });
}
