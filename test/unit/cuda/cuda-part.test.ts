// The CUDA part on a machine without a GPU: it must be built (nvcc is here), load without a driver, report
// why NCCL is not usable, and never make `auto` pick NCCL. A stand-in libnccl exercises the dlopen loader's
// version check and symbol resolution for real.
import t from 'tap';
import { execFileSync, spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  autoBackend,
  cudaBuildInfo,
  cudaPartPath,
  ncclVersionString,
  probeCuda,
} from '../../../src/runtime/device/cuda-part.js';

const root = join(import.meta.dirname, '..', '..', '..');
const nvccPresent = spawnSync('sh', ['-c', 'command -v nvcc || test -x /usr/local/cuda/bin/nvcc']).status === 0;

t.test('the CUDA part is built for sm_80 and sm_90 with PTX when nvcc is present', async (t) => {
  const info = cudaBuildInfo();
  if (!nvccPresent) {
    if (process.env.DTRAIN_REQUIRE_INTEGRATION) t.fail('nvcc is required in CI');
    else t.equal(info.built, false, 'no nvcc: not built');
    return;
  }
  t.equal(info.built, true);
  t.match(info.archs, ['sm_80', 'sm_90', /^compute_/]);
  const ldd = execFileSync('ldd', [cudaPartPath], { encoding: 'utf8' });
  t.notMatch(ldd, /libcudart|libnccl|libcuda\.so/, 'no link dependency on the CUDA runtime, the driver or NCCL');
  const addonLdd = execFileSync('ldd', [join(root, 'build/Release/dtrain_native.node')], { encoding: 'utf8' });
  t.notMatch(
    addonLdd,
    /cuda|nccl/i,
    'the CPU addon links nothing of CUDA (it opens the CUDA part with dlopen, when needed)',
  );
  const symbols = execFileSync('nm', ['-D', '--defined-only', cudaPartPath], { encoding: 'utf8' });
  const exported = ['dtrain_cuda_adamw_step', 'dtrain_nccl_load', 'dtrain_nccl_all_reduce', 'dtrain_cuda_malloc'];
  exported.push('dtrain_cuda_gemm', 'dtrain_cublas_load', 'dtrain_cuda_bias_act', 'dtrain_cuda_softmax_xent');
  for (const s of exported) t.match(symbols, new RegExp(`\\b${s}\\b`), `exports ${s}`);
});

t.test('the native GPU test binary compiles and links against the C ABI', async (t) => {
  if (!cudaBuildInfo().built) return t.plan(0, 'CUDA part not built');
  const dir = mkdtempSync(join(tmpdir(), 'dtrain-gpu-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const r = spawnSync(
    'g++',
    [
      '-std=c++17',
      '-O1',
      '-I',
      join(root, 'addon/cuda'),
      '-I',
      join(root, 'addon/src'),
      '-o',
      join(dir, 'test_native'),
      join(root, 'scripts/gpu/test_native.cc'),
      '-L',
      join(root, 'build-cuda'),
      '-ldtrain_cuda',
    ],
    { encoding: 'utf8' },
  );
  t.equal(r.status, 0, r.stderr);
});

t.test('probe without a driver: loads, no devices, NCCL reason, auto is cpu', async (t) => {
  const p = probeCuda();
  if (!p.built.built) return t.plan(0, 'CUDA part not built');
  t.equal(p.loaded, true, p.error ?? 'the CUDA part loads');
  t.same(p.devices, []);
  t.match(p.device_error, /driver|device/i);
  t.equal(p.nccl.found, false);
  t.match(p.nccl.reason, /libnccl\.so\.2 not found/);
  t.same(autoBackend(p).backend, 'cpu');
});

// A stand-in NCCL: every symbol dtrain resolves, with a chosen version.
function fakeNccl(dir: string, version: number, withSplit = true): string {
  const fns = [
    'ncclGetUniqueId',
    'ncclCommInitRank',
    'ncclCommDestroy',
    'ncclCommAbort',
    'ncclCommGetAsyncError',
    'ncclAllReduce',
    'ncclReduceScatter',
    'ncclAllGather',
    'ncclBroadcast',
    'ncclSend',
    'ncclRecv',
    'ncclGroupStart',
    'ncclGroupEnd',
    ...(withSplit ? ['ncclCommSplit'] : []),
  ];
  const src = `extern "C" { int ncclGetVersion(int* v) { *v = ${version}; return 0; }
const char* ncclGetErrorString(int) { return "fake"; }
${fns.map((f) => `int ${f}() { return 5; }`).join('\n')} }`;
  const file = join(dir, `nccl${version}.cc`);
  writeFileSync(file, src);
  const lib = join(dir, `libnccl-${version}.so.2`);
  execFileSync('g++', ['-shared', '-fPIC', '-o', lib, file]);
  return lib;
}

t.test('NCCL is loaded with dlopen and its version checked', async (t) => {
  if (!cudaBuildInfo().built) return t.plan(0, 'CUDA part not built');
  const dir = mkdtempSync(join(tmpdir(), 'dtrain-nccl-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const probeWith = (path: string) => {
    const r = spawnSync(
      process.execPath,
      [
        '-e',
        `import(${JSON.stringify(join(root, 'dist/runtime/device/cuda-part.js'))}).then(m => ` +
          `console.log(JSON.stringify(m.probeCudaInProcess())))`,
      ],
      { encoding: 'utf8', env: { ...process.env, DTRAIN_NCCL_PATH: path } },
    );
    return JSON.parse(r.stdout).nccl as { found: boolean; version?: string; path?: string; reason?: string };
  };
  const good = probeWith(fakeNccl(dir, 22304));
  t.same({ found: good.found, version: good.version }, { found: true, version: '2.23.4' });
  t.match(probeWith(fakeNccl(dir, 21003)).reason, /NCCL 21003, dtrain needs 21200 or newer/);
  t.match(probeWith('/lib/x86_64-linux-gnu/libc.so.6').reason, /lacks ncclGetVersion/);
  t.match(probeWith(join(dir, 'missing.so')).reason, /not found .*missing\.so/);
});

t.test("without DTRAIN_NCCL_PATH, pip's nvidia-nccl in the active virtualenv is found", async (t) => {
  if (!cudaBuildInfo().built) return t.plan(0, 'CUDA part not built');
  const venv = mkdtempSync(join(tmpdir(), 'dtrain-venv-'));
  t.teardown(() => rmSync(venv, { recursive: true, force: true }));
  const libDir = join(venv, 'lib', 'python3.11', 'site-packages', 'nvidia', 'nccl', 'lib');
  mkdirSync(libDir, { recursive: true });
  renameSync(fakeNccl(venv, 22107), join(libDir, 'libnccl.so.2'));
  const { DTRAIN_NCCL_PATH: _, ...env } = process.env;
  const r = spawnSync(
    process.execPath,
    [
      '-e',
      `import(${JSON.stringify(join(root, 'dist/runtime/device/cuda-part.js'))}).then(m => ` +
        `console.log(JSON.stringify(m.probeCudaInProcess().nccl)))`,
    ],
    { encoding: 'utf8', env: { ...env, VIRTUAL_ENV: venv } },
  );
  t.match(JSON.parse(r.stdout), { found: true, version: '2.21.7', path: join(libDir, 'libnccl.so.2') });
});

t.test('version strings and the auto decision', async (t) => {
  t.equal(ncclVersionString(21805), '2.18.5');
  const base = { built: { built: true }, loaded: true, devices: ['H100'], nccl: { found: true, version: '2.21.5' } };
  t.same(autoBackend(base).backend, 'nccl');
  t.same(autoBackend({ ...base, devices: [] }).backend, 'cpu');
  t.match(autoBackend({ ...base, nccl: { found: false, reason: 'x' } }).reason, /NCCL not usable: x/);
  t.match(
    autoBackend({ ...base, built: { built: false, reason: 'nvcc not found' } }).reason,
    /not built \(nvcc not found\)/,
  );
});

t.test('dtrain doctor --json on this machine', async (t) => {
  const r = spawnSync(process.execPath, [join(root, 'bin/dtrain'), 'doctor', '--json'], { encoding: 'utf8' });
  t.equal(r.status, 0, r.stderr);
  const doc = JSON.parse(r.stdout);
  t.equal(doc.addon.loaded, true);
  t.equal(doc.cuda.built, nvccPresent);
  t.equal(doc.cuda.driver.found, false);
  t.equal(doc.nccl.found, false);
  t.type(doc.nccl.reason, 'string');
  t.equal(doc.backend.auto, 'cpu');
  t.same(
    Object.keys(doc.tools).sort(),
    ['mpirun', 'qsub', 'sbatch', 'scontrol', 'srun', 'ssh'],
    'the launchers it looks for',
  );
  for (const [tool, path] of Object.entries(doc.tools as Record<string, string | null>)) {
    const found = spawnSync('sh', ['-c', `command -v ${tool}`], { encoding: 'utf8' }).stdout.trim();
    t.equal(path, found || null, `${tool}: ${found || 'not found'}`);
  }
  const human = spawnSync(process.execPath, [join(root, 'bin/dtrain'), 'doctor'], { encoding: 'utf8' });
  t.match(human.stdout, /backend auto\s+cpu/);
});

t.test('DeviceBuffer without a GPU fails with the CUDA reason, and checks its arguments first', async (t) => {
  const { DeviceBuffer, hostDType } = await import('../../../src/runtime/device/device-buffer.js');
  t.throws(() => DeviceBuffer.alloc('float32', -1), /non-negative integer/);
  t.throws(() => hostDType(new Uint16Array(2)), /explicit dtype/);
  t.equal(hostDType(new Uint16Array(2), 'bfloat16'), 'bfloat16');
  t.equal(hostDType(new BigInt64Array(2)), 'int64');
  if (!cudaBuildInfo().built) return;
  t.throws(() => DeviceBuffer.alloc('float32', 16, { device: 0 }), /driver|device|CUDA/i);
});
