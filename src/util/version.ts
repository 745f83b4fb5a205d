import { readFileSync } from 'node:fs';

let cached: string | undefined;
/** dtrain's own version, read once from package.json (controller and agents compare it). */
export function packageVersion(): string {
  cached ??= (JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { version: string })
    .version;
  return cached;
}
