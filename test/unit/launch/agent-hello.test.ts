import { PassThrough } from 'node:stream';
import t from 'tap';
import { controllerHelloLine, parseAgentHello } from '../../../src/launch/agent-contract.js';
import { keepStderrTail, readAgentHello, type HelloWait } from '../../../src/launch/agent-hello.js';

t.test(
  "the controller's hello: its version, the key exchange where asked, and when the spec will have come",
  async (t) => {
    const line = controllerHelloLine('1.2.3', 300_000);
    t.ok(line.endsWith('\n') && !line.slice(0, -1).includes('\n'), 'one line');
    // the spec follows within the controller's wait for every hello, and a minute for sealing and the link
    t.same(JSON.parse(line), { type: 'hello', version: '1.2.3', spec_within_ms: 360_000 });
    t.same(JSON.parse(controllerHelloLine('1.2.3', 1000, 'pub')), {
      type: 'hello',
      version: '1.2.3',
      kx: 'pub',
      spec_within_ms: 61_000,
    });
  },
);

t.test("the agent's hello is read from its first line, or refused in one line", async (t) => {
  t.same(parseAgentHello('{"type":"hello","version":"1.2.3","hostname":"n1","pid":42,"kx":"abc"}'), {
    hello: { type: 'hello', version: '1.2.3', hostname: 'n1', pid: 42, kx: 'abc' },
  });
  const notJson = parseAgentHello('Welcome to node n1! Last login: yesterday');
  t.match(notJson, { error: /^the agent did not speak dtrain's protocol \(first line: "Welcome to node n1!/ });
  t.match(parseAgentHello('{"type":"spec"}'), {
    error: /^the agent sent "\{\\"type\\":\\"spec\\"\}" instead of its version$/,
  });
  t.match(parseAgentHello('{"type":"hello","version":3}'), { error: /instead of its version/ });
  t.match(parseAgentHello('null'), { error: /instead of its version/ });
  const long = parseAgentHello('x'.repeat(500));
  t.ok('error' in long && long.error.length < 140, 'a long first line is cut to 80 characters');
});

t.test('readAgentHello: the first line is the hello, the rest is put back; each failure is its reason', async (t) => {
  const wait = (extra: Partial<HelloWait> = {}): HelloWait => ({
    timeoutMs: 5000,
    late: () => 'late',
    ended: () => Promise.resolve('ended'),
    error: (message) => new Error(message),
    ...extra,
  });
  const out = new PassThrough();
  const hello = readAgentHello(out, wait());
  out.write('{"type":"hello",');
  out.write('"version":"1"}\n{"type":"ready"}\n');
  t.same(await hello, { type: 'hello', version: '1' });
  t.equal(out.listenerCount('data'), 0);
  t.equal(String(out.read()), '{"type":"ready"}\n', 'the next line is left for the controller');

  const bad = new PassThrough();
  const refused = readAgentHello(bad, wait());
  bad.write('Welcome!\n');
  await t.rejects(refused, { message: /did not speak dtrain's protocol/ });
  const ends = new PassThrough();
  const ended = readAgentHello(ends, wait());
  ends.end();
  await t.rejects(ended, { message: 'ended' });
  await t.rejects(readAgentHello(new PassThrough(), wait({ timeoutMs: 10 })), { message: 'late' });
  await t.rejects(readAgentHello(new PassThrough(), wait({ failed: Promise.resolve('no srun') })), {
    message: 'no srun',
  });
});

t.test('keepStderrTail keeps the last 5 non-empty lines until stopped', async (t) => {
  const err = new PassThrough();
  const tail = keepStderrTail(err);
  err.write('a\n\nb\nc\n');
  err.write('d\ne\nf\ng');
  t.same(tail.lines, ['c', 'd', 'e', 'f', 'g']);
  tail.stop();
  err.write('h\n');
  t.same(tail.lines, ['c', 'd', 'e', 'f', 'g']);
});
