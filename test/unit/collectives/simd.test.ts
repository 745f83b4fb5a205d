/**
 * The reduction kernels through each dispatch path: DTRAIN_SIMD=scalar and =avx2 are forced in child
 * processes (dispatch is chosen once per process) and must agree exactly with the JS reference.
 */
import t from 'tap';
import { spawnSync } from 'node:child_process';
import { fixture } from '../../helpers/collectives-harness.js';

for (const path of ['scalar', 'avx2']) {
  t.test(`DTRAIN_SIMD=${path}`, async (t) => {
    const r = spawnSync(process.execPath, [fixture('kernels.mjs')], {
      env: { ...process.env, DTRAIN_SIMD: path },
      encoding: 'utf8',
    });
    t.equal(r.status, 0, r.stderr);
    const report = JSON.parse(r.stdout.trim().split('\n').pop()!);
    t.equal(report.simd, path, `the ${path} kernels ran`);
    t.same(report.failures, []);
    t.ok(report.checks > 10000);
  });
}
