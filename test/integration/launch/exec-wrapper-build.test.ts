// dtrain-exec is built at install time: binding.gyp's executable target builds it (here in a scratch
// copy of the gyp files, only that target), and a launch finds it without compiling; a launch where it is
// missing fails with one line saying how to build it, and compiles nothing.
import { spawnSync } from 'node:child_process';
import { cpSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import t from 'tap';

const root = fileURLToPath(new URL('../../../', import.meta.url));
const nodeGyp = [
  process.env.npm_config_node_gyp,
  join(dirname(process.execPath), '..', 'lib', 'node_modules', 'npm', 'node_modules', 'node-gyp', 'bin', 'node-gyp.js'),
].find((p) => p && existsSync(p));
const nodedir = process.env.npm_config_nodedir ?? join(dirname(process.execPath), '..');
const skip =
  (!nodeGyp && 'node-gyp not found') ||
  (!existsSync(join(nodedir, 'include', 'node', 'node.h')) && 'no installed Node headers');

t.test('binding.gyp has an executable target for the shepherd source exec-wrapper.ts names', async (t) => {
  const gyp = JSON.parse(readFileSync(join(root, 'binding.gyp'), 'utf8')) as {
    targets: { target_name: string; type?: string; sources: string[] }[];
  };
  const target = gyp.targets.find((x) => x.target_name === 'dtrain-exec');
  t.equal(target?.type, 'executable');
  t.same(target?.sources, ['addon/src/process/exec-wrapper.c']);
  const { execWrapperPath } = await import('../../../src/launch/exec-wrapper.js');
  t.equal(execWrapperPath, join(root, 'build', 'Release', 'dtrain-exec'), 'where node-gyp puts it');
});

t.test('node-gyp builds build/Release/dtrain-exec, and it runs a program', { skip }, async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'dtrain-gyp-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  for (const p of ['binding.gyp', 'package.json', 'addon', 'scripts/build'])
    cpSync(join(root, p), join(dir, p), { recursive: true });
  symlinkSync(join(root, 'node_modules'), join(dir, 'node_modules'));
  const configure = spawnSync(process.execPath, [nodeGyp!, 'configure', `--nodedir=${nodedir}`], {
    cwd: dir,
    encoding: 'utf8',
  });
  t.equal(configure.status, 0, configure.stderr);
  const make = spawnSync('make', ['-C', 'build', 'dtrain-exec'], { cwd: dir, encoding: 'utf8' });
  t.equal(make.status, 0, make.stderr);
  const bin = join(dir, 'build', 'Release', 'dtrain-exec');
  t.ok(statSync(bin).mode & 0o111, 'an executable');
  const run = spawnSync(bin, [String(process.pid), 'sh', '-c', 'echo shepherded; exit 7'], { encoding: 'utf8' });
  t.equal(run.stdout, 'shepherded\n');
  t.equal(run.status, 7, 'exits the way the worker did');
});

t.test(
  'a launch without dtrain-exec: exit 3, one line naming the rebuild, nothing compiled',
  { skip: !existsSync(join(root, 'dist/cli/main.js')) && 'run npm run build first' },
  async (t) => {
    // A copy of the installed package whose build/ lost dtrain-exec; the shepherd's source is still there.
    const pkg = mkdtempSync(join(tmpdir(), 'dtrain-no-exec-'));
    t.teardown(() => rmSync(pkg, { recursive: true, force: true }));
    for (const p of ['bin', 'dist', 'package.json', 'addon/src/process'])
      cpSync(join(root, p), join(pkg, p), { recursive: true });
    symlinkSync(join(root, 'node_modules'), join(pkg, 'node_modules'));
    mkdirSync(join(pkg, 'build/Release'), { recursive: true });
    cpSync(join(root, 'build/Release/dtrain_native.node'), join(pkg, 'build/Release/dtrain_native.node'));
    const r = spawnSync(
      join(pkg, 'bin/dtrain'),
      ['launch', '--nproc-per-node', '1', '--set', `logs.dir=${pkg}/logs`, '--', 'true'],
      // the copied modules' mtimes differ from the bundle's manifest: DTRAIN_NO_BUNDLE says so outright
      { cwd: pkg, encoding: 'utf8', env: { ...process.env, DTRAIN_NO_BUNDLE: '1' } },
    );
    t.equal(r.status, 3, r.stderr);
    t.match(r.stderr, /dtrain-exec is not built \(.*build\/Release\/dtrain-exec\): run npm rebuild dtrain/);
    t.equal(r.stderr.trim().split('\n').length, 1, `one line: ${r.stderr}`);
    t.notOk(existsSync(join(pkg, 'build/Release/dtrain-exec')), 'nothing was compiled');
  },
);
