// The documented sizes (config/limits.ts), the longest duration, and what a host may be: each refused in one
// line at its place, at once, where a launch used to spin for minutes, overflow its stack or fire a timer early.
import t from 'tap';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { loadConfig } from '../../../src/config/index.js';
import { MAX_DURATION_MS } from '../../../src/config/duration.js';
import { MAX_NODES, MAX_PROCS_PER_NODE, MAX_WORLD_SIZE } from '../../../src/config/limits.js';
import { ConfigError, formatProblem } from '../../../src/util/errors.js';

const tmp = mkdtempSync(join(tmpdir(), 'dtrain-limits-'));
t.teardown(() => rmSync(tmp, { recursive: true, force: true }));

const problemsOf = async (name: string, text: string, files: Record<string, string> = {}) => {
  for (const [f, body] of Object.entries({ [name]: text, ...files })) writeFileSync(join(tmp, f), body);
  const t0 = Date.now();
  const err = await loadConfig(name, { cwd: tmp }).then(
    () => undefined,
    (e: unknown) => e,
  );
  if (Date.now() - t0 > 10_000) throw new Error(`${name}: ${Date.now() - t0} ms to answer`);
  if (!(err instanceof ConfigError)) throw new Error(`${name} was not rejected: ${String(err)}`);
  return err.problems.map(formatProblem);
};
const head = 'entrypoint: node train.js\n';

t.test('process, node and rank counts past the limits', async (t) => {
  t.same(await problemsOf('nproc.yaml', `${head}nproc_per_node: 99999999999999999999\n`), [
    `nproc.yaml:2:17: nproc_per_node: must be an integer from 1 to ${MAX_PROCS_PER_NODE} or "auto", ` +
      'got 100000000000000000000',
  ]);
  t.same(await problemsOf('sched.yaml', `${head}scheduler: {kind: slurm, nodes: ${MAX_NODES + 1}}\n`), [
    `sched.yaml:2:33: scheduler.nodes: must be <= ${MAX_NODES}, got ${MAX_NODES + 1}`,
  ]);
  t.same(await problemsOf('hf.yaml', `${head}hostfile: hosts\n`, { hosts: 'a slots=1\nb slots=99999\n' }), [
    `hosts:2:9: slots must be an integer from 1 to ${MAX_PROCS_PER_NODE}, got "99999"`,
  ]);
  const many = Array.from({ length: MAX_NODES + 2 }, (_, i) => `h${i} slots=1`).join('\n');
  t.same(await problemsOf('many.yaml', `${head}hostfile: many\n`, { many }), [
    `many:${MAX_NODES + 1}:1: more than ${MAX_NODES} hosts (the limit of nodes in a job)`,
  ]);
  const nodes = Array.from({ length: 65 }, (_, i) => `  - {host: h${i}, slots: ${MAX_PROCS_PER_NODE}}`).join('\n');
  t.same(await problemsOf('world.yaml', `${head}nodes:\n${nodes}\n`), [
    `world.yaml:3:3: nodes: make ${65 * MAX_PROCS_PER_NODE} ranks on 65 nodes, over the limit of ${MAX_WORLD_SIZE}`,
  ]);
});

t.test('a duration longer than a timer can wait', async (t) => {
  t.same(await problemsOf('grace.yaml', `${head}shutdown_grace: 99999999h\n`), [
    'grace.yaml:2:17: shutdown_grace: must be at most 596h (the longest a timer can wait), got 99999999h',
  ]);
  t.ok(MAX_DURATION_MS <= 2 ** 31 - 1, "within Node's timers");
  writeFileSync(join(tmp, 'ok.yaml'), `${head}shutdown_grace: 596h\n`);
  t.equal((await loadConfig('ok.yaml', { cwd: tmp })).config.shutdown_grace, MAX_DURATION_MS, 'the limit itself');
});

t.test('hosts: no spaces or control characters, not starting with -', async (t) => {
  for (const host of ['host name', '-oProxyCommand=x', 'a\\u0007b', 'x\\ty'])
    t.match(await problemsOf('host.yaml', `${head}nodes: [{host: "${host}"}]\n`), [
      /^host\.yaml:2:16: nodes\.0\.host: must be a host name or address: no spaces or control characters, not starting with '-', got "/,
    ]);
  t.same(await problemsOf('host7.yaml', `${head}nodes: [{host: 7}]\n`), [
    'host7.yaml:2:16: nodes.0.host: must be a string, got 7',
  ]);
  t.same(await problemsOf('hfh.yaml', `${head}hostfile: h2\n`, { h2: 'ok slots=1\n-oX slots=1\n' }), [
    `h2:2:1: host "-oX" must be a host name or address: no spaces or control characters, not starting with '-'`,
  ]);
});
