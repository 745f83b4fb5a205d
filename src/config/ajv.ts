/**
 * The schema validator. `npm run build` compiles the schema to standalone code
 * (dist/config/schema-validator.js, by scripts/build/compile-schema.js) so the CLI starts without
 * running ajv's compiler; when that file is missing (tests from source, a partial build) the schema is
 * compiled here at first use. Both paths use createAjv() so they behave the same.
 * ajv itself is required only by createAjv(): importing it costs ~45 ms of every `dtrain` start, and
 * with the standalone validator the CLI never needs it.
 */
import type { Ajv2020, AnySchema, ErrorObject } from 'ajv/dist/2020.js';
import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';
import { configSchema } from './schema.js';

export interface SchemaValidator {
  (data: unknown): boolean;
  errors?: ErrorObject[] | null;
}

/** allErrors: report every problem at once; useDefaults: the schema's defaults fill the document. */
export function createAjv(opts: { standalone?: boolean } = {}): Ajv2020 {
  const { Ajv2020: Ajv } = createRequire(import.meta.url)('ajv/dist/2020.js') as typeof import('ajv/dist/2020.js');
  const ajv = new Ajv({
    allErrors: true,
    useDefaults: true,
    strict: true,
    strictTypes: false,
    code: opts.standalone ? { source: true, esm: true } : {},
  });
  ajv.addKeyword({ keyword: 'errorMessage', schemaType: 'string' });
  return ajv;
}

export function compileSchema(ajv: Ajv2020) {
  return ajv.compile(configSchema as unknown as AnySchema);
}

let cached: Promise<SchemaValidator> | undefined;

export function schemaValidator(): Promise<SchemaValidator> {
  cached ??= loadValidator();
  return cached;
}

async function loadValidator(): Promise<SchemaValidator> {
  // A variable specifier: the file exists only in dist/, after the build step.
  const compiled = new URL('./schema-validator.js', import.meta.url);
  if (!existsSync(fileURLToPath(compiled))) return compileSchema(createAjv()) as SchemaValidator;
  const mod = (await import(compiled.href)) as { default: SchemaValidator };
  return mod.default;
}
