// dist/cli-bundle.js (scripts/build/bundle-cli.js): the CLI's modules in one file, and dist/agent-bundle.js,
// the agent's. Built here into a scratch folder; every bundled module must export what the module tsc built
// exports, a launch (an agent) through a bundle must behave as one through the modules, and bin/dtrain must
// use a bundle only while it matches dist/.
import { spawnSync } from 'node:child_process';
import {
  copyFileSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  utimesSync,
  writeFileSync,
} from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import t from 'tap';
import { built, root } from '../../helpers/launch.js';

let hasTs = true;
try {
  createRequire(import.meta.url).resolve('typescript');
} catch {
  hasTs = false;
}
const skip = (!built() && 'run npx tsc -p . first') || (!hasTs && 'typescript is not installed');

// Under dist/ like the real one: packages resolve from the project's node_modules.
const out = built() ? mkdtempSync(join(root, 'dist', '.bundle-test-')) : tmpdir();
t.teardown(() => void (out !== tmpdir() && rmSync(out, { recursive: true, force: true })));
const bundleUrl = pathToFileURL(join(out, 'cli-bundle.js')).href;
const agentBundleUrl = pathToFileURL(join(out, 'agent-bundle.js')).href;

t.test('the bundler writes the bundle and its manifest', { skip }, async (t) => {
  const r = spawnSync(process.execPath, [join(root, 'scripts/build/bundle-cli.js'), '--out', out], {
    encoding: 'utf8',
  });
  t.equal(r.status, 0, r.stderr);
  t.match(r.stdout, /bundle-cli: wrote .*cli-bundle\.js and cli-bundle\.\w+\.code\.js \(\d+ modules/);
  t.match(r.stdout, /bundle-cli: wrote .*agent-bundle\.js and agent-bundle\.\w+\.code\.js \(\d+ modules/);
  t.ok(existsSync(join(out, 'cli-bundle.json')));
  t.ok(existsSync(join(out, 'agent-bundle.json')));
});

t.test('the modules are a script beside the bundle, named by content; a rebuild leaves one', { skip }, async (t) => {
  const codeFiles = (name: string) =>
    readdirSync(out).filter((f) => f.startsWith(`${name}.`) && f.endsWith('.code.js'));
  for (const name of ['cli-bundle', 'agent-bundle']) {
    const [code, ...more] = codeFiles(name);
    t.same(more, [], `${name}: one script`);
    t.match(code, new RegExp(`^${name}\\.[0-9a-f]{12}\\.code\\.js$`));
    const bundle = readFileSync(join(out, `${name}.js`), 'utf8');
    t.ok(bundle.includes(JSON.stringify(code)), `${name}.js names it`);
    // the ES module Node reads and compiles at every start holds no module's code
    t.notMatch(bundle, /"cli\/[\w-]+\.js": function/, `${name}.js holds the loader only`);
    t.match(readFileSync(join(out, code), 'utf8'), /"cli\/[\w-]+\.js": function/);
  }
  // an older build's script (another name) goes; the same inputs give the same name
  const before = codeFiles('agent-bundle');
  writeFileSync(join(out, 'agent-bundle.0123456789ab.code.js'), '({})\n');
  const r = spawnSync(process.execPath, [join(root, 'scripts/build/bundle-cli.js'), '--out', out], {
    encoding: 'utf8',
  });
  t.equal(r.status, 0, r.stderr);
  t.same(codeFiles('agent-bundle'), before);
});

/** Each module of the bundle at `url`: the shape of its exports there and as tsc built it. */
function bundledShapes(url: string) {
  // in plain node: the test runner's own module hooks would load the bundle differently
  const code = `
    const b = await import(${JSON.stringify(url)});
    const shape = (m) => Object.fromEntries(Object.keys(m).sort().map((k) => [k, typeof m[k]]));
    const out = {};
    for (const id of b.moduleIds) {
      const built = await import(new URL(id, ${JSON.stringify(pathToFileURL(join(root, 'dist')).href + '/')}));
      out[id] = { bundled: shape(await b.loadModule(id)), built: shape(built) };
    }
    process.stdout.write(JSON.stringify(out));`;
  const r = spawnSync(process.execPath, ['--input-type=module', '-e', code], { encoding: 'utf8', maxBuffer: 64 << 20 });
  return {
    status: r.status,
    stderr: r.stderr,
    shapes: r.status === 0 ? (JSON.parse(r.stdout) as Record<string, { bundled: object; built: object }>) : {},
  };
}

t.test('every bundled module exports the names and kinds of the module tsc built', { skip }, async (t) => {
  const { status, stderr, shapes } = bundledShapes(bundleUrl);
  t.equal(status, 0, stderr);
  t.ok(Object.keys(shapes).length > 50);
  t.ok('cli/main.js' in shapes && 'launch/controller.js' in shapes);
  for (const [id, { bundled, built: tsc }] of Object.entries(shapes)) t.same(bundled, tsc, id);
});

t.test(
  'the agent bundle: the agent modules, exported as tsc built them, and none of the CLI-only ones',
  { skip },
  async (t) => {
    const { status, stderr, shapes } = bundledShapes(agentBundleUrl);
    t.equal(status, 0, stderr);
    t.ok('cli/agent-entry.js' in shapes && 'launch/agent-process.js' in shapes && 'launch/worker.js' in shapes);
    for (const cliOnly of [
      'cli/main.js',
      'config/load.js',
      'launch/controller.js',
      'launch/ssh/spawner.js',
      'store/server.js',
    ])
      t.notOk(cliOnly in shapes, `${cliOnly} is not the agent's`);
    for (const [id, { bundled, built: tsc }] of Object.entries(shapes)) t.same(bundled, tsc, id);
  },
);

t.test(
  'an agent through the agent bundle reports a refused start as the CLI does: one line, exit 3',
  { skip },
  async (t) => {
    const code = `import(${JSON.stringify(agentBundleUrl)}).then((b) => b.loadMain()).then((m) => m.agentMain())`;
    const noSpec = spawnSync(process.execPath, ['--input-type=module', '-e', code], { input: '', encoding: 'utf8' });
    t.equal(noSpec.status, 3, noSpec.stderr);
    t.equal(noSpec.stderr, 'dtrain: dtrain agent: stdin closed before the spec arrived\n');
    const garbage = spawnSync(process.execPath, ['--input-type=module', '-e', code], {
      input: 'not json\n',
      encoding: 'utf8',
    });
    t.equal(garbage.status, 3);
    t.match(garbage.stderr, /^dtrain: dtrain agent: stdin line is not JSON: "not json"\n$/);
    // and bin/dtrain takes the same way for exactly `agent --stdio`
    const bin = spawnSync(join(root, 'bin/dtrain'), ['agent', '--stdio'], { input: '', encoding: 'utf8' });
    t.equal(bin.status, 3);
    t.equal(bin.stderr, noSpec.stderr);
  },
);

/** The CLI through the scratch bundle, in its own process (as bin/dtrain runs it). */
function viaBundle(args: string[], cwd: string) {
  const code =
    `import(${JSON.stringify(bundleUrl)}).then((b) => b.loadMain()).then((m) => ` + `m.main(${JSON.stringify(args)}))`;
  return spawnSync(process.execPath, ['--input-type=module', '-e', code], {
    cwd,
    encoding: 'utf8',
    env: { ...process.env, NO_COLOR: '1' },
  });
}

t.test(
  'a launch through the bundle: workers, output, exit codes and error lines as through the modules',
  { skip },
  async (t) => {
    const dir = mkdtempSync(join(tmpdir(), 'dtrain-bundle-run-'));
    t.teardown(() => rmSync(dir, { recursive: true, force: true }));
    const ok = viaBundle(
      [
        'launch',
        '--nproc-per-node',
        '2',
        '--set',
        `logs.dir=${dir}/logs`,
        '--',
        'sh',
        '-c',
        'echo "rank $RANK of $WORLD_SIZE"',
      ],
      dir,
    );
    t.equal(ok.status, 0, ok.stderr);
    t.match(ok.stdout, /\[rank 0\] rank 0 of 2/);
    t.match(ok.stdout, /\[rank 1\] rank 1 of 2/);
    const failed = viaBundle(
      ['launch', '--nproc-per-node', '2', '--set', `logs.dir=${dir}/logs`, '--', 'sh', '-c', 'exit 3'],
      dir,
    );
    t.equal(failed.status, 1, 'a failed worker: exit 1');
    t.match(failed.stderr, /exited with code 3/);
    const bad = viaBundle(['launch', '--nproc-per-node', '2', '--set', 'restarts.max=lots', '--', 'true'], dir);
    t.equal(bad.status, 2, 'a ConfigError is recognised as one: exit 2');
    t.match(bad.stderr, /restarts\.max/);
    t.notMatch(bad.stderr, /internal error/);
    const usage = viaBundle(['launch', '--bogus'], dir);
    t.equal(usage.status, 2);
    t.match(usage.stderr, /Unknown argument: bogus/);
    const file = join(dir, 'job.yaml');
    writeFileSync(file, 'entrypoint: [python3, train.py]\nnproc_per_node: 2\n');
    const dry = viaBundle(['validate', file, '--json'], dir);
    t.equal(dry.status, 0, dry.stderr);
    t.equal(JSON.parse(dry.stdout).world_size, 2);
  },
);

t.test(
  'bin/dtrain takes the agent bundle for exactly `agent --stdio`, and only while it is current',
  { skip },
  async (t) => {
    // A copy of bin/ and dist/ (its manifests matching the copy) whose agent bundle is a stand-in
    // that says it ran: what bin/dtrain loads is then visible, not only how the agent behaves.
    const { cpSync, symlinkSync } = await import('node:fs');
    const copy = mkdtempSync(join(tmpdir(), 'dtrain-bundle-route-'));
    t.teardown(() => rmSync(copy, { recursive: true, force: true }));
    for (const d of ['bin', 'dist']) cpSync(join(root, d), join(copy, d), { recursive: true });
    cpSync(join(root, 'package.json'), join(copy, 'package.json'));
    for (const d of ['node_modules', 'build']) symlinkSync(join(root, d), join(copy, d));
    // copies keep timestamps only to the precision utimes has: record the copies' own in the manifests
    const { statSync } = await import('node:fs');
    for (const name of ['cli-bundle', 'agent-bundle']) {
      const manifest = join(copy, 'dist', `${name}.json`);
      const { inputs } = JSON.parse(readFileSync(manifest, 'utf8')) as { inputs: Record<string, number> };
      for (const id of Object.keys(inputs)) inputs[id] = statSync(join(copy, 'dist', id)).mtimeMs;
      writeFileSync(manifest, JSON.stringify({ inputs }));
    }
    writeFileSync(
      join(copy, 'dist', 'agent-bundle.js'),
      'export function loadMain() { return Promise.resolve({ agentMain: async () => { ' +
        "process.stdout.write('agent bundle\\n'); } }); }\n",
    );
    const dtrain = (args: string[], env: Record<string, string> = {}) =>
      spawnSync(join(copy, 'bin', 'dtrain'), args, { input: '', encoding: 'utf8', env: { ...process.env, ...env } });
    const agent = dtrain(['agent', '--stdio']);
    t.equal(agent.stdout, 'agent bundle\n', agent.stderr);
    t.equal(agent.status, 0);
    const other = dtrain(['agent', '--stdio', '--host', 'x']);
    t.notMatch(other.stdout, /agent bundle/, 'any other agent command line goes through the CLI');
    t.equal(other.status, 3, 'and reaches the same agent there');
    t.match(other.stderr, /stdin closed before the spec arrived/);
    const modules = dtrain(['agent', '--stdio'], { DTRAIN_NO_BUNDLE: '1' });
    t.notMatch(modules.stdout, /agent bundle/, 'DTRAIN_NO_BUNDLE=1: the modules');
    t.equal(modules.status, 3, 'the real agent, refusing an empty stdin');
    utimesSync(join(copy, 'dist', 'launch', 'agent-process.js'), new Date(), new Date(Date.now() + 5000));
    const stale = dtrain(['agent', '--stdio']);
    t.notMatch(stale.stdout, /agent bundle/, 'an input rebuilt since: the modules');
    t.equal(stale.status, 3);
  },
);

t.test('bin/dtrain uses a bundle only while every input has the mtime it was built from', { skip }, async (t) => {
  const { bundleIsCurrent } = await import('../../../src/cli/entry.js');
  const dir = mkdtempSync(join(tmpdir(), 'dtrain-bundle-fresh-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  mkdirSync(join(dir, 'cli'));
  writeFileSync(join(dir, 'cli', 'main.js'), 'export {};\n');
  writeFileSync(join(dir, 'cli-bundle.js'), '');
  const { statSync } = await import('node:fs');
  const manifest = () =>
    writeFileSync(
      join(dir, 'cli-bundle.json'),
      JSON.stringify({ inputs: { 'cli/main.js': statSync(join(dir, 'cli', 'main.js')).mtimeMs } }),
    );
  manifest();
  const url = pathToFileURL(dir + '/');
  t.ok(bundleIsCurrent(url), 'fresh');
  utimesSync(join(dir, 'cli', 'main.js'), new Date(), new Date(Date.now() + 5000));
  t.notOk(bundleIsCurrent(url), 'an input rebuilt since (tsc): the modules');
  manifest();
  t.ok(bundleIsCurrent(url));
  rmSync(join(dir, 'cli-bundle.js'));
  t.notOk(bundleIsCurrent(url), 'no bundle: the modules');
  writeFileSync(join(dir, 'cli-bundle.js'), '');
  process.env.DTRAIN_NO_BUNDLE = '1';
  t.teardown(() => delete process.env.DTRAIN_NO_BUNDLE);
  t.notOk(bundleIsCurrent(url), 'DTRAIN_NO_BUNDLE=1: the modules');
  delete process.env.DTRAIN_NO_BUNDLE;
  t.notOk(bundleIsCurrent(url, 'agent-bundle'), 'each bundle has its own manifest: no agent-bundle.json here');
  writeFileSync(join(dir, 'agent-bundle.js'), '');
  writeFileSync(join(dir, 'agent-bundle.json'), readFileSync(join(dir, 'cli-bundle.json')));
  t.ok(bundleIsCurrent(url, 'agent-bundle'));
  // Each way of not being current says which, in one line.
  const { bundleFreshness } = await import('../../../src/cli/entry.js');
  t.same(bundleFreshness(url), { current: true });
  utimesSync(join(dir, 'cli', 'main.js'), new Date(), new Date(Date.now() + 9000));
  t.match(bundleFreshness(url), { current: false, why: /^cli\/main\.js changed since cli-bundle\.js was made/ });
  rmSync(join(dir, 'agent-bundle.json'));
  t.match(bundleFreshness(url, 'agent-bundle'), { current: false, why: /^no agent-bundle\.js and agent-bundle\.json/ });
  process.env.DTRAIN_NO_BUNDLE = '1';
  t.same(bundleFreshness(url), { current: false, why: 'DTRAIN_NO_BUNDLE=1' });
  delete process.env.DTRAIN_NO_BUNDLE;
});

t.test('the install check: bin/dtrain without dist/ says so in one line and exits 3', { skip }, async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'dtrain-not-built-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  mkdirSync(join(dir, 'bin'));
  copyFileSync(join(root, 'bin', 'dtrain'), join(dir, 'bin', 'dtrain'));
  copyFileSync(join(root, 'package.json'), join(dir, 'package.json'));
  for (const args of [['--version'], ['agent', '--stdio']]) {
    const r = spawnSync(join(dir, 'bin', 'dtrain'), args, { encoding: 'utf8', input: '' });
    t.equal(r.status, 3, `${args.join(' ')}: exit 3`);
    t.equal(
      r.stderr,
      'dtrain: not built (no dist/cli/entry.js): run npm run build in a checkout, npm rebuild dtrain else\n',
    );
  }
  // An error inside dist/ is not taken for a missing build.
  mkdirSync(join(dir, 'dist', 'cli'), { recursive: true });
  writeFileSync(join(dir, 'dist', 'cli', 'entry.js'), "import './gone.js';\n");
  const r = spawnSync(join(dir, 'bin', 'dtrain'), ['--version'], { encoding: 'utf8' });
  t.not(r.status, 0);
  t.match(r.stderr, /gone\.js/);
  t.notMatch(r.stderr, /not built/);
});

t.test(
  "V8's code cache: made by the first process, used by the next, rejected safely when it does not fit",
  { skip },
  async (t) => {
    const cacheFile = join(out, 'agent-bundle.v8cache');
    rmSync(cacheFile, { force: true });
    // A plain node that loads the agent through the bundle and says how it was compiled.
    const load = (env: Record<string, string> = {}) => {
      const code = `const b = await import(${JSON.stringify(agentBundleUrl)});
        const m = await b.loadMain();
        process.stdout.write(b.codeCache + ' ' + typeof m.agentMain);`;
      const r = spawnSync(process.execPath, ['--input-type=module', '-e', code], {
        encoding: 'utf8',
        env: { ...process.env, ...env },
      });
      t.equal(r.status, 0, r.stderr);
      return r.stdout;
    };
    t.equal(load({ DTRAIN_NO_CODE_CACHE: '1' }), 'none function', 'DTRAIN_NO_CODE_CACHE=1: none read or written');
    t.notOk(existsSync(cacheFile));
    t.equal(load(), 'produced function', 'no cache: one is made');
    t.ok(existsSync(cacheFile), 'and written beside the bundle at exit');
    t.equal(load(), 'used function', 'the next process uses it');
    const cache = readFileSync(cacheFile);
    const nl = cache.indexOf(10);
    t.match(cache.subarray(0, nl).toString(), `${process.version} ${process.arch} `, 'made for this Node binary');
    // Another Node binary's cache: its first line differs, so it is never handed to V8.
    writeFileSync(cacheFile, Buffer.concat([Buffer.from('v0.0.0 other 1 2\n'), cache.subarray(nl + 1)]));
    t.equal(load(), 'produced function', "another binary's cache: compiled afresh, and replaced");
    t.equal(load(), 'used function');
    // A cache whose bytes V8 cannot accept (as from another V8 with the same first line): V8 rejects it.
    const body = Buffer.from(readFileSync(cacheFile));
    for (let i = nl + 1; i < body.length; i += 7) body[i] ^= 0xff;
    writeFileSync(cacheFile, body);
    t.equal(load(), 'produced function', 'a cache V8 rejects (cachedDataRejected): compiled afresh');
    t.equal(load(), 'used function', 'and replaced by a good one');
  },
);
