/**
 * What a config may put in every worker's environment, whether from `env` or from `env_file`: one set of
 * rules, so a line in the env_file is held to what the same key under `env` would be. Names are checked
 * wherever they are written; values where they take effect (`env` overrides `env_file`, as the value a
 * worker gets is the one that matters). Messages never quote a value: it may be a secret.
 */
import { RESERVED_WORKER_ENV, userEnvValueProblem, workerEnvVar } from '../runtime/worker-env-table.js';
import { isPrototypeKey } from './prototype-keys.js';

/**
 * Linux's MAX_ARG_STRLEN: exec refuses (E2BIG) a `NAME=value` string longer than this, with its NUL. One
 * variable that large stops every worker from starting, wherever it runs.
 */
export const MAX_ENV_STRING_BYTES = 131_072;

/** What is wrong with a config setting this variable at all; the message names it. */
export function envNameProblem(name: string): string | undefined {
  if (isPrototypeKey(name)) return `"${name}" cannot be set: it is not an environment variable dtrain can pass`;
  if (!RESERVED_WORKER_ENV.has(name)) return undefined;
  const key = workerEnvVar(name).configKey;
  return (
    `${name} is set by dtrain for every worker` +
    (key ? ` from ${key}: set that key instead` : '; it cannot be configured')
  );
}

/**
 * What is wrong with the value a worker would get; the message does not name the variable. `at`: where to
 * point, the value itself or (for a NUL, which an editor may not show) the key.
 */
export function envValueProblem(name: string, value: string): { message: string; at: 'key' | 'value' } | undefined {
  // The OS would refuse it later, echoing it.
  if (value.includes('\0'))
    return { message: 'the value holds a NUL byte, which no environment variable can hold', at: 'key' };
  const bytes = Buffer.byteLength(name) + 1 + Buffer.byteLength(value) + 1;
  if (bytes > MAX_ENV_STRING_BYTES)
    return {
      message:
        `${bytes} bytes as NAME=value: exec takes at most ${MAX_ENV_STRING_BYTES} per variable ` +
        '(pass a file name instead)',
      at: 'key',
    };
  const bad = userEnvValueProblem(name, value);
  return bad === undefined ? undefined : { message: bad, at: 'value' };
}
