/**
 * Quoting for the batch scripts dtrain renders. Every value that came from the config or the file
 * system goes through here: a path with a space or a quote must not split or end a command.
 */

/** One shell word: bare when it is plainly safe, otherwise single-quoted ('\'' for embedded quotes). */
export function shellWord(value: string): string {
  if (value !== '' && /^[A-Za-z0-9_@%+=:,./-]+$/.test(value)) return value;
  return `'${value.replaceAll("'", `'\\''`)}'`;
}

export function shellCommand(argv: readonly string[]): string {
  return argv.map(shellWord).join(' ');
}

const NAMED_ESCAPES: Record<string, string> = { '\\': '\\\\', '\n': '\\n', '\r': '\\r', '\t': '\\t' };

/**
 * Text for a `# ...` comment line: a line break would end the comment and make the rest a command, so
 * control characters (and Unicode line separators) are written as escapes and the comment stays one line.
 */
export function shellComment(text: string): string {
  let out = '';
  for (const c of text) {
    const code = c.codePointAt(0)!;
    const control = code < 0x20 || code === 0x7f || code === 0x85 || code === 0x2028 || code === 0x2029;
    out += NAMED_ESCAPES[c] ?? (control ? `\\u${code.toString(16).padStart(4, '0')}` : c);
  }
  return out;
}
