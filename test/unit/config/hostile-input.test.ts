// Configs that try to exhaust the parser, through the built CLI: each is a config error (exit 2, one line per
// problem, --json on stdout), bounded in size and time; pipes still work.
import t from 'tap';
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = fileURLToPath(new URL('../../../', import.meta.url));
if (!existsSync(join(root, 'dist/cli/main.js'))) {
  t.plan(0, 'dist/ is not built: run `npm run build:ts`');
} else {
  const tmp = mkdtempSync(join(tmpdir(), 'dtrain-hostile-'));
  t.teardown(() => rmSync(tmp, { recursive: true, force: true }));
  const bin = join(root, 'bin/dtrain');
  const dtrain = (...args: string[]) => {
    const r = spawnSync(process.execPath, [bin, ...args], {
      cwd: tmp,
      encoding: 'utf8',
      timeout: 60_000,
      maxBuffer: 64 << 20,
    });
    return { code: r.status, stdout: r.stdout, stderr: r.stderr };
  };
  writeFileSync(join(tmp, 'ok.yaml'), 'entrypoint: [node, train.js]\n');

  t.test('an alias bomb is a config error: exit 2, one located line, --json on stdout', async (t) => {
    const lines = ['entrypoint: [x]', 'a0: &a0 [x, x, x, x, x, x, x, x, x, x]'];
    for (let i = 1; i < 10; i++)
      lines.push(
        `a${i}: &a${i} [${Array(10)
          .fill(`*a${i - 1}`)
          .join(', ')}]`,
      );
    writeFileSync(join(tmp, 'bomb.yaml'), lines.join('\n') + '\n');
    let r = dtrain('validate', 'bomb.yaml');
    t.equal(r.code, 2);
    t.equal(r.stdout, '');
    t.match(r.stderr, /^bomb\.yaml:3:10: cannot read the YAML: .*alias bomb.*\n$/);
    t.notMatch(r.stderr, /\n.+\n/, 'one line, no stack trace');
    r = dtrain('validate', 'bomb.yaml', '--json');
    t.equal(r.code, 2);
    t.match(JSON.parse(r.stdout), { errors: [{ file: 'bomb.yaml', line: 3, col: 10, message: /alias bomb/ }] });
  });

  t.test('an alias with no anchor before it is named, at the alias (not taken for an alias bomb)', async (t) => {
    writeFileSync(join(tmp, 'alias.yaml'), 'name: t\nentrypoint: *undefined_alias\n');
    let r = dtrain('validate', 'alias.yaml');
    t.equal(r.code, 2);
    t.equal(
      r.stderr,
      'alias.yaml:2:13: cannot read the YAML: ' +
        'alias *undefined_alias is not defined (no anchor &undefined_alias before it)\n',
    );
    // an anchor after its alias does not define it
    writeFileSync(join(tmp, 'late.yaml'), 'entrypoint: [*x]\nx-a: &x y\n');
    r = dtrain('validate', 'late.yaml');
    t.equal(r.code, 2);
    t.match(r.stderr, /^late\.yaml:1:14: cannot read the YAML: alias \*x is not defined/);
    r = dtrain('validate', 'ok.yaml', '--set', 'name=*nope');
    t.equal(r.code, 2);
    t.equal(
      r.stderr,
      '--set name=*nope: name: the value is not valid YAML: alias *nope is not defined (no anchor &nope before it)\n',
    );
  });

  t.test('a list, mapping or alias as a key: one located line, no warning from Node', async (t) => {
    writeFileSync(join(tmp, 'key.yaml'), 'name: t\nentrypoint: "true"\n? [a,b]\n: c\n');
    let r = dtrain('validate', 'key.yaml');
    t.equal(r.code, 2);
    t.equal(r.stderr, 'key.yaml:3:3: a key must be a string (a name), not a list, a mapping or an alias\n');
    writeFileSync(join(tmp, 'key2.yaml'), 'entrypoint: [x]\nenv: {? {a: 1}: b}\nx-a: &k K\nx-b: {*k : v}\n');
    r = dtrain('validate', 'key2.yaml');
    t.equal(r.code, 2);
    t.equal(
      r.stderr,
      [
        'key2.yaml:2:9: a key must be a string (a name), not a list, a mapping or an alias',
        'key2.yaml:4:7: a key must be a string (a name), not a list, a mapping or an alias',
        '',
      ].join('\n'),
    );
    // every key is read as a string: 1 and "1" are one key, as in the object the config becomes
    writeFileSync(join(tmp, 'key3.yaml'), 'entrypoint: [x]\nx-a: {1: a, "1": b}\n');
    r = dtrain('validate', 'key3.yaml');
    t.equal(r.code, 2);
    t.equal(r.stderr, 'key3.yaml:2:13: x-a.1: duplicate key "1": each key may appear once in a mapping\n');
    r = dtrain('validate', 'ok.yaml', '--set', 'name={[a]: b}');
    t.equal(r.code, 2);
    t.equal(
      r.stderr,
      '--set name={[a]: b}: name: the value is not valid YAML: ' +
        'a key must be a string (a name), not a list, a mapping or an alias\n',
    );
  });

  t.test('a key holding a newline or terminal escapes: one line, written as \\uXXXX, never sent raw', async (t) => {
    writeFileSync(join(tmp, 'esc.yaml'), 'entrypoint: [x]\n"\\e]0;title\\a\\e[2J": 1\n"a\\nb": 2\n');
    const r = dtrain('validate', 'esc.yaml');
    t.equal(r.code, 2);
    t.equal(
      r.stderr,
      'esc.yaml:2:1: \\u001b]0;title\\u0007\\u001b[2J: unknown key\nesc.yaml:3:1: a\\u000ab: unknown key\n',
    );
    t.notMatch(r.stderr, /\x1b|\x07/, 'no control character reaches the terminal');
    const set = dtrain('validate', 'ok.yaml', '--set', 'x\x1b[2J=1');
    t.equal(set.code, 2);
    t.equal(set.stderr, '--set x\\u001b[2J=1: x\\u001b[2J: unknown key\n');
    const json = dtrain('validate', 'esc.yaml', '--json');
    t.same(
      JSON.parse(json.stdout).errors.map((e: { path: string }) => e.path),
      ['\x1b]0;title\x07\x1b[2J', 'a\nb'],
      '--json keeps the key as it is (JSON escapes it)',
    );
  });

  t.test('nesting deeper than 100 levels: one located line, before the parser recurses', async (t) => {
    writeFileSync(join(tmp, 'deep.yaml'), `a: ${'['.repeat(100_000)}\n`);
    let r = dtrain('validate', 'deep.yaml');
    t.equal(r.code, 2);
    t.equal(r.stderr, 'deep.yaml:1:103: cannot read the YAML: lists and mappings nest more than 100 levels deep\n');
    // 100 levels are read (the top-level mapping is one); the 101st, a block list here, is refused at its dash
    writeFileSync(join(tmp, 'deep100.yaml'), `entrypoint: [x]\nx-a: ${'['.repeat(99)}x${']'.repeat(99)}\n`);
    r = dtrain('validate', 'deep100.yaml');
    t.equal(r.code, 0, r.stderr);
    writeFileSync(join(tmp, 'deep101.yaml'), `entrypoint: [x]\nx-a:\n  ${'- '.repeat(100)}x\n`);
    r = dtrain('validate', 'deep101.yaml');
    t.equal(r.code, 2);
    t.equal(r.stderr, 'deep101.yaml:3:201: cannot read the YAML: lists and mappings nest more than 100 levels deep\n');
    r = dtrain('validate', 'ok.yaml', '--set', `name=${'{a: '.repeat(200)}`);
    t.equal(r.code, 2);
    t.match(
      r.stderr,
      /^--set name=\{a: .*: name: the value is not valid YAML: lists and mappings nest more than 100 levels deep\n$/,
    );
  });

  t.test('devices and directories are refused before any read; more than 4 MiB is refused', async (t) => {
    let r = dtrain('validate', '/dev/zero');
    t.equal(r.code, 2);
    t.equal(r.stderr, '/dev/zero: cannot read the config: it is a device, not a file or a pipe\n');
    mkdirSync(join(tmp, 'dir.yaml'));
    r = dtrain('validate', 'dir.yaml');
    t.equal(r.stderr, 'dir.yaml: cannot read the config: it is a directory\n');
    t.equal(r.code, 2);
    writeFileSync(join(tmp, 'huge.yaml'), `entrypoint: [x]\n#${'x'.repeat(4 * 1024 * 1024)}\n`);
    r = dtrain('validate', 'huge.yaml');
    t.equal(r.code, 2);
    t.equal(r.stderr, 'huge.yaml: cannot read the config: it is larger than 4 MiB, the most dtrain reads\n');
    writeFileSync(join(tmp, 'hosts.yaml'), 'entrypoint: [x]\nhostfile: /dev/zero\n');
    r = dtrain('validate', 'hosts.yaml');
    t.equal(r.code, 2);
    t.match(r.stderr, /^hosts\.yaml:2:11: hostfile: cannot read \/dev\/zero: it is a device, not a file or a pipe\n$/);
    writeFileSync(join(tmp, 'hostfile'), `a slots=1\n#${'x'.repeat(4 * 1024 * 1024)}\n`);
    writeFileSync(join(tmp, 'hosts2.yaml'), 'entrypoint: [x]\nhostfile: hostfile\n');
    r = dtrain('validate', 'hosts2.yaml');
    t.equal(r.code, 2);
    t.match(r.stderr, /hostfile: cannot read hostfile: it is larger than 4 MiB/);
  });

  t.test(
    'pipes work: process substitution, a FIFO whose writer comes late; a FIFO nobody writes is refused',
    async (t) => {
      const sh = (script: string) =>
        new Promise<{ code: number | null; out: string }>((resolve) => {
          const c = spawn('bash', ['-c', script], { cwd: tmp });
          let out = '';
          c.stdout.on('data', (d: Buffer) => (out += d.toString()));
          c.stderr.on('data', (d: Buffer) => (out += d.toString()));
          c.on('close', (code) => resolve({ code, out }));
        });
      const d = `${JSON.stringify(process.execPath)} ${JSON.stringify(bin)}`;
      let r = await sh(`${d} validate <(sleep 0.5; cat ok.yaml)`);
      t.equal(r.code, 0, r.out);
      r = await sh(`mkfifo f1 && { sleep 1; cat ok.yaml > f1; } & ${d} validate f1; c=$?; wait; exit $c`);
      t.equal(r.code, 0, r.out);
      r = await sh(`mkfifo f2 && ${d} validate f2`);
      t.equal(r.code, 2, r.out);
      t.equal(r.out, 'f2: cannot read the config: no process opened the pipe for writing within 5 s\n');
    },
  );

  t.test('40,000 keys, many repeated: every repeat reported with its path (one pass, not one per pair)', async (t) => {
    const body = Array.from({ length: 40_000 }, (_, i) => `  K${i % 20_000}: v\n`).join('');
    writeFileSync(join(tmp, 'dups.yaml'), `entrypoint: [x]\nenv:\n${body}`);
    const r = dtrain('validate', 'dups.yaml');
    t.equal(r.code, 2);
    const lines = r.stderr.trim().split('\n');
    t.equal(lines.length, 20_000);
    t.equal(lines[0], 'dups.yaml:20003:3: env.K0: duplicate key "K0": each key may appear once in a mapping');
  });

  t.test('an env value over what exec takes: validate names it at its line, not its value', async (t) => {
    const big = 'x'.repeat(131_072);
    writeFileSync(join(tmp, 'bigvar.yaml'), `entrypoint: ["true"]\nenv:\n  SMALL: "1"\n  HUGE_TOKEN: "${big}"\n`);
    const one = dtrain('validate', 'bigvar.yaml');
    t.equal(one.code, 2);
    t.match(one.stderr, /^bigvar\.yaml:4:3: env\.HUGE_TOKEN: 131084 bytes as NAME=value: exec takes at most 131072 /);
    t.equal(one.stderr.trim().split('\n').length, 1, 'one line');
    t.notMatch(one.stderr, /xxxx/, 'not the value');
  });

  // many variables, each within the limit, over ARG_MAX together (where the stack limit keeps it near 2 MiB)
  const argMax = Number(spawnSync('getconf', ['ARG_MAX'], { encoding: 'utf8' }).stdout);
  t.test(
    'a launch whose environment is too large for exec says why, naming the largest variable, not its value',
    { skip: !(argMax > 0 && argMax < 3_000_000) && `getconf ARG_MAX is ${argMax}: the total would fit` },
    async (t) => {
      const vars = Array.from({ length: 32 }, (_, i) => `  V${i}: "${'y'.repeat(100_000 + i)}"\n`).join('');
      writeFileSync(join(tmp, 'manyvars.yaml'), `entrypoint: ["true"]\nnproc_per_node: 1\nbackend: cpu\nenv:\n${vars}`);
      const t0 = Date.now();
      const r = dtrain('launch', 'manyvars.yaml', '--set', `logs.dir=${join(tmp, 'logs')}`);
      t.equal(r.code, 3, 'exit 3: the workers could not start');
      t.ok(Date.now() - t0 < 30_000, 'no wait');
      t.match(
        r.stderr,
        /rank 0: cannot start: its command line and environment are too large for exec \(E2BIG\): \d+ KiB in \d+ arguments and \d+ variables, the largest V31 \(98 KiB\)/,
      );
      t.notMatch(r.stderr, /yyyy/, 'no value shown');
    },
  );
}
