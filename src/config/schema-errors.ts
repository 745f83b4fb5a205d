/**
 * Turns ajv's errors into one located, readable problem each: unions (anyOf) report once with the
 * schema's errorMessage instead of one line per branch; unknown keys get a "did you mean".
 */
import type { ErrorObject } from 'ajv/dist/2020.js';
import type { ConfigProblem } from '../util/errors.js';
import { configSchema } from './schema.js';
import type { ConfigSource, PathSegment } from './source.js';
import { closest } from './suggest.js';

type SchemaNode = Record<string, unknown>;

export function schemaProblems(errors: ErrorObject[], data: unknown, source: ConfigSource): ConfigProblem[] {
  const unions = errors.filter((e) => e.keyword === 'anyOf' || e.keyword === 'oneOf');
  const insideUnion = (e: ErrorObject) =>
    unions.some((u) => u !== e && e.schemaPath.startsWith(u.schemaPath + '/') && isUnder(e.instancePath, u.instancePath));
  const problems: ConfigProblem[] = [];
  for (const e of errors) {
    if (insideUnion(e) || 'propertyName' in e) continue;
    const path = pointerSegments(e.instancePath);
    const value = valueAt(data, path);
    const parent = schemaAt(e.schemaPath.split('/').slice(1, -1));
    const custom = typeof parent?.errorMessage === 'string' ? parent.errorMessage : undefined;
    switch (e.keyword) {
      case 'additionalProperties': {
        const key = String(e.params.additionalProperty);
        const known = Object.keys((parent?.properties as SchemaNode | undefined) ?? {});
        problems.push(source.problem([...path, key], `unknown key${suggestKey(key, known, path.length === 0)}`, 'key'));
        break;
      }
      case 'required':
        problems.push(source.problem(path, `missing required key "${e.params.missingProperty}"`));
        break;
      case 'propertyNames': {
        const name = String(e.params.propertyName);
        const rule = (parent?.propertyNames as SchemaNode | undefined)?.errorMessage;
        problems.push(source.problem([...path, name], `key "${name}" ${rule ?? 'is not allowed'}`, 'key'));
        break;
      }
      default:
        problems.push(source.problem(path, `${custom ?? genericMessage(e)}, got ${describe(value)}`));
    }
  }
  return dedupe(problems);
}

function genericMessage(e: ErrorObject): string {
  const p = e.params as Record<string, unknown>;
  switch (e.keyword) {
    case 'type':
      return `must be ${String(p.type).split(',').map(article).join(' or ')}`;
    case 'enum':
      return `must be one of ${(p.allowedValues as unknown[]).map((v) => JSON.stringify(v)).join(', ')}`;
    case 'const':
      return `must be ${JSON.stringify(p.allowedValue)}`;
    case 'minimum':
      return `must be >= ${p.limit}`;
    case 'maximum':
      return `must be <= ${p.limit}`;
    case 'exclusiveMinimum':
      return `must be > ${p.limit}`;
    case 'exclusiveMaximum':
      return `must be < ${p.limit}`;
    case 'minLength':
      return p.limit === 1 ? 'must not be empty' : `must be at least ${p.limit} characters`;
    case 'minItems':
      return p.limit === 1 ? 'must not be an empty list' : `must have at least ${p.limit} items`;
    case 'uniqueItems':
      return `must not repeat items (items ${p.j} and ${p.i} are equal)`;
    case 'pattern':
      return `must match ${p.pattern}`;
    default:
      return e.message ?? `fails ${e.keyword}`;
  }
}

function article(type: string): string {
  const names: Record<string, string> = {
    integer: 'an integer',
    number: 'a number',
    string: 'a string',
    boolean: 'true or false',
    object: 'a mapping',
    array: 'a list',
    null: 'null',
  };
  return names[type] ?? type;
}

/** A value as the user would recognise it in the message. */
export function describe(value: unknown): string {
  if (value === undefined) return 'nothing';
  if (value === null) return 'an empty value';
  if (Array.isArray(value)) return 'a list';
  if (typeof value === 'object') return 'a mapping';
  if (typeof value === 'number' && !Number.isFinite(value)) return String(value);
  return JSON.stringify(value);
}

/** Sibling keys first; for a top-level key, also the sections that have a key of that name. */
function suggestKey(key: string, known: string[], topLevel: boolean): string {
  const near = closest(key, known);
  if (near) return ` (did you mean "${near}"?)`;
  if (topLevel) {
    for (const [section, schema] of Object.entries(configSchema.properties)) {
      const props = (schema as SchemaNode).properties as SchemaNode | undefined;
      if (props && key in props) return ` (did you mean "${section}.${key}"?)`;
    }
  }
  return '';
}

function pointerSegments(pointer: string): PathSegment[] {
  return pointer ? pointer.split('/').slice(1).map((s) => s.replace(/~1/g, '/').replace(/~0/g, '~')) : [];
}

function isUnder(path: string, prefix: string): boolean {
  return path === prefix || path.startsWith(prefix + '/');
}

function valueAt(data: unknown, path: PathSegment[]): unknown {
  let v = data;
  for (const s of path) v = v == null ? undefined : (v as Record<string, unknown>)[s];
  return v;
}

function schemaAt(segments: string[]): SchemaNode | undefined {
  let node: unknown = configSchema;
  for (const s of segments) {
    if (node == null || typeof node !== 'object') return undefined;
    node = (node as Record<string, unknown>)[decodeURIComponent(s.replace(/~1/g, '/').replace(/~0/g, '~'))];
  }
  return node as SchemaNode | undefined;
}

function dedupe(problems: ConfigProblem[]): ConfigProblem[] {
  const seen = new Set<string>();
  return problems.filter((p) => {
    const k = `${p.file}:${p.line}:${p.col}:${p.path}:${p.message}`;
    if (seen.has(k)) return false;
    seen.add(k);
    return true;
  });
}
