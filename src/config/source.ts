/**
 * YAML with source positions: parse once, keep the AST, and answer "where is key.path?" for every
 * problem found later (schema, semantic, --set), so each message can say file:line:col.
 */
import type { Document, LineCounter, Node, Pair, YAMLMap } from 'yaml';
import type { ConfigProblem } from '../util/errors.js';
import { yaml } from './yaml-lib.js';

export type PathSegment = string | number;

/** How many nodes one alias may expand to (yaml's maxAliasCount): more is refused as an alias bomb. */
const MAX_ALIAS_COUNT = 1000;

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
    const { LineCounter, isMap, isScalar, isSeq } = yaml();
    const lines = new LineCounter();
    const read = parseYaml(text, lines);
    const { doc } = read;
    const source = new ConfigSource(file, doc, lines);
    const problems: ConfigProblem[] = read.problems.map((p) => ({
      file,
      ...lines.linePos(p.at),
      path: '',
      message: `${PREFIX[p.kind]}${p.message}`,
    }));
    if (!doc || problems.length) return { source, value: undefined, problems };
    // A repeated key still leaves a document to check (the later value wins): report it with the rest.
    problems.push(...duplicateKeys(doc.contents, text, file, lines));
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
    let value: Record<string, unknown>;
    try {
      value = yamlToJS(doc) as Record<string, unknown>;
    } catch (err) {
      // an alias bomb: a config error, at the first alias
      let at: Position = { line: 1, col: 1 };
      yaml().visit(doc, {
        Alias: (_key, node) => {
          at = source.nodePosition(node) ?? at;
          return yaml().visit.BREAK;
        },
      });
      return {
        source,
        value: undefined,
        problems: [{ file, ...at, path: '', message: `${PREFIX.read}${(err as Error).message}` }],
      };
    }
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
    const { isMap, isSeq } = yaml();
    let node: unknown = this.doc.contents;
    let best = this.nodePosition(node as Node) ?? { line: 1, col: 1 };
    for (let i = 0; i < path.length; i++) {
      const seg = path[i];
      const last = i === path.length - 1;
      if (isMap(node)) {
        const pair = this.pairOf(node, String(seg));
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

  /** a mapping's first pair with this key, through an index built once per mapping: a problem per key of a
   * large mapping must not cost a scan of it each */
  private pairOf(map: YAMLMap, key: string): Pair | undefined {
    let index = this.pairIndex.get(map);
    if (!index) {
      index = new Map();
      const { isPair, isScalar } = yaml();
      for (const p of map.items)
        if (isPair(p) && isScalar(p.key) && !index.has(String(p.key.value))) index.set(String(p.key.value), p);
      this.pairIndex.set(map, index);
    }
    return index.get(key);
  }

  private readonly pairIndex = new WeakMap<YAMLMap, Map<string, Pair>>();

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

/** How deep lists and mappings may nest in a config or a --set value (README.md "Limits"). */
export const MAX_NESTING = 100;

/** What a reading problem's message is prefixed with in a config file's line. */
const PREFIX = { syntax: 'YAML syntax error: ', read: 'cannot read the YAML: ', plain: '' };

export interface YamlProblem {
  /** offset in the text */
  at: number;
  kind: keyof typeof PREFIX;
  message: string;
}

/**
 * One YAML document as dtrain reads one (a config file, a --set value): with merge keys, every key a
 * string, each alias after its anchor. Nesting deeper than MAX_NESTING is refused while the parser runs:
 * yaml's parser slows down with depth and its composer recurses per level (a stack overflow at a few
 * hundred). No document is returned then.
 */
export function parseYaml(text: string, lines?: LineCounter): { doc?: Document.Parsed; problems: YamlProblem[] } {
  const { Composer, Lexer, Parser, YAMLParseError } = yaml();
  lines?.addNewLine(0);
  const parser = new Parser(lines?.addNewLine);
  let tooDeepAt: number | undefined;
  // parseDocument's parser run, with a depth check: tokens go to the composer as they come, as there
  function* tokens() {
    for (const lexeme of new Lexer().lex(text)) {
      const at = parser.offset;
      yield* parser.next(lexeme);
      // the stack holds the document, each open collection and at most one scalar: count only near the limit
      if (
        parser.stack.length > MAX_NESTING + 1 &&
        parser.stack.filter((t) => COLLECTIONS.has(t.type)).length > MAX_NESTING
      ) {
        tooDeepAt = at;
        return;
      }
    }
    yield* parser.end();
  }
  // uniqueKeys: false: yaml's own check compares each key with every earlier one (quadratic); ours is linear.
  // stringKeys: a list or mapping as a key would become its text, with a warning from Node on stderr.
  const composer = new Composer({ uniqueKeys: false, merge: true, stringKeys: true });
  let doc: Document.Parsed | undefined;
  for (const next of composer.compose(tokens(), true, text.length)) {
    if (tooDeepAt !== undefined) break;
    if (!doc) doc = next;
    else {
      doc.errors.push(new YAMLParseError([next.range[0], next.range[1]], 'MULTIPLE_DOCS', 'several documents'));
      break;
    }
  }
  if (tooDeepAt !== undefined) return { problems: [{ at: tooDeepAt, kind: 'read', message: TOO_DEEP }] };
  const problems = doc!.errors.map(problemOf);
  // the composer's own guard, had the limit above let too deep a document through: one line, not its cascade
  const tooDeep = problems.find((p) => p.message === TOO_DEEP);
  if (tooDeep) return { problems: [tooDeep] };
  if (!problems.length) problems.push(...undefinedAliases(doc!));
  return { doc: doc!, problems };
}

/** The document's value; an alias expanding too far (a "billion laughs" document) throws, saying so. */
export function yamlToJS(doc: Document.Parsed): unknown {
  try {
    return doc.toJS({ maxAliasCount: MAX_ALIAS_COUNT });
  } catch (err) {
    if (!/excessive alias/i.test((err as Error).message)) throw err;
    throw new Error(`its aliases expand to more than ${MAX_ALIAS_COUNT} nodes each (an alias bomb?)`);
  }
}

const COLLECTIONS = new Set(['block-map', 'block-seq', 'flow-collection']);
const TOO_DEEP = `lists and mappings nest more than ${MAX_NESTING} levels deep`;

function problemOf(e: { code: string; message: string; pos: [number, number] }): YamlProblem {
  const at = e.pos[0];
  if (e.code === 'MULTIPLE_DOCS')
    return { at, kind: 'plain', message: 'the file holds several YAML documents (---): a config is a single document' };
  if (e.code === 'NON_STRING_KEY')
    return { at, kind: 'plain', message: 'a key must be a string (a name), not a list, a mapping or an alias' };
  if (e.code === 'RESOURCE_EXHAUSTION') return { at, kind: 'read', message: TOO_DEEP };
  // yaml's messages are already one line; make them read as YAML syntax errors.
  return { at, kind: 'syntax', message: e.message.replace(/\s+/g, ' ').replace(/[.:]\s*$/, '') };
}

/** Each alias with no anchor of its name before it, in yaml's own order (the one toJS resolves aliases in). */
function undefinedAliases(doc: Document.Parsed): YamlProblem[] {
  const { isAlias, visit } = yaml();
  const anchors = new Set<string>();
  const problems: YamlProblem[] = [];
  visit(doc, {
    Node: (_key, node) => {
      if (isAlias(node) && !anchors.has(node.source))
        problems.push({
          at: node.range?.[0] ?? 0,
          kind: 'read',
          message: `alias *${node.source} is not defined (no anchor &${node.source} before it)`,
        });
      else if (!isAlias(node) && node.anchor) anchors.add(node.anchor);
    },
  });
  return problems;
}

/** Every repeated key of every mapping, each with its key path: one pass, a set of keys per mapping. */
function duplicateKeys(root: unknown, text: string, file: string, lines: LineCounter): ConfigProblem[] {
  const { isMap, isSeq, isScalar } = yaml();
  const problems: ConfigProblem[] = [];
  const stack: { node: unknown; path: PathSegment[] }[] = [{ node: root, path: [] }];
  while (stack.length) {
    const { node, path } = stack.pop()!;
    if (isMap(node)) {
      const seen = new Set<string>();
      for (const pair of node.items) {
        const key = isScalar(pair.key) ? pair.key : undefined;
        const name = key ? String(key.value) : '';
        // merge keys (<<) may repeat; every key is a string (parseYaml), so 1 and "1" are the same key
        if (key && name !== '<<') {
          if (seen.has(name) && key.range) {
            const written = text.slice(key.range[0], key.range[1]).trim();
            const shownKey = written.startsWith('"') ? written : `"${written.replace(/^'|'$/g, '')}"`;
            problems.push({
              file,
              ...lines.linePos(key.range[0]),
              path: [...path, name].join('.'),
              message: `duplicate key ${shownKey}: each key may appear once in a mapping`,
            });
          }
          seen.add(name);
        }
        stack.push({ node: pair.value, path: [...path, name] });
      }
    } else if (isSeq(node)) {
      node.items.forEach((item, i) => stack.push({ node: item, path: [...path, i] }));
    }
  }
  return problems;
}
