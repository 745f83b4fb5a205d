/**
 * YAML with source positions: parse once, keep the AST, and answer "where is key.path?" for every
 * problem found later (schema, semantic, --set), so each message can say file:line:col.
 */
import type { Document, LineCounter, Node } from 'yaml';
import type { ConfigProblem } from '../util/errors.js';
import { yaml } from './yaml-lib.js';

export type PathSegment = string | number;

export interface Position {
  line: number;
  col: number;
}

export class ConfigSource {
  private constructor(
    readonly file: string,
    private readonly doc: Document.Parsed | undefined,
    private readonly lines: LineCounter | undefined,
    /** for configs built from flags: the flag that set each top-level key (or dotted path) */
    private readonly flags: Record<string, string> = {},
  ) {}

  /** --set overrides: a problem under one of these paths points at the argument, not the file */
  private readonly overrides: { path: PathSegment[]; arg: string }[] = [];

  /** Parses YAML text; syntax errors, duplicate keys, an empty file or a non-mapping top level become problems. */
  static parse(file: string, text: string): { source: ConfigSource; value: unknown; problems: ConfigProblem[] } {
    const { LineCounter, parseDocument, isMap, isScalar, isSeq } = yaml();
    const lines = new LineCounter();
    const doc = parseDocument(text, { lineCounter: lines, prettyErrors: false, uniqueKeys: true, merge: true });
    const source = new ConfigSource(file, doc, lines);
    const problems: ConfigProblem[] = doc.errors.map((e) => {
      const { line, col } = lines.linePos(e.pos[0]);
      const path = e.code === 'DUPLICATE_KEY' ? keyPathAt(doc.contents, e.pos[0]) : undefined;
      return {
        file,
        line,
        col,
        path: path?.join('.') ?? '',
        message: yamlMessage(e.code, e.message, text.slice(e.pos[0])),
      };
    });
    // A repeated key still leaves a document to check (the later value wins): report it with the rest.
    const duplicatesOnly =
      problems.length > 0 && doc.errors.every((e) => e.code === 'DUPLICATE_KEY') && isMap(doc.contents);
    if (problems.length && !duplicatesOnly) return { source, value: undefined, problems };
    if (doc.contents === null || (isScalar(doc.contents) && doc.contents.value === null)) {
      return {
        source,
        value: undefined,
        problems: [
          {
            file,
            line: 0,
            col: 0,
            path: '',
            message: 'the file is empty: a config is a mapping with at least "entrypoint"',
          },
        ],
      };
    }
    if (!isMap(doc.contents)) {
      const at = source.nodePosition(doc.contents) ?? { line: 1, col: 1 };
      const what = isSeq(doc.contents) ? 'a list' : 'a single value';
      return {
        source,
        value: undefined,
        problems: [{ file, ...at, path: '', message: `the top level must be a mapping of config keys, not ${what}` }],
      };
    }
    const value = doc.toJS({ maxAliasCount: 1000 }) as Record<string, unknown>;
    keepEnvNumbersAsWritten(doc, value);
    return { source, value, problems };
  }

  /** A source for configs built without a file (command-line flags): problems point at the flag. */
  static synthetic(label: string, flags: Record<string, string>): ConfigSource {
    return new ConfigSource(label, undefined, undefined, flags);
  }

  withOverride(path: PathSegment[], arg: string): void {
    this.overrides.push({ path, arg });
  }

  /**
   * A problem at `path`. `at: 'key'` points at the key itself (unknown keys), otherwise at the value;
   * for a path that is not in the file, the nearest enclosing node that is.
   */
  problem(path: PathSegment[], message: string, at: 'key' | 'value' = 'value', colOffset = 0): ConfigProblem {
    const dotted = path.join('.');
    const override = this.overrides.find(
      (o) => startsWith(path, o.path) || (path.length > 0 && startsWith(o.path, path)),
    );
    if (override) return { file: `--set ${override.arg}`, line: 0, col: 0, path: dotted, message };
    if (!this.doc) {
      const flag = [path.slice(0, 2).join('.'), String(path[0])].find((k) => Object.hasOwn(this.flags, k));
      return { file: flag ? this.flags[flag] : this.file, line: 0, col: 0, path: dotted, message };
    }
    const pos = this.locate(path, at);
    return { file: this.file, line: pos.line, col: pos.col + (pos.exact ? colOffset : 0), path: dotted, message };
  }

  /** The scalar's text starts this many columns after its node start (1 for a quoted scalar). */
  valueQuoteWidth(path: PathSegment[]): number {
    if (!this.doc) return 0;
    const node = this.doc.getIn(path, true);
    return yaml().isScalar(node) && (node.type === 'QUOTE_DOUBLE' || node.type === 'QUOTE_SINGLE') ? 1 : 0;
  }

  private locate(path: PathSegment[], at: 'key' | 'value'): Position & { exact: boolean } {
    if (!this.doc) return { line: 0, col: 0, exact: false };
    const { isMap, isPair, isScalar, isSeq } = yaml();
    let node: unknown = this.doc.contents;
    let best = this.nodePosition(node as Node) ?? { line: 1, col: 1 };
    for (let i = 0; i < path.length; i++) {
      const seg = path[i];
      const last = i === path.length - 1;
      if (isMap(node)) {
        const pair = node.items.find((p) => isPair(p) && isScalar(p.key) && String(p.key.value) === String(seg));
        if (!pair) return { ...best, exact: false };
        if (last && at === 'key') return { ...(this.nodePosition(pair.key as Node) ?? best), exact: true };
        node = pair.value;
        // `key:` with no value: point at the key
        best = this.nodePosition(node as Node) ?? this.nodePosition(pair.key as Node) ?? best;
      } else if ((isSeq(node) && typeof seg === 'number') || (isSeq(node) && /^\d+$/.test(String(seg)))) {
        const item = (node as { items: unknown[] }).items[Number(seg)];
        if (item === undefined) return { ...best, exact: false };
        node = item;
        best = this.nodePosition(node as Node) ?? best;
      } else {
        return { ...best, exact: false };
      }
    }
    return { ...best, exact: true };
  }

  private nodePosition(node: Node | null | undefined): Position | undefined {
    if (!node || !node.range || !this.lines) return undefined;
    return this.lines.linePos(node.range[0]);
  }
}

/**
 * Environment values are strings: `LR: 1.10` or `MASK: 0x1F` must reach workers as written, not as the
 * number YAML reads (1.1, 31).
 */
function keepEnvNumbersAsWritten(doc: Document.Parsed, value: Record<string, unknown>): void {
  const { isMap, isScalar } = yaml();
  const envNode = doc.get('env', true);
  const env = value.env;
  if (!isMap(envNode) || env === null || typeof env !== 'object') return;
  for (const pair of envNode.items) {
    const v = pair.value;
    if (
      isScalar(pair.key) &&
      isScalar(v) &&
      typeof v.value === 'number' &&
      v.type === 'PLAIN' &&
      typeof v.source === 'string'
    ) {
      (env as Record<string, unknown>)[String(pair.key.value)] = v.source;
    }
  }
}

function startsWith(path: PathSegment[], prefix: PathSegment[]): boolean {
  return prefix.length <= path.length && prefix.every((s, i) => String(s) === String(path[i]));
}

function yamlMessage(code: string, message: string, at: string): string {
  if (code === 'DUPLICATE_KEY') {
    const key = /^\s*("[^"\n]*"|'[^'\n]*'|[^:\n]+?)\s*:/.exec(at)?.[1] ?? '';
    return `duplicate key ${key.startsWith('"') ? key : `"${key.replace(/^'|'$/g, '')}"`}: each key may appear once in a mapping`;
  }
  if (code === 'MULTIPLE_DOCS') return 'the file holds several YAML documents (---): a config is a single document';
  // yaml's messages are already one line; make them read as YAML syntax errors.
  return `YAML syntax error: ${message.replace(/\s+/g, ' ').replace(/[.:]\s*$/, '')}`;
}

/** The key path of the mapping key that starts at `pos` (a duplicate key's position), if any. */
function keyPathAt(node: unknown, pos: number, path: PathSegment[] = []): PathSegment[] | undefined {
  const { isMap, isSeq, isScalar } = yaml();
  if (isMap(node)) {
    for (const pair of node.items) {
      const key = isScalar(pair.key) ? String(pair.key.value) : '';
      if ((pair.key as { range?: number[] } | null)?.range?.[0] === pos) return [...path, key];
      const inner = keyPathAt(pair.value, pos, [...path, key]);
      if (inner) return inner;
    }
  } else if (isSeq(node)) {
    for (const [i, item] of node.items.entries()) {
      const inner = keyPathAt(item, pos, [...path, i]);
      if (inner) return inner;
    }
  }
  return undefined;
}
