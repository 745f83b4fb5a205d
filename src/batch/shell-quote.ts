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
