/**
 * `--set key.path=value`: scripted sweeps without editing the file. Paths follow the schema (list
 * indices allowed: nodes.0.slots); a path the schema does not have, or an index past the end of a
 * list, is an error. Values parse as YAML scalars and are validated with the rest of the document.
 */
import type { ConfigProblem } from '../util/errors.js';
import { isPrototypeKey, PROTOTYPE_KEY_MESSAGE } from './prototype-keys.js';
import { configSchema } from './schema.js';
import { parseYaml, yamlToJS, type ConfigSource, type PathSegment } from './source.js';
import { didYouMean } from './suggest.js';
import { isSecretName, MASK, maskUrlUserInfo } from '../util/secret-names.js';

type SchemaNode = Record<string, unknown>;

export function applyOverrides(doc: Record<string, unknown>, sets: string[], source: ConfigSource): ConfigProblem[] {
  const problems: ConfigProblem[] = [];
  for (const given of sets) {
    const arg = maskedArg(given, doc.secret_env);
    const fail = (path: string, message: string) =>
      problems.push({ file: `--set ${arg}`, line: 0, col: 0, path, message });
    const eq = arg.indexOf('=');
    if (eq <= 0) {
      fail('', 'expected key.path=value, e.g. --set parallelism.zero_stage=2');
      continue;
    }
    const keys = given.slice(0, eq).split('.');
    let value: unknown;
    try {
      const text = given.slice(eq + 1);
      // env values are strings as written (1.10 stays "1.10"); everything else parses as YAML
      value = text === '' || keys[0] === 'env' ? text : parseValue(text);
    } catch (err) {
      fail(keys.join('.'), `the value is not valid YAML: ${(err as Error).message.split('\n')[0]}`);
      continue;
    }
    const walked = walk(doc, keys);
    if ('error' in walked) {
      fail(walked.at, walked.error);
      continue;
    }
    const { container, last } = walked;
    (container as Record<string | number, unknown>)[last] = value;
    source.withOverride(walked.path, arg);
  }
  return problems;
}

/**
 * A --set value as YAML reads it. Paths and plain words, and small decimal integers, are read here
 * without the YAML parser (whose import is a noticeable part of a launch's start-up): for them YAML 1.2
 * (core schema) gives the same string or number. Everything else goes through the parser.
 */
export function parseValue(text: string): unknown {
  if (PLAIN_WORD.test(text) && !CORE_WORDS.has(text)) return text;
  if (SMALL_INT.test(text)) return Number(text);
  const { doc, problems } = parseYaml(text);
  if (problems.length) throw new Error(problems[0].message);
  return yamlToJS(doc!);
}

// Starts with a letter, '_' or '/', then only word characters, '.', '/' and '-': never a number,
// a bool, null, an anchor, alias, tag, flow collection, comment or mapping in YAML.
const PLAIN_WORD = /^[A-Za-z_/][A-Za-z0-9_./-]*$/;
const CORE_WORDS = new Set(['null', 'Null', 'NULL', 'true', 'True', 'TRUE', 'false', 'False', 'FALSE']);
const SMALL_INT = /^(0|[1-9][0-9]{0,14})$/;

/**
 * Each --set is echoed in messages: a secret's value never is. `env=...` (the whole mapping) and
 * `env.NAME=...` with a secret NAME (util/secret-names.ts, or the config's secret_env) show `***`; any
 * other value has its URLs' user-info masked.
 */
function maskedArg(arg: string, secretEnv: unknown): string {
  const eq = arg.indexOf('=');
  if (eq <= 0) return maskUrlUserInfo(arg);
  const key = arg.slice(0, eq);
  const extra = Array.isArray(secretEnv) ? secretEnv.map(String) : [];
  const [section, name] = key.split('.');
  if (section === 'env' && (name === undefined || isSecretName(name, extra))) return `${key}=${MASK}`;
  return `${key}=${maskUrlUserInfo(arg.slice(eq + 1))}`;
}

type Walked =
  | { container: Record<string, unknown> | unknown[]; last: string | number; path: PathSegment[] }
  | { error: string; at: string };

/** Follows the path through the schema and the document together, creating mappings the schema has. */
function walk(doc: Record<string, unknown>, keys: string[]): Walked {
  let schema: SchemaNode | undefined = configSchema;
  let container: Record<string, unknown> | unknown[] = doc;
  const path: PathSegment[] = [];
  for (let i = 0; i < keys.length; i++) {
    const key = keys[i];
    const at = [...path, key].join('.');
    schema = deref(schema);
    if (!key) return { error: 'empty key in the path', at };
    if (isPrototypeKey(key)) return { error: `"${key}" ${PROTOTYPE_KEY_MESSAGE}`, at };
    let next: SchemaNode | undefined;
    let seg: PathSegment = key;
    const props = schema?.properties as Record<string, SchemaNode> | undefined;
    if (!Array.isArray(container) && props && Object.hasOwn(props, key)) next = props[key];
    else if (!Array.isArray(container) && typeof schema?.additionalProperties === 'object')
      next = schema.additionalProperties as SchemaNode;
    else if (Array.isArray(container)) {
      if (!/^[0-9]+$/.test(key))
        return { error: `${path.join('.')} is a list: use an index (${path.join('.')}.0)`, at };
      seg = Number(key);
      if (seg >= container.length) {
        return {
          error: `no such item: ${path.join('.')} has ${container.length} item${container.length === 1 ? '' : 's'}`,
          at,
        };
      }
      next = listItems(schema);
    } else if (props) {
      return { error: `unknown key${didYouMean(key, Object.keys(props))}`, at };
    } else {
      return { error: `${path.join('.')} is a single value, it has no "${key}"`, at };
    }
    path.push(seg);
    if (i === keys.length - 1) return { container, last: seg, path };
    const current = (container as Record<string | number, unknown>)[seg];
    const nextKey = keys.slice(0, i + 2).join('.');
    if (!isSchemaFor(next, 'object') && !listItems(deref(next))) {
      return { error: `${path.join('.')} is a single value, it has no "${keys[i + 1]}"`, at: nextKey };
    }
    if (current === undefined || current === null) {
      if (!isSchemaFor(next, 'object'))
        return { error: `${path.join('.')} is not set, so it has no item ${keys[i + 1]}`, at: nextKey };
      (container as Record<string | number, unknown>)[seg] = {};
    } else if (typeof current !== 'object') {
      return { error: `${path.join('.')} is a single value, it has no "${keys[i + 1]}"`, at: nextKey };
    }
    container = (container as Record<string | number, unknown>)[seg] as Record<string, unknown> | unknown[];
    schema = next;
  }
  return { error: 'empty path', at: '' };
}

function deref(schema: SchemaNode | undefined): SchemaNode | undefined {
  const ref = schema?.$ref;
  if (typeof ref !== 'string') return schema;
  const name = ref.replace('#/$defs/', '');
  return (configSchema.$defs as Record<string, SchemaNode>)[name];
}

function listItems(schema: SchemaNode | undefined): SchemaNode | undefined {
  if (!schema) return undefined;
  if (schema.items) return schema.items as SchemaNode;
  const branch = ((schema.anyOf as SchemaNode[] | undefined) ?? []).find((b) => b.type === 'array');
  return branch?.items as SchemaNode | undefined;
}

function isSchemaFor(schema: SchemaNode | undefined, type: string): boolean {
  const s = deref(schema);
  return s?.type === type || !!s?.properties;
}
