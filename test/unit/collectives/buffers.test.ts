import t from 'tap';
import { dtypeOf } from '../../../src/runtime/group.js';

t.test('the cpu groups name what buffer they need', async (t) => {
  t.equal(dtypeOf(new Float32Array(1), undefined, 'allReduce'), 'float32');
  t.equal(dtypeOf(new Uint16Array(1), 'bfloat16', 'allReduce'), 'bfloat16');
  t.throws(
    () => dtypeOf({ ptr: 1, dtype: 'float32', length: 1, device: 0 }, undefined, 'allReduce'),
    /allReduce: a DeviceBuffer needs the nccl backend/,
  );
  t.throws(() => dtypeOf(new Uint16Array(1), undefined, 'send'), /Uint16Array needs \{ dtype/);
  t.throws(() => dtypeOf(new Float32Array(1), 'float64', 'recv'), /does not match the Float32Array/);
});
