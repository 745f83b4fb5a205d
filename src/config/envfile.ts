/** env_file: KEY=VALUE lines ('#' comments, optional "export ", values optionally quoted), like .deepspeed_env. */
import { ENV_NAME_PATTERN, ENV_NAME_RULE } from './env-name.js';
import type { TextProblem } from './hostfile.js';

const ENV_NAME = new RegExp(ENV_NAME_PATTERN);

/** One KEY=VALUE line. What a worker may be given is env-rules.ts's, checked by the caller. */
export interface EnvFileEntry {
  key: string;
  value: string;
  line: number;
  keyCol: number;
  /** where the value starts (its opening quote, if quoted) */
  valueCol: number;
}

/** The lines in file order (a key may repeat: the last one counts) and the lines that are not KEY=VALUE. */
export function parseEnvFile(text: string): { entries: EnvFileEntry[]; problems: TextProblem[] } {
  const entries: EnvFileEntry[] = [];
  const problems: TextProblem[] = [];
  text.split(/\r?\n/).forEach((raw, i) => {
    const line = i + 1;
    if (!raw.trim() || raw.trim().startsWith('#')) return;
    const m = /^(\s*(?:export\s+)?)([^=\s]*)(\s*=\s*)(.*)$/.exec(raw);
    if (!m) return void problems.push({ line, col: 1, message: 'expected KEY=VALUE' });
    const [, lead, key, assign, rawValue] = m;
    const keyCol = lead.length + 1;
    if (!ENV_NAME.test(key)) return void problems.push({ line, col: keyCol, message: `"${key}" ${ENV_NAME_RULE}` });
    let value = rawValue.trim();
    const q = value[0];
    if ((q === '"' || q === "'") && value.length >= 2 && value.endsWith(q)) value = value.slice(1, -1);
    entries.push({ key, value, line, keyCol, valueCol: keyCol + key.length + assign.length });
  });
  return { entries, problems };
}
