// Build step (after tsc): dist/cli-bundle.js, every module `dtrain` can reach from dist/cli/main.js in one
// file, so that a launch loads one module instead of ~50. Node 20 spends ~0.5-0.8 ms per ES module
// (resolve, read, compile, link): the largest part of a small launch after Node's own start. Likewise
// dist/agent-bundle.js from dist/cli/agent-entry.js: `dtrain agent --stdio`, started once per host of every
// launch, reads and scans only the agent's half of the code.
//
// Each module becomes a factory run on first use (all of them in one script, dist/<bundle>.<hash>.code.js,
// which the bundle compiles with V8's code cache), in ESM order (dependencies first, in import order).
// Imports bind once, after the dependency ran: the same as live ESM bindings because the build refuses
// a static import cycle and `export let/var`, the two cases where they differ. Top-level await is refused
// too. import.meta.url is the module's own dist/ URL. CommonJS packages are required; ES-only packages are
// imported before the dynamic import that needs them resolves. dist/cli-bundle.json lists every input's
// mtime (cli-bundle.json, agent-bundle.json): dist/cli/entry.js uses a bundle only while they all match (a
// plain `tsc` makes it stale, and then the modules load as built).
//
//   node scripts/build/bundle-cli.js [--out DIR]   (default: dist/)
import { createHash } from 'node:crypto';
import { readdirSync, readFileSync, renameSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { builtinModules, createRequire } from 'node:module';
import { dirname, join, relative, resolve, sep } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
const dist = join(root, 'dist');
const outArg = process.argv.indexOf('--out');
const outDir = outArg > 0 ? resolve(process.argv[outArg + 1]) : dist;
/** Each bundle: its file name (and manifest) and the module its loadMain() resolves to. */
const bundles = [
  { name: 'cli-bundle', entry: 'cli/main.js', what: "dist/cli/main.js's exports" },
  {
    name: 'agent-bundle',
    entry: 'cli/agent-entry.js',
    what: "dist/cli/agent-entry.js's exports (`dtrain agent --stdio`)",
  },
];

let ts;
try {
  ts = createRequire(import.meta.url)('typescript');
} catch {
  console.log('bundle-cli: typescript is not installed; dtrain runs from the modules in dist/');
  process.exit(0);
}

class Refused extends Error {}

const idOf = (file) => relative(dist, file).split(sep).join('/');
const fileOf = (id) => join(dist, ...id.split('/'));
const isBuiltin = (spec) => spec.startsWith('node:') || builtinModules.includes(spec);
const requireFromDist = createRequire(join(dist, 'cli-bundle.js'));

/** true: require() gives the package (CommonJS); false: it is an ES module only */
const cjsCache = new Map();
function isCommonJs(spec) {
  if (!cjsCache.has(spec)) {
    let cjs = false;
    try {
      const file = requireFromDist.resolve(spec);
      if (file.endsWith('.cjs')) cjs = true;
      else if (!file.endsWith('.mjs')) cjs = packageType(dirname(file)) !== 'module';
    } catch {
      cjs = false; // no "require" export: ES only
    }
    cjsCache.set(spec, cjs);
  }
  return cjsCache.get(spec);
}

function packageType(dir) {
  for (;;) {
    try {
      return JSON.parse(readFileSync(join(dir, 'package.json'), 'utf8')).type;
    } catch {
      const up = dirname(dir);
      if (up === dir) return undefined;
      dir = up;
    }
  }
}

/** One module: its factory body, its static dependencies (ids), dynamic ones, and ES-only packages. */
function transform(id) {
  // mtime before contents: a file rewritten while the bundle is made then reads as changed, never as current
  const mtime = statSync(fileOf(id)).mtimeMs;
  const text = readFileSync(fileOf(id), 'utf8');
  const clash = /\b(__exports|__meta_url|__req|__dyn|__require|__ext|__star|__import|__default|__m\d+)\b/.exec(text);
  if (clash) throw new Refused(`${id} uses ${clash[1]}, a name the bundle gives its own bindings`);
  const sf = ts.createSourceFile(id, text, ts.ScriptTarget.Latest, true, ts.ScriptKind.JS);
  const edits = []; // [start, end, replacement]
  const deps = [];
  const dynamic = [];
  const esOnly = new Set();
  const exportLines = [];
  let n = 0;
  const where = (node) => `${id}:${sf.getLineAndCharacterOfPosition(node.getStart()).line + 1}`;
  const target = (spec, node) => {
    const file = resolve(dirname(fileOf(id)), spec);
    if (!file.startsWith(dist + sep)) throw new Refused(`${where(node)}: ${spec} is outside dist/`);
    return idOf(file);
  };
  /** How the module named `spec` is reached from the factory: an expression for its namespace or exports. */
  const load = (spec, node) => {
    if (spec.startsWith('.')) {
      const dep = target(spec, node);
      deps.push(dep);
      return { expr: `__req(${JSON.stringify(dep)})`, cjs: false };
    }
    if (isBuiltin(spec) || isCommonJs(spec)) return { expr: `__require(${JSON.stringify(spec)})`, cjs: true };
    esOnly.add(spec);
    return { expr: `__ext[${JSON.stringify(spec)}]`, cjs: false };
  };
  const exportedNames = (decl) => {
    const names = [];
    const walk = (b) => {
      if (ts.isIdentifier(b)) names.push(b.text);
      else for (const e of b.elements) if (!ts.isOmittedExpression(e)) walk(e.name);
    };
    for (const d of decl.declarationList.declarations) walk(d.name);
    return names;
  };

  for (const st of sf.statements) {
    const mods = ts.canHaveModifiers(st) ? (ts.getModifiers(st) ?? []) : [];
    const exported = mods.some((m) => m.kind === ts.SyntaxKind.ExportKeyword);
    const isDefault = mods.some((m) => m.kind === ts.SyntaxKind.DefaultKeyword);
    if (ts.isImportDeclaration(st)) {
      const spec = st.moduleSpecifier.text;
      const { expr, cjs } = load(spec, st);
      const clause = st.importClause;
      const v = `__m${n++}`;
      let out = `const ${v} = ${expr};`;
      if (clause?.name) out += ` const ${clause.name.text} = ${cjs ? v : `${v}.default`};`;
      const b = clause?.namedBindings;
      if (b && ts.isNamespaceImport(b)) out += ` const ${b.name.text} = ${v};`;
      if (b && ts.isNamedImports(b) && b.elements.length) {
        const parts = b.elements.map((e) => (e.propertyName ? `${e.propertyName.text}: ${e.name.text}` : e.name.text));
        out += ` const { ${parts.join(', ')} } = ${v};`;
      }
      edits.push([st.getStart(), st.end, out]);
    } else if (ts.isExportDeclaration(st)) {
      edits.push([st.getStart(), st.end, '']);
      const from = st.moduleSpecifier ? load(st.moduleSpecifier.text, st).expr : null;
      const c = st.exportClause;
      if (!c) exportLines.push(`__star(__exports, ${from});`);
      else if (ts.isNamespaceExport(c)) exportLines.push(`__exports.${c.name.text} = ${from};`);
      else
        for (const e of c.elements) {
          const local = (e.propertyName ?? e.name).text;
          exportLines.push(
            `__exports[${JSON.stringify(e.name.text)}] = ${from ? `${from}[${JSON.stringify(local)}]` : local};`,
          );
        }
    } else if (ts.isExportAssignment(st)) {
      edits.push([st.getStart(), st.expression.getStart(), 'const __default = ']);
      exportLines.push('__exports.default = __default;');
    } else if (exported) {
      const first = mods[0];
      const last = mods
        .filter((m) => m.kind === ts.SyntaxKind.ExportKeyword || m.kind === ts.SyntaxKind.DefaultKeyword)
        .pop();
      if (ts.isVariableStatement(st)) {
        if (!(st.declarationList.flags & ts.NodeFlags.Const))
          throw new Refused(`${where(st)}: export let/var (a live binding)`);
        edits.push([first.getStart(), last.end, '']);
        for (const name of exportedNames(st)) exportLines.push(`__exports.${name} = ${name};`);
      } else if ((ts.isFunctionDeclaration(st) || ts.isClassDeclaration(st)) && st.name) {
        edits.push([first.getStart(), last.end, '']);
        exportLines.push(`__exports.${isDefault ? 'default' : st.name.text} = ${st.name.text};`);
      } else if (isDefault) {
        edits.push([first.getStart(), last.end, 'const __default = ']);
        exportLines.push('__exports.default = __default;');
      } else throw new Refused(`${where(st)}: an export form this bundler does not know`);
    }
  }

  const visit = (node, inFunction) => {
    if (ts.isMetaProperty(node) && node.keywordToken === ts.SyntaxKind.ImportKeyword) {
      const p = node.parent;
      if (!(ts.isPropertyAccessExpression(p) && p.name.text === 'url'))
        throw new Refused(`${where(node)}: import.meta other than .url`);
      edits.push([p.getStart(), p.end, '__meta_url']);
      return;
    }
    if (ts.isCallExpression(node) && node.expression.kind === ts.SyntaxKind.ImportKeyword) {
      const arg = node.arguments[0];
      if (arg && ts.isStringLiteralLike(arg) && arg.text.startsWith('.')) {
        const dep = target(arg.text, node);
        dynamic.push(dep);
        edits.push([node.getStart(), node.end, `__dyn(${JSON.stringify(dep)})`]);
        return;
      }
      // packages and computed specifiers (absolute URLs): a native import, resolved from the bundle's place in dist/
      edits.push([node.expression.getStart(), node.expression.end, '__import']);
    }
    if (!inFunction && (ts.isAwaitExpression(node) || (ts.isForOfStatement(node) && node.awaitModifier))) {
      throw new Refused(`${where(node)}: top-level await`);
    }
    const fn = inFunction || ts.isFunctionLike(node) || ts.isClassStaticBlockDeclaration(node);
    ts.forEachChild(node, (c) => visit(c, fn));
  };
  for (const st of sf.statements) if (!ts.isImportDeclaration(st) && !ts.isExportDeclaration(st)) visit(st, false);

  edits.sort((a, b) => b[0] - a[0]);
  let body = text.replace(/\n\/\/# sourceMappingURL=.*\s*$/, '\n');
  for (const [s, e, r] of edits) body = body.slice(0, s) + r + body.slice(e);
  return { body: body + (exportLines.length ? exportLines.join('\n') + '\n' : ''), deps, dynamic, esOnly, mtime };
}

function build({ name, entry, what }) {
  const mods = new Map();
  const queue = [entry];
  while (queue.length) {
    const id = queue.shift();
    if (mods.has(id)) continue;
    const m = transform(id);
    mods.set(id, m);
    queue.push(...m.deps, ...m.dynamic);
  }
  // A static import cycle would see a dependency's exports before they are set.
  const state = new Map();
  const visitCycle = (id, path) => {
    state.set(id, 1);
    for (const d of mods.get(id).deps) {
      if (state.get(d) === 1)
        throw new Refused(`static import cycle: ${[...path.slice(path.indexOf(d)), d].join(' -> ')}`);
      if (!state.get(d)) visitCycle(d, [...path, d]);
    }
    state.set(id, 2);
  };
  for (const id of mods.keys()) if (!state.get(id)) visitCycle(id, [id]);
  // ES-only packages each dynamic entry needs, over its static closure
  const closure = new Map();
  const esOf = (id) => {
    if (!closure.has(id)) {
      const set = new Set(mods.get(id).esOnly);
      closure.set(id, set);
      for (const d of mods.get(id).deps) for (const s of esOf(d)) set.add(s);
    }
    return closure.get(id);
  };
  const entries = new Set([entry, ...[...mods.values()].flatMap((m) => m.dynamic)]);
  const esNeeds = Object.fromEntries([...entries].map((id) => [id, [...esOf(id)]]).filter(([, v]) => v.length));

  const out = [
    '// Generated by scripts/build/bundle-cli.js from the modules in dist/: do not edit.',
    "import { createRequire } from 'node:module';",
    'const __require = createRequire(import.meta.url);',
    `const __base = new URL(${JSON.stringify((relative(outDir, dist).split(sep).join('/') || '.') + '/')}, ` +
      'import.meta.url).href;',
    'const __ext = Object.create(null);',
    'const __cache = Object.create(null);',
    `const __esNeeds = ${JSON.stringify(esNeeds)};`,
    'function __req(id) {',
    '  let e = __cache[id];',
    '  if (e) return e;',
    '  e = __cache[id] = Object.create(null);',
    '  try {',
    '    const url = new URL(id, __base).href;',
    '    __compile(id)(e, url, __req, __dyn, __require, __ext, __star, __import);',
    '  } catch (err) {',
    '    delete __cache[id];',
    '    throw err;',
    '  }',
    '  return e;',
    '}',
    'function __dyn(id) {',
    '  const need = (__esNeeds[id] ?? []).filter((s) => !(s in __ext));',
    '  return Promise.all(need.map((s) => import(s).then((ns) => { __ext[s] = ns; }))).then(() => __req(id));',
    '}',
    'function __star(to, from) {',
    "  for (const k of Object.keys(from)) if (k !== 'default' && !(k in to)) to[k] = from[k];",
    '}',
    'function __import(spec) {',
    '  return import(spec);',
    '}',
    'let __factories;',
    'function __compile(id) {',
    '  __factories ??= __loadFactories();',
    '  return __factories[id];',
    '}',
    // Every module's factory is one script in a file of its own beside the bundle (ESM cannot use a code
    // cache, and as a string literal here the ESM loader read and scanned it at every start: ~6 ms of CPU),
    // compiled on the first __req with V8's code cache: the bytecode, written beside the bundle by the first
    // process that had none (at its exit, so it holds every function that process ran). Its first line names
    // the Node binary and the script it was made for; V8 rejects a cache from another V8 or other flags itself.
    '/** How this process compiled the bundle: "used" a code cache, "produced" one, or "none". */',
    "export let codeCache = 'none';",
    'function __loadFactories() {',
    "  const fs = __require('node:fs');",
    "  const vm = __require('node:vm');",
    "  const { fileURLToPath } = __require('node:url');",
    '  const file = fileURLToPath(new URL(__codeFile, import.meta.url));',
    "  const __code = fs.readFileSync(file, 'utf8');",
    "  if (process.env.DTRAIN_NO_CODE_CACHE === '1')",
    '    return new vm.Script(__code, { filename: file }).runInThisContext();',
    "  const cacheFile = fileURLToPath(import.meta.url).replace(/\\.js$/, '.v8cache');",
    '  let tag = null;',
    '  let cachedData;',
    '  try {',
    '    const st = fs.statSync(file);',
    '    tag = `${process.version} ${process.arch} ${st.size} ${st.mtimeMs}`;',
    '    const buf = fs.readFileSync(cacheFile);',
    '    const nl = buf.indexOf(10);',
    "    if (nl > 0 && buf.toString('latin1', 0, nl) === tag) cachedData = buf.subarray(nl + 1);",
    '  } catch {',
    '    // no cache yet',
    '  }',
    '  const script = new vm.Script(__code, { filename: file, cachedData });',
    "  if (cachedData && !script.cachedDataRejected) codeCache = 'used';",
    '  else if (tag) {',
    "    codeCache = 'produced';",
    "    process.once('exit', () => {",
    '      const tmp = `${cacheFile}.${process.pid}.tmp`;',
    '      try {',
    "        fs.writeFileSync(tmp, Buffer.concat([Buffer.from(tag + '\\n', 'latin1'), script.createCachedData()]));",
    '        fs.renameSync(tmp, cacheFile);',
    '      } catch {',
    '        fs.rmSync(tmp, { force: true }); // a read-only install: every start compiles',
    '      }',
    '    });',
    '  }',
    '  return script.runInThisContext();',
    '}',
    `/** Resolves to ${what}. */`,
    `export function loadMain() { return __dyn(${JSON.stringify(entry)}); }`,
    '/** Any bundled module by its path in dist/ (tests compare each with the module tsc built). */',
    'export function loadModule(id) { return __dyn(id); }',
    `export const moduleIds = ${JSON.stringify([...mods.keys()])};`,
  ];
  const params = '__exports, __meta_url, __req, __dyn, __require, __ext, __star, __import';
  const factory = ([id, m]) => `${JSON.stringify(id)}: function (${params}) {"use strict";\n${m.body}}`;
  const factories = `({\n${[...mods].map(factory).join(',\n')}\n})\n`;
  // Named by its content: a process that imported the bundle just before a rebuild still reads its own.
  const codeFile = `${name}.${createHash('sha256').update(factories).digest('hex').slice(0, 12)}.code.js`;
  out.push(`const __codeFile = ${JSON.stringify(codeFile)};`, '');
  const inputs = Object.fromEntries([...mods].map(([id, m]) => [id, m.mtime]));
  return { code: out.join('\n'), factories, codeFile, inputs, count: mods.size };
}

for (const b of bundles) {
  const bundle = join(outDir, `${b.name}.js`);
  const manifest = join(outDir, `${b.name}.json`);
  try {
    const { code, factories, codeFile, inputs, count } = build(b);
    // Private names then renames, the script before the bundle naming it: a concurrent `dtrain` never reads
    // half a bundle. Then the scripts of earlier builds go.
    for (const [file, text] of [
      [join(outDir, codeFile), factories],
      [bundle, code],
    ]) {
      writeFileSync(`${file}.${process.pid}.tmp`, text);
      renameSync(`${file}.${process.pid}.tmp`, file);
    }
    removeCodeFiles(b.name, codeFile);
    writeFileSync(manifest, JSON.stringify({ inputs }) + '\n');
    const kib = Math.round((code.length + factories.length) / 1024);
    console.log(`bundle-cli: wrote ${bundle} and ${codeFile} (${count} modules, ${kib} KiB)`);
  } catch (err) {
    // Never a failed build: without a bundle dtrain runs from the modules, only slower to start.
    rmSync(bundle, { force: true });
    rmSync(manifest, { force: true });
    removeCodeFiles(b.name, null);
    const why = err instanceof Refused ? err.message : (err.stack ?? String(err));
    console.error(`bundle-cli: no ${b.name} (${why}); dtrain runs from the modules in dist/`);
  }
}

/** The factory scripts of bundle `name` in the output folder, all but `keep`. */
function removeCodeFiles(name, keep) {
  for (const f of readdirSync(outDir))
    if (f.startsWith(`${name}.`) && f.endsWith('.code.js') && f !== keep) rmSync(join(outDir, f), { force: true });
}
