// DTRAIN_ADDON names the addon build for every part that loads it: each must look there (and so fail on a
// path that does not exist) rather than at build/Release. Set before any part loads (one process per file).
import t from 'tap';
import { join } from 'node:path';
import { tmpdir } from 'node:os';

const missing = join(tmpdir(), 'dtrain-no-such-addon', 'dtrain_native.node');
process.env.DTRAIN_ADDON = missing;

const { addonPath } = await import('../../../src/runtime/addon.js');
const { collectivesNative } = await import('../../../src/runtime/native.js');
const { optimNative } = await import('../../../src/runtime/optim/native.js');
const { processAddon } = await import('../../../src/launch/process-tree.js');
const { loadCudaPart } = await import('../../../src/runtime/device/cuda-part.js');
const { runDoctor } = await import('../../../src/doctor/report.js');

t.test('the path: DTRAIN_ADDON when set, else build/Release of this package', async (t) => {
  t.equal(addonPath(), missing);
  t.match(addonPath({}), /\/build\/Release\/dtrain_native\.node$/);
});

t.test('every part honours DTRAIN_ADDON', async (t) => {
  const named = new RegExp(`not built \\(${missing.replace(/[/.]/g, '\\$&')}\\)`);
  t.throws(() => collectivesNative(), named, 'collectives');
  t.throws(() => optimNative(), named, 'optimizer kernels');
  t.throws(() => loadCudaPart(), named, 'the CUDA part');
  t.equal(processAddon(), null, 'process helpers: none (the shepherds still guard workers)');
  t.match(runDoctor().addon, { loaded: false, path: missing, error: named }, 'doctor');
});
