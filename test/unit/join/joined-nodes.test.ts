// Which joined agent becomes which node, how many processes each runs, and MASTER_ADDR.
import t, { type Test } from 'tap';
import path from 'node:path';
import { loadConfig } from '../../../src/config/index.js';
import type { JoinRegistration } from '../../../src/launch/join/join-contract.js';
import { joinedNodes, masterAddr, sameHost, type JoinedAgent } from '../../../src/launch/join/joined-nodes.js';

const here = (h: string) => h === 'ctl' || h.startsWith('127.') || h === '10.0.0.1';

function reg(index: number, host: string, extra: Partial<JoinRegistration> = {}): JoinedAgent {
  return {
    index,
    reg: {
      type: 'join',
      version: '0',
      contract: 1,
      host,
      hostname: host,
      pid: 100 + index,
      local_addr: `10.0.0.${index + 2}`,
      local_port: 40000 + index,
      store_addr: '10.0.0.1',
      gpus: 0,
      ...extra,
    },
  };
}

async function config(t: Test, yaml: string) {
  const dir = t.testdir({ 'job.yaml': `name: j\nentrypoint: x\n${yaml}` });
  return (await loadConfig(path.join(dir, 'job.yaml'), { cwd: dir })).config;
}

t.test('listed hosts: node ranks follow the list whatever the join order; short and full names match', async (t) => {
  const cfg = await config(t, 'nodes: [{host: a.cluster, slots: 2}, {host: b, slots: 3}]\n');
  const job = joinedNodes({
    config: cfg,
    hostsListed: true,
    dataAuto: true,
    agents: [reg(0, 'b.cluster'), reg(1, 'a')],
    isLocal: here,
  });
  t.same(
    job.agents.map((a) => a.index),
    [1, 0],
  );
  t.same(
    job.config.nodes.map((n) => [n.host, n.nproc, n.local]),
    [
      ['a.cluster', 2, false],
      ['b', 3, false],
    ],
  );
  t.equal(job.config.parallelism.data, 5);
  t.ok(sameHost('n1', 'N1.example.org'));
  t.notOk(sameHost('n1', 'n10'));
});

t.test('listed hosts: a stranger or a host joining twice is exit 3', async (t) => {
  const cfg = await config(t, 'nodes: [{host: a}, {host: b}]\nnproc_per_node: 1\n');
  t.throws(
    () =>
      joinedNodes({
        config: cfg,
        hostsListed: true,
        dataAuto: true,
        agents: [reg(0, 'a'), reg(1, 'c')],
        isLocal: here,
      }),
    {
      exitCode: 3,
      message: /joined as c \(pid 101\), which is not one of the config's hosts \(a, b\)/,
    },
  );
  t.throws(
    () =>
      joinedNodes({
        config: cfg,
        hostsListed: true,
        dataAuto: true,
        agents: [reg(0, 'a'), reg(1, 'a')],
        isLocal: here,
      }),
    {
      exitCode: 3,
      message: /two agents joined as a \(pids 100 and 101\)/,
    },
  );
});

t.test(
  'unlisted hosts: join order, the controller machine first; auto nproc from the GPUs each agent has',
  async (t) => {
    const cfg = await config(t, 'scheduler: {kind: pbs, nodes: 3}\n');
    const agents = [
      reg(0, 'n2', { gpus: 4 }),
      reg(1, 'n3', { gpus: 0 }),
      reg(2, 'ctl', { gpus: 2, local_addr: '127.0.0.1', store_addr: '127.0.0.1' }),
    ];
    const job = joinedNodes({ config: cfg, hostsListed: false, dataAuto: true, agents, isLocal: here });
    t.same(
      job.config.nodes.map((n) => [n.host, n.nproc]),
      [
        ['ctl', 2],
        ['n2', 4],
        ['n3', 1],
      ],
    );
    t.equal(job.config.parallelism.data, 7);
    // node 0 is on the controller's machine: the others reach it where they reached the controller
    t.equal(job.config.master.addr, '10.0.0.1');
  },
);

t.test('a fixed data size that no longer fits the joined world is exit 2', async (t) => {
  const cfg = await config(t, 'nproc_per_node: 2\nparallelism: {data: 2}\n');
  t.throws(
    () =>
      joinedNodes({
        config: cfg,
        hostsListed: false,
        dataAuto: false,
        agents: [reg(0, 'x'), reg(1, 'y')],
        isLocal: here,
      }),
    {
      exitCode: 2,
      message:
        'the joined nodes run 4 processes (x: 2, y: 2), which does not match data × tensor × pipeline = 2 × 1 × 1',
    },
  );
  const tp = await config(t, 'nproc_per_node: 3\nparallelism: {tensor: 3}\n');
  t.throws(
    () =>
      joinedNodes({
        config: { ...tp, nproc_per_node: 1 },
        hostsListed: false,
        dataAuto: true,
        agents: [reg(0, 'x'), reg(1, 'y')],
        isLocal: here,
      }),
    {
      exitCode: 2,
      message: /tensor × pipeline = 3 does not divide/,
    },
  );
});

t.test(
  'MASTER_ADDR: node 0 elsewhere → its own address; all on this machine → loopback; a fixed one wins',
  async (t) => {
    t.equal(masterAddr([reg(0, 'n1', { local_addr: '::ffff:10.0.0.7' }), reg(1, 'n2')], here), '10.0.0.7');
    const loop = { local_addr: '127.0.0.1', store_addr: '127.0.0.1' };
    t.equal(masterAddr([reg(0, 'a', loop), reg(1, 'b', loop)], here), '127.0.0.1');
    const cfg = await config(t, 'master: {addr: head-ib0}\n');
    t.equal(
      joinedNodes({ config: cfg, hostsListed: false, dataAuto: true, agents: [reg(0, 'x')], isLocal: here }).config
        .master.addr,
      'head-ib0',
    );
  },
);

t.test('elastic, listed hosts: a host no agent joined as yet is the first spare; data counts it', async (t) => {
  const cfg = await config(
    t,
    'nodes: [{host: a}, {host: b}, {host: c}, {host: s, spare: true}]\nnproc_per_node: 2\n' +
      'elastic: {min_nodes: 2, max_nodes: 4}\n',
  );
  const job = joinedNodes({
    config: cfg,
    hostsListed: true,
    dataAuto: true,
    agents: [reg(0, 'c'), reg(1, 'a')],
    isLocal: here,
  });
  t.same(
    job.agents.map((a) => a.reg.host),
    ['a', 'c'],
  );
  t.same(
    job.config.nodes.map((n) => n.host),
    ['a', 'c'],
  );
  // node ids (plan/elastic.ts): the joined nodes, then b (not joined yet), then the listed spare
  t.same(
    job.config.elastic?.spares.map((n) => [n.host, n.nproc, n.local]),
    [
      ['b', 2, false],
      ['s', 2, false],
    ],
  );
  t.equal(job.config.parallelism.data, 6, 'the data size at full strength counts b');
  t.throws(
    () =>
      joinedNodes({ config: { ...cfg, elastic: undefined }, hostsListed: true, dataAuto: true, agents: [reg(0, 'a')] }),
    /no agent joined as b, c: every listed host must join/,
    'not elastic: every listed host joins',
  );
});
