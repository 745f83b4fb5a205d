// Every config under test/fixtures/config/invalid must fail with exactly the lines in its .expected file.
import t from 'tap';
import { readdirSync, readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { loadConfig } from '../../../src/config/index.js';
import { ConfigError, formatProblem } from '../../../src/util/errors.js';

const dir = fileURLToPath(new URL('../../fixtures/config/invalid/', import.meta.url));
// Messages name files as the user gave them: load bare names relative to the corpus folder.

const cases = readdirSync(dir).filter((f) => f.endsWith('.yaml'));
t.ok(cases.length >= 25, `a corpus of invalid configs (${cases.length})`);

for (const file of cases) {
  t.test(file, async (t) => {
    const expected = readFileSync(dir + file.replace(/\.yaml$/, '.expected'), 'utf8')
      .trimEnd()
      .split('\n');
    const err = await loadConfig(file, { cwd: dir }).then(
      () => undefined,
      (e: unknown) => e,
    );
    t.type(err, ConfigError, 'rejected with a ConfigError');
    if (!(err instanceof ConfigError)) return;
    t.same(err.problems.map(formatProblem), expected);
    t.equal(err.exitCode, 2);
    t.equal(err.message, expected.join('\n'), 'the message is the same lines');
  });
}
