// docs/config-reference.md is generated from the schema; this fails when someone changes the schema and
// forgets to regenerate it (or edits the generated file by hand).
import { readFileSync } from 'node:fs';
import t from 'tap';
import { configSchema } from '../../../src/config/schema.js';
// @ts-expect-error: a plain ESM build script without type declarations
import { referencePath, renderConfigReference } from '../../../scripts/build/config-reference.js';

t.test('the committed config reference matches the schema', async (t) => {
  const expected: string = renderConfigReference(configSchema);
  const committed = readFileSync(referencePath, 'utf8');
  t.equal(
    committed,
    expected,
    'docs/config-reference.md is stale: run `node scripts/build/config-reference.js` after `npx tsc -p .`',
  );
});

t.test('every schema key appears in the reference with its default', async (t) => {
  const text: string = renderConfigReference(configSchema);
  const keys: string[] = [];
  const visit = (node: Record<string, any>, prefix: string) => {
    for (const [k, v] of Object.entries<Record<string, any>>(node.properties ?? {})) {
      const path = prefix ? `${prefix}.${k}` : k;
      keys.push(path);
      if (v.type === 'object') visit(v, path);
      if (v.type === 'array' && v.items?.type === 'object') visit(v.items, `${path}[]`);
    }
  };
  visit(configSchema, '');
  t.ok(keys.length > 50, `walked ${keys.length} keys`);
  for (const k of keys) t.match(text, `| \`${k}\` |`, `${k} has a row`);
  t.match(text, '| `parallelism.zero_stage` | `0` \\| `1` \\| `2` | `0` |', 'enum and default rendered');
  t.match(text, '| `collective_timeout` | duration', 'named $defs rendered by name');
});

t.test('a changed schema changes the reference', async (t) => {
  const changed = structuredClone(configSchema) as any;
  changed.properties.parallelism.properties.microbatches.default = 8;
  t.not(renderConfigReference(changed), renderConfigReference(configSchema));
  t.match(renderConfigReference(changed), '| `parallelism.microbatches` | integer ≥ 1 | `8` |');
});
