// Builds the optional CUDA part (build/Release/libdtrain_cuda.so) when nvcc is found, for sm_80 and sm_90
// plus PTX for newer GPUs. The CUDA runtime is linked statically, so the part has no link dependency on
// libcudart (the driver, libcuda, is opened by the runtime only when a GPU call is made) and NCCL is loaded
// with dlopen. Without nvcc the CPU addon is complete on its own: `dtrain doctor` reports cuda.built false.
import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, readdirSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
// Its own folder: node-gyp rebuild wipes build/, and the CUDA part should not vanish with it.
const out = join(root, 'build-cuda');
const manifest = join(out, 'cuda-build.json');

function findNvcc() {
  const fromEnv = process.env.NVCC || (process.env.CUDA_HOME && join(process.env.CUDA_HOME, 'bin', 'nvcc'));
  for (const c of [fromEnv, '/usr/local/cuda/bin/nvcc']) if (c && existsSync(c)) return c;
  const r = spawnSync('sh', ['-c', 'command -v nvcc'], { encoding: 'utf8' });
  return r.status === 0 ? r.stdout.trim() : null;
}

mkdirSync(out, { recursive: true });
const nvcc = process.env.DTRAIN_SKIP_CUDA ? null : findNvcc();
if (!nvcc) {
  writeFileSync(
    manifest,
    JSON.stringify({ built: false, reason: process.env.DTRAIN_SKIP_CUDA ? 'DTRAIN_SKIP_CUDA set' : 'nvcc not found' }) +
      '\n',
  );
  console.log('dtrain: nvcc not found, CUDA part not built (the CPU backend is complete without it)');
  process.exit(0);
}

const archs = (process.env.DTRAIN_CUDA_ARCHS || '80,90')
  .split(',')
  .map((a) => a.trim())
  .filter(Boolean);
const ptx = archs[archs.length - 1];
const gencode = archs.flatMap((a) => ['-gencode', `arch=compute_${a},code=sm_${a}`]);
gencode.push('-gencode', `arch=compute_${ptx},code=compute_${ptx}`);
const archList = [...archs.map((a) => `sm_${a}`), `compute_${ptx}`].join(',');

const src = join(root, 'addon', 'cuda');
const sources = readdirSync(src)
  .filter((f) => /\.(cu|cc)$/.test(f))
  .map((f) => join(src, f));
const version = execFileSync(nvcc, ['--version'], { encoding: 'utf8' }).match(/release ([0-9.]+)/)?.[1] ?? 'unknown';
const args = [
  '-O3',
  '-std=c++17',
  '-shared',
  '-Xcompiler',
  '-fPIC,-fvisibility=hidden',
  '--cudart',
  'static',
  ...gencode,
  `-DDTRAIN_CUDA_ARCHS="${archList}"`,
  '-I',
  src,
  '-I',
  join(root, 'addon', 'src'),
  '-o',
  join(out, 'libdtrain_cuda.so'),
  ...sources,
  '-ldl',
  '-lpthread',
];
console.log(`dtrain: building the CUDA part with ${nvcc} (CUDA ${version}) for ${archList}`);
const r = spawnSync(nvcc, args, { stdio: 'inherit' });
if (r.status !== 0) {
  console.error('dtrain: building the CUDA part failed (see above); set DTRAIN_SKIP_CUDA=1 to install without it');
  process.exit(r.status ?? 1);
}
writeFileSync(
  manifest,
  JSON.stringify({ built: true, archs: archList.split(','), cuda_version: version, nvcc }) + '\n',
);
