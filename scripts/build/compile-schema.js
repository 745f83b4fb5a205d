// Build step (after tsc): compile the config JSON Schema to standalone validation code, so `dtrain`
// starts without ajv's compiler. dist/config/ajv.js falls back to compiling at run time without it.
import { writeFileSync } from 'node:fs';
import standaloneCode from 'ajv/dist/standalone/index.js';

const dist = new URL('../../dist/config/', import.meta.url);
const { createAjv, compileSchema } = await import(new URL('ajv.js', dist).href);
const ajv = createAjv({ standalone: true });
const code = standaloneCode.default(ajv, compileSchema(ajv));
// ajv's "esm" output still require()s its small runtime helpers: give the module a require.
const prelude = "import { createRequire } from 'node:module';\nconst require = createRequire(import.meta.url);\n";
const out = new URL('schema-validator.js', dist);
writeFileSync(out, prelude + code);
console.log(`compile-schema: wrote ${out.pathname}`);
