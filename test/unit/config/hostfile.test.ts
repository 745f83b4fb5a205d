import t from 'tap';
import { parseHostFilter, parseHostfile, selectHosts } from '../../../src/config/index.js';

t.test('hostfile: hosts with slots, comments and blank lines, in order', async (t) => {
  const { hosts, problems } = parseHostfile(
    '# cluster\nworker-0 slots=4\n\n  worker-1   slots=8   # fat node\n10.0.0.3 slots=1\n',
  );
  t.same(problems, []);
  t.same(hosts, [
    { host: 'worker-0', slots: 4, line: 2 },
    { host: 'worker-1', slots: 8, line: 4 },
    { host: '10.0.0.3', slots: 1, line: 5 },
  ]);
});

t.test('hostfile: each bad line is reported with its line and column', async (t) => {
  const { problems } = parseHostfile('a slots=2\nb\nc slots=x\nd gpus=2\na slots=1\n');
  t.same(problems, [
    { line: 2, col: 2, message: 'expected "b slots=<n>"' },
    { line: 3, col: 9, message: 'slots must be an integer from 1 to 4096, got "x"' },
    { line: 4, col: 3, message: 'expected slots=<n> after the host name, got "gpus=2"' },
    { line: 5, col: 1, message: 'host "a" is already listed at line 1' },
  ]);
});

t.test('filter syntax: hosts joined by @, optional slot lists', async (t) => {
  t.same(parseHostFilter('worker-0:0,2@worker-1'), {
    entries: [
      { host: 'worker-0', slots: [0, 2], offset: 0 },
      { host: 'worker-1', offset: 13 },
    ],
    problems: [],
  });
  t.same(parseHostFilter('a:x@@a:1:2').problems, [
    { offset: 2, message: 'slot must be a number, got "x"' },
    { offset: 4, message: 'empty host name (entries are "host" or "host:slot,slot", joined by "@")' },
    { offset: 8, message: 'one ":" per host: "host:slot,slot"' },
  ]);
});

t.test('as in DeepSpeed, a slot or host named again is selected once', async (t) => {
  t.same(parseHostFilter('worker-0:1,1').entries, [{ host: 'worker-0', slots: [1], offset: 0 }]);
  t.same(parseHostFilter('worker-0:1@worker-0:0,1').entries, [{ host: 'worker-0', slots: [0, 1], offset: 0 }]);
  t.same(parseHostFilter('worker-0:1@worker-0').entries, [{ host: 'worker-0', offset: 0 }], 'the whole host wins');
  t.same(parseHostFilter('worker-0@worker-0:1').entries, [{ host: 'worker-0', offset: 0 }]);
  const hosts = [{ host: 'worker-0', slots: 4 }];
  t.same(selectHosts(hosts, parseHostFilter('worker-0:1@worker-0:0,1').entries, 'include', 'hostfile').selected, [
    { index: 0, slotList: [0, 1] },
  ]);
  t.same(selectHosts(hosts, parseHostFilter('worker-0:1,1@worker-0:3').entries, 'exclude', 'hostfile').selected, [
    { index: 0, slotList: [0, 2] },
  ]);
});

const nodes = [
  { host: 'w0', slots: 4 },
  { host: 'w1', slots: 4 },
  { host: 'w2', slots: 2 },
];

t.test('include keeps only the named hosts (in node order) and their slots', async (t) => {
  const { entries } = parseHostFilter('w2@w0:1,3');
  t.same(selectHosts(nodes, entries, 'include', 'hostfile'), {
    selected: [
      { index: 0, slotList: [1, 3] },
      { index: 2, slotList: undefined },
    ],
    problems: [],
  });
});

t.test('exclude drops whole hosts or single slots', async (t) => {
  const { entries } = parseHostFilter('w1@w0:0');
  t.same(selectHosts(nodes, entries, 'exclude', 'hostfile').selected, [
    { index: 0, slotList: [1, 2, 3] },
    { index: 2 },
  ]);
  const all = parseHostFilter('w2:0,1').entries;
  t.same(
    selectHosts(nodes, all, 'exclude', 'hostfile').selected,
    [{ index: 0 }, { index: 1 }],
    'a node with no slot left is dropped',
  );
});

t.test('unknown hosts and slots out of range are problems with suggestions', async (t) => {
  const { entries } = parseHostFilter('w3@w1:4');
  t.same(selectHosts(nodes, entries, 'include', 'hostfile').problems, [
    { offset: 0, message: '"w3" is not in the hostfile (did you mean "w0"?)' },
    { offset: 3, message: '"w1" has slots 0-3, no slot 4' },
  ]);
  t.same(selectHosts(nodes, parseHostFilter('gpu-node').entries, 'include', 'hostfile').problems, [
    { offset: 0, message: '"gpu-node" is not in the hostfile' },
  ]);
});

t.test('a host listed twice, in any letter case, is a problem at the second line', async (t) => {
  const { problems } = parseHostfile('worker-0 slots=4\nWORKER-0 slots=4\n');
  t.same(
    problems.map((p) => [p.line, p.message]),
    [[2, 'host "WORKER-0" is already listed at line 1']],
  );
  const filter = parseHostFilter('node-a@NODE-A:1');
  t.same(
    filter.problems.map((p) => p.message),
    ['host "NODE-A" appears twice'],
    'include/exclude filters too',
  );
});
