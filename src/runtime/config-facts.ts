/**
 * The config's defaults and enums for the keys the worker environment carries (worker-env-table.ts), read
 * from the schema, the single source. The build (scripts/build/config-facts.js) replaces the built module
 * with the same two functions over a table it generates from the schema, so that neither the agent nor a
 * worker's `import 'dtrain'` loads the whole schema to find nine values.
 */
import { configSchema } from '../config/schema.js';

function keySchema(key: string): { default?: unknown; enum?: readonly unknown[] } {
  let node: unknown = configSchema;
  for (const part of key.split('.')) node = (node as { properties: Record<string, unknown> }).properties[part];
  return node as { default?: unknown; enum?: readonly unknown[] };
}

/** The default of a config key, as the environment carries it. */
export function configDefault(key: string): string {
  return String(keySchema(key).default);
}

/** The values a config key's enum allows, as text. */
export function configEnum(key: string): readonly string[] {
  return (keySchema(key).enum ?? []).map(String);
}
