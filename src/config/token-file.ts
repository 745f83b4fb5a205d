/**
 * monitor.token_file: the secret a monitor listening beyond loopback asks its clients for. One check, made
 * when a config is loaded (`validate` reports it at the key's line and column) and again where a launch
 * reads the token: a regular file, nobody else may read it, one non-empty token, at most MAX_TOKEN_FILE_BYTES.
 */
import { readOwnerOnlyFileSync } from '../util/regular-file.js';

/** A token file holds one line; a larger file is not one (README.md "Limits"). */
export const MAX_TOKEN_FILE_BYTES = 4096;

/** The token, or why the file cannot hold one (the rest of a "monitor.token_file <path>: ..." line). */
export type TokenFileRead = { token: string; problem?: undefined } | { problem: string };

export function readTokenFile(path: string): TokenFileRead {
  const read = readOwnerOnlyFileSync(path, MAX_TOKEN_FILE_BYTES);
  if (read.unreadable !== undefined) return { problem: read.unreadable };
  if (read.looseMode !== undefined) return { problem: 'others may read it: chmod 600 it' };
  if (read.tooLarge) return { problem: `larger than ${MAX_TOKEN_FILE_BYTES} bytes: not a token` };
  const token = read.text?.trim() ?? '';
  if (!token) return { problem: 'it is empty' };
  if (/\s/.test(token)) return { problem: 'more than one word: a token file holds the token alone' };
  return { token };
}
