/**
 * The `yaml` package, required on first use. Importing it costs ~35 ms of every `dtrain` start, and a
 * launch from torchrun-style flags (with simple --set values) never parses YAML at all.
 */
import { createRequire } from 'node:module';
import type * as Yaml from 'yaml';

let lib: typeof Yaml | undefined;

export function yaml(): typeof Yaml {
  lib ??= createRequire(import.meta.url)('yaml') as typeof Yaml;
  return lib;
}
