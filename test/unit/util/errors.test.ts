import t from 'tap';
import { ConfigError, formatProblem, ExitCode } from '../../../src/util/errors.js';

t.test('problems render as file:line:col: path: message', async (t) => {
  t.equal(
    formatProblem({ file: 'a.yaml', line: 3, col: 5, path: 'parallelism.tensor', message: 'must be >= 1' }),
    'a.yaml:3:5: parallelism.tensor: must be >= 1',
  );
  t.equal(formatProblem({ file: 'a.yaml', line: 0, col: 0, path: '', message: 'empty file' }), 'a.yaml: empty file');
  const e = new ConfigError([{ file: 'f', line: 1, col: 1, path: 'x', message: 'm' }]);
  t.equal(e.exitCode, ExitCode.invalid);
});
