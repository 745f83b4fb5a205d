// The driver-library check that lets a launch skip the GPU probe child: "maybe" whenever dlopen could
// find libcuda.so.1 (LD_LIBRARY_PATH, loader cache), "no" only when it is nowhere.
import { existsSync, mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import t from 'tap';
import { driverLibrary, driverLibraryDirs, driverLibraryMayLoad } from '../../../src/launch/driver-library.js';

const dir = t.testdir({
  cache: {
    'with.cache': 'glibc-ld.so.cache1.1\0libcudart.so.13\0libcuda.so.1\0/usr/lib/libcuda.so.1\0',
    'without.cache': 'glibc-ld.so.cache1.1\0libcudart.so.13\0',
  },
});
const onThisMachine = driverLibraryDirs.some((d) => existsSync(join(d, driverLibrary)));

t.test('a name in the loader cache or a library on LD_LIBRARY_PATH: maybe', async (t) => {
  t.ok(driverLibraryMayLoad({}, join(dir, 'cache', 'with.cache')));
  const lib = join(dir, 'lib');
  mkdirSync(lib);
  writeFileSync(join(lib, 'libcuda.so.1'), '');
  t.ok(driverLibraryMayLoad({ LD_LIBRARY_PATH: `/nonexistent:${lib}` }, join(dir, 'cache', 'without.cache')));
});

t.test('nowhere dlopen looks: no', { skip: onThisMachine && 'this machine has a driver library' }, async (t) => {
  t.notOk(driverLibraryMayLoad({ LD_LIBRARY_PATH: '/nonexistent' }, join(dir, 'cache', 'without.cache')));
  t.notOk(driverLibraryMayLoad({}, join(dir, 'cache', 'missing.cache')));
});

t.test('where the probe child is skipped, the decision is the one the child gives', async (t) => {
  const { probeWithoutChild } = await import('../../../src/launch/backend.js');
  const { autoBackend, probeCudaAsync } = await import('../../../src/runtime/device/cuda-part.js');
  const known = probeWithoutChild(process.env);
  if (!known) return t.pass('this machine may have a driver: the child probe runs');
  if (!existsSync(new URL('../../../dist/runtime/device/probe-main.js', import.meta.url)))
    return t.plan(0, 'run npx tsc -p . first');
  t.same(autoBackend(known), autoBackend(await probeCudaAsync()));
});
