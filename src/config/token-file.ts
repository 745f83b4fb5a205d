/**
 * monitor.token_file: the secret a monitor listening beyond loopback asks its clients for. One check, made
 * when a config is loaded (`validate` reports it at the key's line and column) and again where a launch
 * reads the token: a regular file, nobody else may read it, one non-empty token, at most MAX_TOKEN_FILE_BYTES.
 */
import { closeSync, fstatSync, readSync } from 'node:fs';
import { NotRegularFileError, openRegularFileSync } from '../util/regular-file.js';

/** A token file holds one line; a larger file is not one (README.md "Limits"). */
export const MAX_TOKEN_FILE_BYTES = 4096;

/** The token, or why the file cannot hold one (the rest of a "monitor.token_file <path>: ..." line). */
export type TokenFileRead = { token: string; problem?: undefined } | { problem: string };

export function readTokenFile(path: string): TokenFileRead {
  let fd: number;
  try {
    fd = openRegularFileSync(path);
  } catch (err) {
    if (err instanceof NotRegularFileError) return { problem: 'not a regular file' };
    const code = (err as NodeJS.ErrnoException).code;
    return { problem: code === 'ENOENT' ? 'no such file' : code === 'EACCES' ? 'permission denied' : String(code) };
  }
  try {
    const st = fstatSync(fd);
    if ((st.mode & 0o077) !== 0) return { problem: 'others may read it: chmod 600 it' };
    if (st.size > MAX_TOKEN_FILE_BYTES) return { problem: `larger than ${MAX_TOKEN_FILE_BYTES} bytes: not a token` };
    const buf = Buffer.alloc(MAX_TOKEN_FILE_BYTES + 1);
    let got = 0;
    for (let n = 1; n > 0 && got < buf.length; got += n) n = readSync(fd, buf, got, buf.length - got, got);
    if (got > MAX_TOKEN_FILE_BYTES) return { problem: `larger than ${MAX_TOKEN_FILE_BYTES} bytes: not a token` };
    const token = buf.subarray(0, got).toString('utf8').trim();
    if (!token) return { problem: 'it is empty' };
    if (/\s/.test(token)) return { problem: 'more than one word: a token file holds the token alone' };
    return { token };
  } finally {
    closeSync(fd);
  }
}
