/** env_file: KEY=VALUE lines ('#' comments, optional "export ", values optionally quoted), like .deepspeed_env. */
import type { TextProblem } from './hostfile.js';
import { isPrototypeKey } from './prototype-keys.js';

export function parseEnvFile(text: string): { env: Record<string, string>; problems: TextProblem[] } {
  const env: Record<string, string> = {};
  const problems: TextProblem[] = [];
  text.split(/\r?\n/).forEach((raw, i) => {
    const line = i + 1;
    if (!raw.trim() || raw.trim().startsWith('#')) return;
    const m = /^(\s*(?:export\s+)?)([^=\s]*)\s*=(.*)$/.exec(raw);
    if (!m) return void problems.push({ line, col: 1, message: 'expected KEY=VALUE' });
    const [, lead, key, rawValue] = m;
    if (!/^[A-Za-z_][A-Za-z0-9_]*$/.test(key)) {
      return void problems.push({
        line,
        col: lead.length + 1,
        message: `"${key}" is not an environment variable name`,
      });
    }
    if (isPrototypeKey(key))
      return void problems.push({
        line,
        col: lead.length + 1,
        message: `"${key}" cannot be set: it is not an environment variable dtrain can pass`,
      });
    let value = rawValue.trim();
    const q = value[0];
    if ((q === '"' || q === "'") && value.length >= 2 && value.endsWith(q)) value = value.slice(1, -1);
    // the value is never shown: it may be a secret
    if (value.includes('\0'))
      return void problems.push({
        line,
        col: lead.length + 1,
        message: `${key}: the value holds a NUL byte, which no environment variable can hold`,
      });
    env[key] = value;
  });
  return { env, problems };
}
