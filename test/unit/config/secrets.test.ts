// Secrets through the built CLI: never echoed in a message (text or --json), masked by name, by secret_env and
// in URLs, a saved config holding them is owner-only, and a monitor.token_file is checked as validate reads it.
import t from 'tap';
import { spawnSync } from 'node:child_process';
import { chmodSync, existsSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = fileURLToPath(new URL('../../../', import.meta.url));
if (!existsSync(join(root, 'dist/cli/main.js'))) {
  t.plan(0, 'dist/ is not built: run `npm run build:ts`');
} else {
  const tmp = mkdtempSync(join(tmpdir(), 'dtrain-secrets-'));
  t.teardown(() => rmSync(tmp, { recursive: true, force: true }));
  const dtrain = (...args: string[]) => {
    const r = spawnSync(process.execPath, [join(root, 'bin/dtrain'), ...args], {
      cwd: tmp,
      encoding: 'utf8',
      env: { ...process.env, NO_COLOR: '1' },
      timeout: 60_000,
    });
    return { code: r.status, out: r.stdout + r.stderr, stdout: r.stdout, stderr: r.stderr };
  };
  const job = (name: string, env: string, extra = '') => {
    writeFileSync(
      join(tmp, name),
      `entrypoint: [${JSON.stringify(process.execPath)}, -e, "0"]\nnproc_per_node: 1\nbackend: cpu\n` +
        `${extra}env:\n${env}`,
    );
    return name;
  };

  t.test('a NUL in a secret value is a config error naming the key, never the value (text and --json)', async (t) => {
    const f = job('nul.yaml', '  HF_TOKEN: "sesame\\0open"\n');
    for (const json of [false, true]) {
      const r = dtrain('launch', f, ...(json ? ['--json'] : []));
      t.equal(r.code, 2, r.out);
      t.notMatch(r.out, /sesame|open/, 'the value is not echoed');
      t.match(r.out, /env\.HF_TOKEN[^]*NUL byte/);
    }
    writeFileSync(join(tmp, 'nul.env'), 'DB_PASSWD=sesame\0open\n');
    const r = dtrain('launch', job('nulfile.yaml', '  A: b\n', 'env_file: nul.env\n'));
    t.equal(r.code, 2, r.out);
    t.notMatch(r.out, /sesame|open/);
    t.match(r.out, /nul\.env:1:1: DB_PASSWD: the value holds a NUL byte/);
  });

  t.test('--set env=... and env.SECRET=... are echoed masked, whatever goes wrong', async (t) => {
    const f = job('plain.yaml', '  A: b\n', 'secret_env: [SESAME]\n');
    let r = dtrain('validate', f, '--set', 'env={HF_TOKEN: sesame}');
    t.equal(r.code, 2);
    t.notMatch(r.out, /sesame/);
    t.match(r.stderr, '--set env=***: env: must be a mapping, got a string');
    r = dtrain('validate', f, '--set', 'env.SESAME=opensesame', '--set', 'env.DB_PASSWD=hunter2', '--set', 'nosuch=1');
    t.equal(r.code, 2);
    t.notMatch(r.out, /opensesame|hunter2/);
    r = dtrain('validate', f, '--set', 'name=postgres://u:hunter2@host', '--set', 'nosuch.key=1');
    t.notMatch(r.out, /hunter2/);
  });

  t.test('the plan masks by token, by secret_env and URL user-info; PASSTHROUGH stays', async (t) => {
    const f = job(
      'mask.yaml',
      '  DB_PASSWD: hunter2\n  SESAME: opensesame\n  PASSTHROUGH: visible\n  DATABASE_URL: "postgres://u:pw9@h/db"\n',
      'secret_env: [SESAME]\n',
    );
    for (const args of [
      ['launch', f, '--dry-run'],
      ['validate', f, '--json'],
    ]) {
      const r = dtrain(...args);
      t.equal(r.code, 0, r.out);
      t.notMatch(r.out, /hunter2|opensesame|pw9/, args.join(' '));
      t.match(r.out, /visible/);
      t.match(r.out, 'postgres://u:***@h/db');
    }
  });

  t.test('--save-config writes an owner-only file, also over one others could read', async (t) => {
    const f = job('save.yaml', '  HF_TOKEN: sesame\n');
    const out = join(tmp, 'saved.yaml');
    writeFileSync(out, 'old\n', { mode: 0o644 });
    const r = dtrain('launch', f, '--save-config', out, '--dry-run');
    t.equal(r.code, 0, r.out);
    t.equal(statSync(out).mode & 0o777, 0o600);
    t.match(readFileSync(out, 'utf8'), 'HF_TOKEN: sesame', 'the saved config keeps the value');
  });

  t.test('monitor.token_file is checked by validate, at its line: owner-only, a file, one token', async (t) => {
    const secret = 'tok_VERYSECRET123';
    const tok = join(tmp, 'monitor.token');
    const cfg = (path: string) =>
      job('monitor.yaml', '  A: "1"\n', `monitor:\n  host: 0.0.0.0\n  token_file: ${JSON.stringify(path)}\n`);
    const at = /^monitor\.yaml:6:\d+: monitor\.token_file: /;
    const cases: [string, () => void, RegExp | undefined][] = [
      ['owner-only', () => writeFileSync(tok, secret + '\n', { mode: 0o600 }), undefined],
      ['others may read it', () => chmodSync(tok, 0o644), /others may read it: chmod 600 it/],
      [
        'empty',
        () => {
          writeFileSync(tok, '\n');
          chmodSync(tok, 0o600);
        },
        /it is empty/,
      ],
      ['two words', () => writeFileSync(tok, `${secret} ${secret}\n`), /more than one word/],
      ['too large', () => writeFileSync(tok, 'x'.repeat(5000)), /larger than 4096 bytes/],
    ];
    for (const [what, make, want] of cases) {
      make();
      const r = dtrain('validate', cfg(tok));
      if (!want) {
        t.equal(r.code, 0, `${what}: valid`, { out: r.out });
        continue;
      }
      t.equal(r.code, 2, `${what}: exit 2`);
      t.match(r.stderr, new RegExp(at.source + '.*' + want.source), `${what}: one line at the key`);
      t.notMatch(r.out, /VERYSECRET/, `${what}: the token is not shown`);
    }
    const fifo = join(tmp, 'monitor.fifo');
    spawnSync('mkfifo', ['-m', '600', fifo]);
    const r = dtrain('validate', cfg(fifo));
    t.equal(r.code, 2, 'a FIFO: exit 2, without waiting for a writer');
    t.match(r.stderr, /monitor\.token_file: .*monitor\.fifo: not a regular file/);
  });
}
