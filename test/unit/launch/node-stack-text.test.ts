// A Node rank's stack as `dtrain stacks` shows it, from the diagnostic report's javascriptStack.
import t from 'tap';
import { nodeStackText } from '../../../src/launch/stacks.js';

t.test('frames as Error.stack writes them, an anonymous function included', async (t) => {
  const report = {
    state: 'running',
    javascriptStack: {
      message: 'JavaScript stack',
      stack: ['at spin (file:///job/train.mjs:3:9)', 'at  (file:///job/train.mjs:9:1)', ' at async main (node:x:1:1) '],
    },
  };
  t.equal(
    nodeStackText(JSON.stringify(report)),
    'main thread running JavaScript:\n' +
      '    at spin (file:///job/train.mjs:3:9)\n' +
      '    at file:///job/train.mjs:9:1\n' +
      '    at async main (node:x:1:1)',
  );
});

t.test('an idle main thread, no stack, and a half-written answer', async (t) => {
  t.match(nodeStackText(JSON.stringify({ state: 'idle' })), /^main thread idle in the event loop/);
  t.equal(nodeStackText(JSON.stringify({ state: 'running' })), 'main thread running, no JavaScript stack available');
  t.equal(nodeStackText('{"state": "runn'), null);
});
