import t from 'tap';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { loadConfig } from '../../../src/config/index.js';
import { formatProblem } from '../../../src/util/errors.js';

const tmp = mkdtempSync(join(tmpdir(), 'dtrain-warn-'));
t.teardown(() => rmSync(tmp, { recursive: true, force: true }));
const warningsOf = async (name: string, text: string) => {
  writeFileSync(join(tmp, name), text);
  const loaded = await loadConfig(name, { cwd: tmp });
  return loaded.warnings.map(formatProblem);
};

t.test('doubtful but legal settings warn and still load', async (t) => {
  t.same(
    await warningsOf(
      'bubble.yaml',
      'entrypoint: x\nnodes: [{host: localhost, slots: 4}]\nparallelism: {pipeline: 4, microbatches: 2}\n',
    ),
    [
      'bubble.yaml:3:42: parallelism.microbatches: 2 microbatches for 4 pipeline stages: most stages sit ' +
        'idle (pipeline bubble); use at least 4, ideally 16 or more',
    ],
  );
  t.same(
    await warningsOf(
      'zero.yaml',
      'entrypoint: x\nnodes: [{host: localhost, slots: 2}]\nparallelism:\n  tensor: 2\n  zero_stage: 2\n',
    ),
    [
      'zero.yaml:5:15: parallelism.zero_stage: ZeRO stage 2 with data = 1 shards over a single rank: it ' +
        'saves no memory',
    ],
  );
  t.same(
    await warningsOf(
      'cross.yaml',
      'entrypoint: x\nnodes:\n  - {host: a, slots: 6}\n  - {host: b, slots: 6}\nparallelism: {tensor: 4}\n',
    ),
    [
      "cross.yaml:3:5: nodes.0: tensor = 4 does not divide a's 6 processes: tensor groups would cross nodes (slow)",
      "cross.yaml:4:5: nodes.1: tensor = 4 does not divide b's 6 processes: tensor groups would cross nodes (slow)",
    ],
  );
  t.same(await warningsOf('auto.yaml', 'entrypoint: x\nnodes: [{host: localhost, slots: 1}, {host: gpu-box}]\n'), [
    'auto.yaml:2:38: nodes.1: nproc_per_node is auto and gpu-box has no slots: its GPU count is known only ' +
      'at launch, the plan assumes 1 process',
  ]);
  t.same(
    await warningsOf(
      'ssh.yaml',
      'entrypoint: x\nnodes: [{host: far-away, slots: 1}]\nssh: {strict_host_key_checking: "no"}\n',
    ),
    [
      'ssh.yaml:3:33: ssh.strict_host_key_checking: host keys are not checked: anyone on the network path ' +
        'can pose as a node',
    ],
  );
});

t.test('more processes than allocated GPUs warns', async (t) => {
  t.same(
    await warningsOf('share.yaml', 'entrypoint: x\nnproc_per_node: 8\nscheduler: {kind: slurm, gpus_per_node: 4}\n'),
    ['share.yaml:2:17: nproc_per_node: is 8, but scheduler.gpus_per_node is 4: workers would share GPUs'],
  );
});

t.test('include with only slots on localhost selects devices (DeepSpeed without a hostfile)', async (t) => {
  writeFileSync(join(tmp, 'local.yaml'), 'entrypoint: x\ninclude: localhost:1,3\n');
  const { config } = await loadConfig('local.yaml', { cwd: tmp });
  t.match(config.nodes, [{ host: 'localhost', nproc: 2, cuda_visible_devices: '1,3', local: true }]);
});

t.test('a scheduler without nodes plans placeholders for the allocation', async (t) => {
  writeFileSync(
    join(tmp, 'batch.yaml'),
    'entrypoint: x\nscheduler: {kind: slurm, nodes: 2, gpus_per_node: 4}\nparallelism: {tensor: 4}\n',
  );
  const { config, warnings } = await loadConfig('batch.yaml', { cwd: tmp });
  t.same(warnings, []);
  t.same(
    config.nodes.map((n) => [n.host, n.nproc, n.from_allocation, n.local]),
    [
      ['<slurm node 0>', 4, true, false],
      ['<slurm node 1>', 4, true, false],
    ],
  );
  t.equal(config.parallelism.data, 2);
});
