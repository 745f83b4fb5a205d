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
  return text.replace(
    /[\\\x00-\x1f\x7f\u0085\u2028\u2029]/g,
    (c) => NAMED_ESCAPES[c] ?? `\\x${c.charCodeAt(0).toString(16).padStart(2, '0')}`,
  );
}
