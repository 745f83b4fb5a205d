/**
 * loadConfig (a YAML file + --set overrides) and configFromArgs (torchrun-style flags) share one path:
 * schema validation with defaults, then normalise(), which runs even when the schema failed (on the
 * values it accepted). Every problem found is thrown together in one ConfigError; warnings are returned.
 */
import { existsSync, lstatSync, realpathSync, type Stats } from 'node:fs';
import { basename, extname, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { writeFileDurably } from '../runtime/durable-file.js';
import { ConfigError, UsageError, type ConfigProblem } from '../util/errors.js';
import { schemaValidator } from './ajv.js';
import { isLocalHost, localGpuCount } from './local-host.js';
import { normalise, type NormaliseContext } from './normalise.js';
import { applyOverrides } from './overrides.js';
import { readBoundedText, TextReadError } from './read-text.js';
import { ConfigSource, type PathSegment } from './source.js';
import type { LoadedConfig, RawConfig } from './types.js';
import { yaml } from './yaml-lib.js';

export interface LoadOptions {
  /** `key.path=value` overrides, applied in order */
  sets?: string[];
  /** the config path and relative paths in it (workdir) resolve against this; default process.cwd() */
  cwd?: string;
}

export async function loadConfig(file: string, opts: LoadOptions = {}): Promise<LoadedConfig> {
  const path = resolve(opts.cwd ?? process.cwd(), file);
  let text: string;
  try {
    text = readBoundedText(path);
  } catch (err) {
    if (!(err instanceof TextReadError)) throw err;
    const reason = err.message;
    throw new ConfigError([{ file, line: 0, col: 0, path: '', message: `cannot read the config: ${reason}` }]);
  }
  const parsed = ConfigSource.parse(file, text);
  if (parsed.value === undefined) throw new ConfigError(parsed.problems);
  return validate(
    parsed.value as Record<string, unknown>,
    parsed.source,
    opts,
    {
      file,
      path,
      defaultName: nameFromFile(file),
    },
    parsed.problems,
  );
}

/** torchrun habits: `dtrain launch --nproc-per-node 4 [--nnodes 2 --hosts a,b] -- python3 train.py`. */
export interface ArgsConfig {
  entrypoint: string[];
  nprocPerNode?: number | 'auto';
  nnodes?: number;
  hosts?: string[];
  name?: string;
  masterAddr?: string;
  masterPort?: number;
  maxRestarts?: number;
  backend?: string;
  sets?: string[];
  cwd?: string;
}

const FLAG_OF: Record<string, string> = {
  entrypoint: 'the command after --',
  nproc_per_node: '--nproc-per-node',
  nodes: '--hosts',
  name: '--name',
  'master.addr': '--master-addr',
  'master.port': '--master-port',
  'restarts.max': '--max-restarts',
  backend: '--backend',
};

export async function configFromArgs(args: ArgsConfig): Promise<LoadedConfig> {
  const label = '<command line>';
  const problems: ConfigProblem[] = [];
  const doc: Record<string, unknown> = { entrypoint: args.entrypoint };
  if (args.name !== undefined) doc.name = args.name;
  if (args.nprocPerNode !== undefined) doc.nproc_per_node = args.nprocPerNode;
  if (args.hosts?.length) doc.nodes = args.hosts.map((host) => ({ host }));
  if (args.nnodes !== undefined) {
    const listed = args.hosts?.length ?? 1;
    if (args.nnodes !== listed) {
      const why = args.hosts?.length
        ? `but --hosts names ${listed}`
        : 'but no --hosts were given (name them: --hosts a,b)';
      problems.push({ file: '--nnodes', line: 0, col: 0, path: '', message: `is ${args.nnodes}, ${why}` });
    }
  }
  if (args.masterAddr !== undefined || args.masterPort !== undefined) {
    doc.master = {
      ...(args.masterAddr !== undefined && { addr: args.masterAddr }),
      ...(args.masterPort !== undefined && { port: args.masterPort }),
    };
  }
  if (args.maxRestarts !== undefined) doc.restarts = { max: args.maxRestarts };
  if (args.backend !== undefined) doc.backend = args.backend;
  const source = ConfigSource.synthetic(label, FLAG_OF);
  if (!args.entrypoint.length)
    problems.push({
      file: label,
      line: 0,
      col: 0,
      path: '',
      message: 'name the command to run after --, e.g. dtrain launch --nproc-per-node 4 -- python3 train.py',
    });
  if (problems.length) throw new ConfigError(problems);
  return validate(doc, source, args, { file: label, defaultName: 'dtrain' });
}

async function validate(
  doc: Record<string, unknown>,
  source: ConfigSource,
  opts: LoadOptions,
  where: { file: string; path?: string; defaultName: string },
  earlier: ConfigProblem[] = [],
): Promise<LoadedConfig> {
  // Problems found while parsing (repeated keys) are reported together with whatever the checks find.
  const fail = (problems: ConfigProblem[]): never => {
    throw new ConfigError(ordered([...earlier, ...problems]));
  };
  const overrideProblems = applyOverrides(doc, opts.sets ?? [], source);
  if (overrideProblems.length) fail(overrideProblems);
  const written = structuredClone(doc);

  const validator = await schemaValidator();
  let schema: { problems: ConfigProblem[]; rejected: PathSegment[][] } | undefined;
  if (!validator(doc)) {
    // loaded only for a config with problems: two modules less on every launch
    const [{ schemaProblems }, { withoutRejected }] = await Promise.all([
      import('./schema-errors.js'),
      import('./schema-repair.js'),
    ]);
    const errors = validator.errors ?? [];
    const problems = schemaProblems(errors, doc, source);
    // The semantic checks still run, on the values the schema accepted (schema-repair.ts says how).
    const { rejected, checkable } = withoutRejected(doc, validator, errors);
    if (!checkable) fail(problems);
    schema = { problems, rejected };
  }

  const ctx: NormaliseContext = {
    file: where.file === '<command line>' ? './<command line>' : where.file,
    cwd: opts.cwd ?? process.cwd(),
    defaultName: where.defaultName,
    readText: readBoundedText,
    isLocalHost,
    localGpuCount,
    ...(schema && { rejected: schema.rejected }),
  };
  const result = normalise(doc as unknown as RawConfig, source, ctx);
  if (!result.config || earlier.length || schema) fail([...(schema?.problems ?? []), ...result.problems]);
  return {
    config: result.config!,
    warnings: ordered(result.warnings),
    file: where.file,
    ...(where.path !== undefined && { path: where.path }),
    raw: written,
  };
}

/** Problems in reading order: grouped by file (in order of appearance), then line and column. */
function ordered(problems: ConfigProblem[]): ConfigProblem[] {
  const fileOrder = new Map<string, number>();
  for (const p of problems) if (!fileOrder.has(p.file)) fileOrder.set(p.file, fileOrder.size);
  const key = (p: ConfigProblem) => [fileOrder.get(p.file)!, p.line || Infinity, p.col];
  return [...problems].sort((a, b) => {
    const [ka, kb] = [key(a), key(b)];
    return ka[0] - kb[0] || ka[1] - kb[1] || ka[2] - kb[2];
  });
}

function nameFromFile(file: string): string {
  const stem = basename(file, extname(file))
    .replace(/[^A-Za-z0-9._-]+/g, '-')
    .slice(0, 64);
  return stem || 'dtrain';
}

/** Where editors find the schema: the copy shipped in configs/, else the schema's $id. */
export function schemaLocation(): string {
  const shipped = new URL('../../configs/dtrain.schema.json', import.meta.url);
  return existsSync(fileURLToPath(shipped)) ? shipped.href : 'https://dtrain.dev/schema/config.json';
}

/**
 * Writes the config as written (no defaults spelled out), with the schema comment for editors; mode 0600.
 * `file` is replaced whole (tmp + rename: a reader sees the old file or the new one). Refused (exit 2): a
 * symbolic link (the write would land on whatever it names), anything but a regular file (a device, a FIFO,
 * a directory), and the config, hostfile or env_file this launch reads (the copy has none of the source's
 * comments).
 */
export async function saveConfig(loaded: LoadedConfig, file: string): Promise<void> {
  const target = resolve(file);
  let st: Stats | undefined;
  try {
    st = lstatSync(target, { throwIfNoEntry: false });
  } catch (err) {
    throw new UsageError(`cannot write ${file}: ${(err as Error).message}`);
  }
  if (st?.isSymbolicLink())
    throw new UsageError(`--save-config ${file} is a symbolic link: name the file itself, not a link to it`);
  // The rename below would put the copy in the place of whatever is there: a device node (/dev/null), a FIFO.
  if (st && !st.isFile())
    throw new UsageError(`cannot write ${file}: it is ${st.isDirectory() ? 'a directory' : 'not a regular file'}`);
  const real = realPath(target);
  const inputs: [string, string | undefined][] = [
    ['the config', loaded.path],
    ['the hostfile', loaded.config.hostfile],
    ['the env_file', loaded.config.env_file],
  ];
  for (const [what, path] of inputs)
    if (real !== undefined && path !== undefined && realPath(path) === real)
      throw new UsageError(`--save-config ${file} is ${what} this launch reads: name another file`);

  // Paths in a config are relative to its own folder: the copy may live elsewhere, so make them absolute.
  const doc = { ...loaded.raw };
  if (doc.hostfile !== undefined && loaded.config.hostfile) doc.hostfile = loaded.config.hostfile;
  if (doc.env_file !== undefined && loaded.config.env_file) doc.env_file = loaded.config.env_file;
  const text =
    `# yaml-language-server: $schema=${schemaLocation()}\n` +
    `# written by dtrain from ${loaded.file}\n` +
    yaml().stringify(doc);
  try {
    // The config may hold secrets (env): owner-only, also when it replaces a file others could read.
    await writeFileDurably(target, text, 0o600);
  } catch (err) {
    // not Node's message: it names the tmp file, not the one asked for
    const code = (err as NodeJS.ErrnoException).code;
    const why = code === 'ENOENT' ? 'no such folder' : code === 'EACCES' ? 'permission denied' : code;
    throw new UsageError(`cannot write ${file}: ${why ?? (err as Error).message}`);
  }
}

/** The file's path with every link resolved; undefined when there is no such file (nothing to overwrite). */
function realPath(path: string): string | undefined {
  try {
    return realpathSync(path);
  } catch {
    return undefined;
  }
}
