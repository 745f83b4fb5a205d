// The layer kernels' one API over host arrays and DeviceBuffers, on a machine without a GPU: DeviceBuffers
// take the device path (which fails with CUDA's reason here, after every check that needs no GPU), a call
// that mixes host and device operands fails with one line naming both, and dtype, length and device
// mismatches are caught before the CUDA part is touched; so are IPC handles. DeviceBuffer.fromPointer wraps
// an address without any CUDA call, which lets these checks run here; the GPU suite (scripts/gpu) runs the
// kernels.
import t from 'tap';
import { spawnSync, execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { DeviceBuffer } from '../../../src/runtime/device/device-buffer.js';
import { cudaBuildInfo } from '../../../src/runtime/device/cuda-part.js';
import {
  biasAct,
  biasActBackward,
  gemm,
  linearForward,
  softmaxCrossEntropy,
} from '../../../src/runtime/layers/kernels.js';

const root = join(import.meta.dirname, '..', '..', '..');
// Addresses no CUDA call ever sees: every case below fails before reaching the device.
let next = 0x10000;
const dbuf = (dtype: 'float32' | 'bfloat16' | 'int32', length: number, device = 0) =>
  DeviceBuffer.fromPointer((next += 0x10000), dtype, length, { device });
const f = (n: number) => new Float32Array(n);

t.test('a call mixing host arrays and DeviceBuffers names a host and a device operand', async (t) => {
  t.throws(
    () => gemm({ a: dbuf('float32', 6), b: f(12), c: f(8), m: 2, n: 4, k: 3 }),
    /^gemm: a is a DeviceBuffer but b is a Float32Array; pass host arrays only or DeviceBuffers only$/,
  );
  t.throws(
    () => linearForward({ x: f(6), w: f(12), y: dbuf('float32', 8), rows: 2, inputs: 3, outputs: 4 }),
    /gemm: c is a DeviceBuffer but a is a Float32Array/,
  );
  t.throws(() => biasAct({ z: dbuf('float32', 6), bias: f(3), rows: 2, cols: 3 }), /biasAct: z is a DeviceBuffer/);
  t.throws(
    () => biasActBackward({ dy: f(6), z: f(6), dbias: dbuf('float32', 3), rows: 2, cols: 3 }),
    /biasActBackward: dbias is a DeviceBuffer but dy is a Float32Array/,
  );
  t.throws(
    () => softmaxCrossEntropy({ logits: dbuf('float32', 6), labels: Int32Array.of(0, 1), rows: 2, classes: 3 }),
    /softmaxCrossEntropy: logits is a DeviceBuffer but labels is a Int32Array/,
  );
});

t.test('device operands are checked for dtype, length and device before any CUDA call', async (t) => {
  t.throws(
    () => gemm({ a: dbuf('float32', 5), b: dbuf('float32', 12), c: dbuf('float32', 8), m: 2, n: 4, k: 3 }),
    /^gemm: a has 5 elements, expected 6$/,
  );
  t.throws(
    () => gemm({ a: dbuf('bfloat16', 6), b: dbuf('float32', 12), c: dbuf('float32', 8), m: 2, n: 4, k: 3 }),
    /gemm: b holds float32, expected bfloat16/,
    'a and b share one input dtype',
  );
  t.throws(
    () => gemm({ a: dbuf('float32', 6), b: dbuf('float32', 12), c: dbuf('bfloat16', 8), m: 2, n: 4, k: 3 }),
    /gemm: c holds bfloat16, expected float32/,
  );
  t.throws(
    () => gemm({ a: dbuf('float32', 6), b: dbuf('float32', 12, 1), c: dbuf('float32', 8), m: 2, n: 4, k: 3 }),
    /gemm: a is on device 0 but b on device 1/,
  );
  t.throws(
    () => gemm({ a: dbuf('float32', 6), b: dbuf('float32', 12), c: dbuf('float32', 8), m: 2, n: 4, k: -1 }),
    /gemm: k must be a non-negative integer/,
  );
  t.throws(
    () => biasAct({ z: dbuf('float32', 6), bias: dbuf('float32', 2), rows: 2, cols: 3 }),
    /biasAct: bias has 2 elements, expected 3/,
  );
  t.throws(
    () => biasActBackward({ dy: dbuf('float32', 6), z: dbuf('int32', 6), rows: 2, cols: 3 }),
    /biasActBackward: z holds int32, expected float32/,
  );
  t.throws(
    () => softmaxCrossEntropy({ logits: dbuf('float32', 6), labels: dbuf('float32', 2), rows: 2, classes: 3 }),
    /softmaxCrossEntropy: labels holds float32, expected int32/,
  );
  t.throws(
    () => softmaxCrossEntropy({ logits: dbuf('float32', 0), labels: dbuf('int32', 2), rows: 2, classes: 0 }),
    /softmaxCrossEntropy: classes must be at least 1/,
  );
  t.throws(() => biasAct({ z: dbuf('float32', 6), act: 'tanh' as 'relu', rows: 2, cols: 3 }), /act must be none/);
});

t.test('well-formed device calls take the device path (here: CUDA says there is no GPU)', async (t) => {
  if (!cudaBuildInfo().built) return t.plan(0, 'CUDA part not built');
  const noGpu = /driver|device|CUDA/i;
  t.throws(
    () => gemm({ a: dbuf('bfloat16', 6), b: dbuf('bfloat16', 12), c: dbuf('float32', 8), m: 2, n: 4, k: 3 }),
    noGpu,
  );
  t.throws(() => biasAct({ z: dbuf('float32', 6), bias: dbuf('float32', 3), act: 'gelu', rows: 2, cols: 3 }), noGpu);
  t.throws(
    () => softmaxCrossEntropy({ logits: dbuf('float32', 6), labels: dbuf('int32', 2), rows: 2, classes: 3 }),
    noGpu,
  );
});

t.test('fromPointer wraps memory it does not own: described, never freed by dtrain', async (t) => {
  const b = DeviceBuffer.fromPointer(0x7f0000001000, 'bfloat16', 10, { device: 3 });
  t.same(b.describe(), {
    ptr: 0x7f0000001000,
    device: 3,
    dtype: 'bfloat16',
    length: 10,
    bytes: 20,
    stream: 0,
    memory: 'wrapped',
  });
  t.throws(() => b.exportIpc(), /only a buffer dtrain allocated can be exported, this one is wrapped/);
  b.free(); // no CUDA call: this machine has no GPU, so a cudaFree would throw
  t.throws(() => b.ptr, /used after free/);
  t.throws(() => DeviceBuffer.fromPointer(0, 'float32', 1), /ptr must be a positive address/);
  t.throws(() => DeviceBuffer.fromPointer(4096, 'complex' as 'float32', 1), /unknown dtype complex/);
});

t.test('CUDA IPC: a handle is 64 bytes, checked before CUDA; importing needs a GPU', async (t) => {
  t.throws(() => DeviceBuffer.importIpc(new Uint8Array(63), 'float32', 4), /a Uint8Array of 64 bytes/);
  t.throws(() => DeviceBuffer.importIpc(new Uint8Array(64), 'float32', -1), /non-negative integer/);
  if (!cudaBuildInfo().built) return;
  t.throws(() => DeviceBuffer.importIpc(new Uint8Array(64), 'float32', 4, { device: 0 }), /driver|device|CUDA/i);
});

// cuBLAS is opened with dlopen on first use; each case runs in its own process (the load happens once).
t.test('cuBLAS that cannot be loaded fails with the search and what to do', async (t) => {
  if (!cudaBuildInfo().built) return t.plan(0, 'CUDA part not built');
  const dir = mkdtempSync(join(tmpdir(), 'dtrain-cublas-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const fake = join(dir, 'libcublas.so.13');
  writeFileSync(join(dir, 'fake.cc'), 'extern "C" int cublasCreate_v2(void**) { return 0; }\n');
  execFileSync('g++', ['-shared', '-fPIC', '-o', fake, join(dir, 'fake.cc')]);
  const loadWith = (env: NodeJS.ProcessEnv) => {
    const r = spawnSync(
      process.execPath,
      [
        '-e',
        `import(${JSON.stringify(join(root, 'dist/runtime/layers/device.js'))}).then(m => {` +
          `try { console.log(m.loadCublas()) } catch (e) { console.log('error: ' + e.message) } })`,
      ],
      { encoding: 'utf8', env: { ...process.env, ...env } },
    );
    return r.stdout.trim();
  };
  t.match(
    loadWith({ DTRAIN_CUBLAS_PATH: join(dir, 'missing.so') }),
    /^error: libcublas not found \(set DTRAIN_CUBLAS_PATH or pip install nvidia-cublas-cu12\): .*missing\.so/,
  );
  t.match(
    loadWith({ DTRAIN_CUBLAS_PATH: fake }),
    /^error: .*libcublas\.so\.13 lacks cublasGemmEx: not a usable cuBLAS/,
  );
});
