import t from 'tap';
import { parseAgentHello } from '../../../src/launch/agent-contract.js';

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
