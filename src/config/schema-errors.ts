/**
 * Turns ajv's errors into one located, readable problem each: unions (anyOf) report once with the
 * schema's errorMessage instead of one line per branch; unknown keys get a "did you mean".
 * rejectedPaths() says which values those errors make unusable, for schema-repair.ts.
 */
import type { ErrorObject } from 'ajv/dist/2020.js';
import type { ConfigProblem } from '../util/errors.js';
import { configSchema } from './schema.js';
import type { ConfigSource, PathSegment } from './source.js';
import { closest } from './suggest.js';

type SchemaNode = Record<string, unknown>;

export function schemaProblems(errors: ErrorObject[], data: unknown, source: ConfigSource): ConfigProblem[] {
  const problems: ConfigProblem[] = [];
  for (const e of reported(errors)) {
    const path = pointerSegments(e.instancePath);
    const value = valueAt(data, path);
    const parent = parentSchema(e);
    const custom = typeof parent?.errorMessage === 'string' ? parent.errorMessage : undefined;
    switch (e.keyword) {
      case 'additionalProperties': {
        const key = String(e.params.additionalProperty);
        const meant = meantKey(e, path);
        const suggestion = meant ? ` (did you mean "${meant.slice(path.length).join('.')}"?)` : '';
        problems.push(source.problem([...path, key], `unknown key${suggestion}`, 'key'));
        break;
      }
      case 'required':
        problems.push(source.problem(path, `missing required key "${e.params.missingProperty}"`));
        break;
      case 'propertyNames': {
        const name = String(e.params.propertyName);
        const rule = (parent?.propertyNames as { errorMessage?: string } | undefined)?.errorMessage;
        problems.push(source.problem([...path, name], `key "${name}" ${rule ?? 'is not allowed'}`, 'key'));
        break;
      }
      default:
        // env values may be secrets: say what kind of value was given, never the value
        problems.push(
          source.problem(
            path,
            `${custom ?? genericMessage(e)}, got ${path[0] === 'env' ? describeKind(value) : describe(value)}`,
          ),
        );
    }
  }
  return dedupe(problems);
}

/**
 * The values the errors reject, as key paths: the value itself; for a missing required key, that key;
 * for an unknown key, the key it probably meant (its "did you mean"), whose value the user meant to set.
 */
export function rejectedPaths(errors: ErrorObject[]): PathSegment[][] {
  return reported(errors).flatMap((e): PathSegment[][] => {
    const path = pointerSegments(e.instancePath);
    switch (e.keyword) {
      case 'additionalProperties': {
        const meant = meantKey(e, path);
        return meant ? [meant] : [];
      }
      case 'required':
        return [[...path, String(e.params.missingProperty)]];
      case 'propertyNames':
        return [[...path, String(e.params.propertyName)]];
      default:
        return [path];
    }
  });
}

/** The errors worth a message: not each branch of a failed union, not the inner error of propertyNames. */
function reported(errors: ErrorObject[]): ErrorObject[] {
  const unions = errors.filter((e) => e.keyword === 'anyOf' || e.keyword === 'oneOf');
  const insideUnion = (e: ErrorObject) =>
    unions.some(
      (u) => u !== e && e.schemaPath.startsWith(u.schemaPath + '/') && isUnder(e.instancePath, u.instancePath),
    );
  return errors.filter((e) => !insideUnion(e) && !('propertyName' in e));
}

function parentSchema(e: ErrorObject): SchemaNode | undefined {
  return schemaAt(e.schemaPath.split('/').slice(1, -1));
}

function genericMessage(e: ErrorObject): string {
  // the params of the keywords below (Ajv's ErrorObject types them loosely)
  const p = e.params as {
    type?: string;
    allowedValues: unknown[];
    allowedValue?: unknown;
    limit: number;
    i: number;
    j: number;
    pattern: string;
  };
  switch (e.keyword) {
    case 'type':
      return `must be ${String(p.type).split(',').map(article).join(' or ')}`;
    case 'enum':
      return `must be one of ${p.allowedValues.map((v) => JSON.stringify(v)).join(', ')}`;
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

function describeKind(value: unknown): string {
  if (typeof value === 'string') return 'a string';
  if (typeof value === 'number' || typeof value === 'boolean') return `a ${typeof value}`;
  return describe(value);
}

/** What an unknown key was probably meant to be: a sibling key; for a top-level key, a section's key of that name. */
function meantKey(e: ErrorObject, path: PathSegment[]): PathSegment[] | undefined {
  const key = String(e.params.additionalProperty);
  const near = closest(key, Object.keys((parentSchema(e)?.properties as SchemaNode | undefined) ?? {}));
  if (near) return [...path, near];
  if (path.length === 0) {
    for (const [section, schema] of Object.entries(configSchema.properties)) {
      const props = (schema as SchemaNode).properties as SchemaNode | undefined;
      if (props && Object.hasOwn(props, key)) return [section, key];
    }
  }
  return undefined;
}

export function pointerSegments(pointer: string): PathSegment[] {
  return pointer
    ? pointer
        .split('/')
        .slice(1)
        .map((s) => s.replace(/~1/g, '/').replace(/~0/g, '~'))
    : [];
}

function isUnder(path: string, prefix: string): boolean {
  return path === prefix || path.startsWith(prefix + '/');
}

export function valueAt(data: unknown, path: PathSegment[]): unknown {
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
