// A config that fails the schema still gets the semantic checks on its valid parts: every problem in one
// report, in document order, and no check judging the default that stands in for a rejected value.
import t from 'tap';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { loadConfig } from '../../../src/config/index.js';
import { ConfigError, formatProblem } from '../../../src/util/errors.js';

const tmp = mkdtempSync(join(tmpdir(), 'dtrain-schema-semantic-'));
t.teardown(() => rmSync(tmp, { recursive: true, force: true }));

/** The problem lines loadConfig rejects `text` with (bare file names, as the user gave them). */
const problemsOf = async (name: string, text: string, sets: string[] = []) => {
  writeFileSync(join(tmp, name), text);
  const err = await loadConfig(name, { cwd: tmp, sets }).then(
    () => undefined,
    (e: unknown) => e,
  );
  if (!(err instanceof ConfigError)) throw new Error(`${name} was not rejected with a ConfigError: ${String(err)}`);
  if (err.exitCode !== 2) throw new Error(`${name}: exit code ${err.exitCode}`);
  return err.problems.map(formatProblem);
};

t.test('a bad duration and a tensor size that does not divide the world: both, in document order', async (t) => {
  t.same(
    await problemsOf(
      'both.yaml',
      [
        'entrypoint: node train.js',
        'collective_timeout: 5 minutes',
        'nodes: [{host: localhost, slots: 4}]',
        'parallelism: {tensor: 3}',
        'shutdown_grace: 1 minute',
        '',
      ].join('\n'),
    ),
    [
      'both.yaml:2:21: collective_timeout: must be a duration such as 30s, 5m, 1h or a number of seconds, ' +
        'got "5 minutes"',
      'both.yaml:4:14: parallelism: tensor × pipeline = 3 × 1 = 3 does not divide the world size 4 (localhost: 4)',
      'both.yaml:5:17: shutdown_grace: must be a duration such as 30s, 5m, 1h or a number of seconds, got "1 minute"',
    ],
  );
});

t.test(
  'a rejected value a check reads: only its schema error, no check on the default standing in for it',
  async (t) => {
    // tensor "2" would stand in as 1: "data × tensor × pipeline = 3 × 1 × 1 = 3, but the nodes run 4" is nonsense.
    // The heartbeat check reads nothing rejected and still runs.
    t.same(
      await problemsOf(
        'tensor.yaml',
        [
          'entrypoint: node train.js',
          'nodes: [{host: localhost, slots: 4}]',
          'parallelism: {data: 3, tensor: "2"}',
          'heartbeat: {interval: 30s, timeout: 10s}',
          '',
        ].join('\n'),
      ),
      [
        'tensor.yaml:3:32: parallelism.tensor: must be an integer, got "2"',
        'tensor.yaml:4:37: heartbeat.timeout: must be longer than heartbeat.interval (30s): a node would be ' +
          'declared lost between two heartbeats',
      ],
    );
    // the interval stands in as 5s; "timeout 3s must be longer than 5s" would be about a value nobody wrote
    t.same(
      await problemsOf(
        'interval.yaml',
        [
          'entrypoint: node train.js',
          'heartbeat: {interval: 30 sec, timeout: 3s}',
          'master: {port: 29500}',
          'rendezvous: {port: 29500}',
          '',
        ].join('\n'),
      ),
      [
        'interval.yaml:2:23: heartbeat.interval: must be a duration such as 30s, 5m, 1h or a number of ' +
          'seconds, got "30 sec"',
        "interval.yaml:3:16: master.port: is the same as rendezvous.port (29500): PyTorch's rank 0 and " +
          "dtrain's store each need their own port",
      ],
    );
    // processes per node unknown: no world size, so no grid or log-rank check (and no "undefined does not divide")
    t.same(
      await problemsOf(
        'nproc.yaml',
        [
          'entrypoint: node train.js',
          'nodes: [{host: localhost, slots: 4}]',
          'nproc_per_node: four',
          'parallelism: {tensor: 3}',
          'logs: {ranks: [7]}',
          'restarts: {backoff: 5sec}',
          '',
        ].join('\n'),
      ),
      [
        'nproc.yaml:3:17: nproc_per_node: must be an integer from 1 to 4096 or "auto", got "four"',
        'nproc.yaml:6:21: restarts.backoff: must be a duration such as 30s, 5m, 1h or a number of seconds, got "5sec"',
      ],
    );
    // a misspelt key is a value the user meant to set: "slotz" hides node 0's slots, "tensr" the tensor size
    // ("timout": the default 30s timeout is not "shorter than the interval": the user wrote 60s)
    t.same(
      await problemsOf(
        'typo.yaml',
        [
          'entrypoint: node train.js',
          'nodes: [{host: localhost, slotz: 4}]',
          'parallelism: {tensr: 2, pipeline: 3}',
          'heartbeat: {interval: 30s, timout: 60s}',
          '',
        ].join('\n'),
      ),
      [
        'typo.yaml:2:27: nodes.0.slotz: unknown key (did you mean "slots"?)',
        'typo.yaml:3:15: parallelism.tensr: unknown key (did you mean "tensor"?)',
        'typo.yaml:4:28: heartbeat.timout: unknown key (did you mean "timeout"?)',
      ],
    );
    // a node without a usable host: the node list is unknown, and the scheduler's count is not compared with it
    t.same(
      await problemsOf(
        'host.yaml',
        [
          'entrypoint: node train.js',
          'nodes:',
          '  - {host: node-a, slots: 2}',
          '  - {host: 7, slots: 2}',
          'parallelism: {tensor: 3}',
          'scheduler: {kind: slurm, nodes: 3}',
          '',
        ].join('\n'),
      ),
      ['host.yaml:4:12: nodes.1.host: must be a string, got 7'],
    );
    // node 1's slots are unknown: the list is, too, and an unknown list is not "0 nodes" for scheduler.nodes
    t.same(
      await problemsOf(
        'slotz.yaml',
        [
          'entrypoint: node train.js',
          'nodes: [{host: node-a, slots: 2}, {host: node-b, slotz: 2}]',
          'scheduler: {kind: slurm, nodes: 3}',
          '',
        ].join('\n'),
      ),
      ['slotz.yaml:2:50: nodes.1.slotz: unknown key (did you mean "slots"?)'],
    );
    // a scheduler without a kind gives no allocation to count nodes in: not a localhost default either
    t.same(
      await problemsOf(
        'sched.yaml',
        ['entrypoint: node train.js', 'scheduler: {nodes: 2, gpus_per_node: 4}', 'parallelism: {tensor: 3}', ''].join(
          '\n',
        ),
      ),
      ['sched.yaml:2:12: scheduler: missing required key "kind"'],
    );
  },
);

t.test('several schema errors and semantic ones: all of them, each located, in document order', async (t) => {
  t.same(
    await problemsOf(
      'many.yaml',
      [
        'name: my job',
        'entrypoint: node train.js',
        'backend: gloo',
        'nodes:',
        '  - {host: node-a, slots: 2, port: 70000}',
        '  - {host: node-b, slots: 2}',
        '  - {host: Node-A, slots: 2}',
        'restarts: {max: -1, backoff: 5sec}',
        'heartbeat: {interval: 10s, timeout: 5s}',
        'parallelism: {zero_stage: 3}',
        '',
      ].join('\n'),
    ),
    [
      "many.yaml:1:7: name: must be 1-64 characters of letters, digits, '.', '_' or '-', got \"my job\"",
      'many.yaml:3:10: backend: must be one of "auto", "cpu", "nccl", got "gloo"',
      'many.yaml:5:36: nodes.0.port: must be <= 65535, got 70000',
      'many.yaml:7:12: nodes.2.host: host "Node-A" is listed twice (also nodes.0)',
      'many.yaml:8:17: restarts.max: must be >= 0, got -1',
      'many.yaml:8:30: restarts.backoff: must be a duration such as 30s, 5m, 1h or a number of seconds, got "5sec"',
      'many.yaml:9:37: heartbeat.timeout: must be longer than heartbeat.interval (10s): a node would be ' +
        'declared lost between two heartbeats',
      'many.yaml:10:27: parallelism.zero_stage: must be one of 0, 1, 2, got 3',
    ],
  );
  // no entrypoint at all: the semantic checks still run on the rest
  t.same(
    await problemsOf(
      'no-entry.yaml',
      ['nodes: [{host: localhost, slots: 4}]', 'parallelism: {tensor: 3}', 'logs: {ranks: [0, 9]}', ''].join('\n'),
    ),
    [
      'no-entry.yaml:1:1: missing required key "entrypoint"',
      'no-entry.yaml:2:14: parallelism: tensor × pipeline = 3 × 1 = 3 does not divide the world size 4 ' +
        '(localhost: 4)',
      'no-entry.yaml:3:19: logs.ranks.1: rank 9 is outside the world (ranks 0-3)',
    ],
  );
  // a --set that fails the schema is reported with the file's semantic problems (files in order of first problem)
  t.same(
    await problemsOf(
      'set.yaml',
      ['entrypoint: node train.js', 'nodes: [{host: localhost, slots: 4}]', 'parallelism: {tensor: 3}', ''].join('\n'),
      ['backend=gloo'],
    ),
    [
      '--set backend=gloo: backend: must be one of "auto", "cpu", "nccl", got "gloo"',
      'set.yaml:3:14: parallelism: tensor × pipeline = 3 × 1 = 3 does not divide the world size 4 (localhost: 4)',
    ],
  );
});

t.test('a document the schema accepts: the same config, warnings and problems as before', async (t) => {
  writeFileSync(
    join(tmp, 'fine.yaml'),
    [
      'entrypoint: node train.js --steps 5',
      'nodes: [{host: localhost, slots: 4}]',
      'parallelism: {tensor: 2, pipeline: 2, microbatches: 1, zero_stage: 1}',
      'heartbeat: {interval: 2s, timeout: 1m}',
      '',
    ].join('\n'),
  );
  const { config, warnings } = await loadConfig('fine.yaml', { cwd: tmp });
  t.same(config.parallelism, {
    data: 1,
    tensor: 2,
    pipeline: 2,
    zero_stage: 1,
    microbatches: 1,
    schedule: '1f1b',
    virtual_stages: 1,
  });
  t.same(config.heartbeat, { interval: 2_000, timeout: 60_000 });
  t.same(config.entrypoint, ['node', 'train.js', '--steps', '5']);
  t.match(config.nodes, [{ host: 'localhost', nproc: 4, slots: 4, local: true }]);
  t.same(warnings.map(formatProblem), [
    'fine.yaml:3:53: parallelism.microbatches: 1 microbatch for 2 pipeline stages: most stages sit idle ' +
      '(pipeline bubble); use at least 2, ideally 8 or more',
    'fine.yaml:3:68: parallelism.zero_stage: ZeRO stage 1 with data = 1 shards over a single rank: it saves no memory',
  ]);
  // semantic problems alone: reported exactly as before
  t.same(
    await problemsOf(
      'semantic.yaml',
      [
        'entrypoint: node train.js',
        'nodes: [{host: localhost, slots: 4}]',
        'parallelism: {data: 3, pipeline: 2}',
        'master: {port: 29500}',
        'rendezvous: {port: 29500}',
        '',
      ].join('\n'),
    ),
    [
      'semantic.yaml:3:21: parallelism.data: data × tensor × pipeline = 3 × 1 × 2 = 6, but the nodes run 4 ' +
        'processes (localhost: 4)',
      "semantic.yaml:4:16: master.port: is the same as rendezvous.port (29500): PyTorch's rank 0 and " +
        "dtrain's store each need their own port",
    ],
  );
});
