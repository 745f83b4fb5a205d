// The checkpoint signal in a worker: the listener init() installs, dist.onCheckpointSignal and
// dist.checkpointRequested, with a signal whose default action would end the process (SIGUSR2).
import t from 'tap';
import { setTimeout as sleep } from 'node:timers/promises';
import { watchCheckpointSignal } from '../../../src/runtime/checkpoint-signal.js';

t.test('a value outside checkpoint_signal is refused, naming the choices', async (t) => {
  t.throws(() => watchCheckpointSignal({ DTRAIN_CHECKPOINT_SIGNAL: 'SIGKILL' }), {
    message: 'DTRAIN_CHECKPOINT_SIGNAL=SIGKILL is not one of SIGUSR1, SIGUSR2, SIGHUP',
  });
});

t.test('the signal sets the flag and runs the callbacks; the process lives on', async (t) => {
  const w = watchCheckpointSignal({ DTRAIN_CHECKPOINT_SIGNAL: 'SIGUSR2' });
  t.equal(w.signal, 'SIGUSR2');
  t.equal(w.requested, false);
  const heard: string[] = [];
  const off = w.on((s) => heard.push(`a ${s}`));
  w.on((s) => heard.push(`b ${s}`));
  process.kill(process.pid, 'SIGUSR2');
  for (let i = 0; i < 50 && heard.length < 2; i++) await sleep(10);
  t.same(heard, ['a SIGUSR2', 'b SIGUSR2']);
  t.equal(w.requested, true);
  off();
  process.kill(process.pid, 'SIGUSR2');
  for (let i = 0; i < 50 && heard.length < 3; i++) await sleep(10);
  t.same(heard, ['a SIGUSR2', 'b SIGUSR2', 'b SIGUSR2'], 'unsubscribed: only b again');
  t.equal(watchCheckpointSignal({}).signal, 'SIGUSR2', 'the first init decides the signal for the process');
});
