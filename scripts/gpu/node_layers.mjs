// The layer kernels through Node on one GPU: the same calls (gemm, the linear* helpers, biasAct,
// biasActBackward, softmaxCrossEntropy) on DeviceBuffers against the CPU kernels on host arrays, for a dense
// layer in both weight layouts and every activation; bf16 GEMM inputs against the CPU product of the rounded
// inputs; a mixed host/device call's error; a DeviceBuffer exported over CUDA IPC and read by a second
// process. Run by scripts/gpu/run.sh when `node` and a built dist/ are present:
//   node scripts/gpu/node_layers.mjs
import { spawnSync } from 'node:child_process';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
const L = await import(join(root, 'dist/runtime/index.js'));
const { DeviceBuffer } = L;
const failures = [];
function expect(ok, what) {
  console.log(`${ok ? 'ok  ' : 'FAIL'}  ${what}`);
  if (!ok) failures.push(what);
}

let seed = 7;
function random(n, scale = 1) {
  const out = new Float32Array(n);
  for (let i = 0; i < n; i++) {
    seed = (seed * 1103515245 + 12345) >>> 0;
    out[i] = ((seed / 2 ** 32) * 2 - 1) * scale;
  }
  return out;
}
const dev = (host) => DeviceBuffer.from(host);
const back = (buf) => buf.copyTo(new Float32Array(buf.length));
// Normwise: the worst |gpu - cpu| over the largest |cpu| (the two GEMMs sum in different orders, so
// elementwise ratios blow up where a value is near zero).
function worst(gpu, cpu) {
  let w = 0;
  let scale = 1e-30;
  for (let i = 0; i < cpu.length; i++) {
    w = Math.max(w, Math.abs(gpu[i] - cpu[i]));
    scale = Math.max(scale, Math.abs(cpu[i]));
  }
  return w / scale;
}

const rows = 129,
  inputs = 67,
  outputs = 33;
for (const transW of [false, true]) {
  for (const act of ['none', 'relu', 'gelu']) {
    const x = random(rows * inputs, 2);
    const w = random(inputs * outputs, 0.5);
    const b = random(outputs);
    const labels = Int32Array.from({ length: rows }, (_, i) => (i * 7) % outputs);
    const shape = { rows, inputs, outputs, transW };
    // CPU
    const z = new Float32Array(rows * outputs);
    L.linearForward({ ...shape, x, w, y: z });
    const y = new Float32Array(z.length);
    L.biasAct({ z, bias: b, y, act, rows, cols: outputs });
    const grad = new Float32Array(y.length);
    const loss = L.softmaxCrossEntropy({ logits: y, labels, rows, classes: outputs, grad });
    const dz = new Float32Array(grad.length);
    const db = new Float32Array(outputs);
    L.biasActBackward({ dy: grad, z, dz, dbias: db, act, rows, cols: outputs });
    const dx = new Float32Array(x.length);
    const dw = new Float32Array(w.length);
    L.linearBackwardInput({ ...shape, dy: dz, w, dx });
    L.linearBackwardWeight({ ...shape, x, dy: dz, dw });
    // GPU: the same calls on DeviceBuffers
    const g = { x: dev(x), w: dev(w), b: dev(b), labels: dev(labels) };
    const gz = DeviceBuffer.alloc('float32', z.length);
    L.linearForward({ ...shape, x: g.x, w: g.w, y: gz });
    const gy = DeviceBuffer.alloc('float32', y.length);
    L.biasAct({ z: gz, bias: g.b, y: gy, act, rows, cols: outputs });
    const ggrad = DeviceBuffer.alloc('float32', grad.length);
    const gloss = L.softmaxCrossEntropy({ logits: gy, labels: g.labels, rows, classes: outputs, grad: ggrad });
    const gdz = DeviceBuffer.alloc('float32', dz.length);
    const gdb = DeviceBuffer.alloc('float32', outputs);
    L.biasActBackward({ dy: ggrad, z: gz, dz: gdz, dbias: gdb, act, rows, cols: outputs });
    const gdx = DeviceBuffer.alloc('float32', dx.length);
    const gdw = DeviceBuffer.alloc('float32', dw.length);
    L.linearBackwardInput({ ...shape, dy: gdz, w: g.w, dx: gdx });
    L.linearBackwardWeight({ ...shape, x: g.x, dy: gdz, dw: gdw });
    const errs = {
      y: worst(back(gy), y),
      dx: worst(back(gdx), dx),
      dW: worst(back(gdw), dw),
      db: worst(back(gdb), db),
    };
    const ok = Math.abs(gloss - loss) <= 1e-5 * Math.abs(loss) && Object.values(errs).every((e) => e < 1e-5);
    const detail = Object.entries(errs)
      .map(([k, v]) => `${k} ${v.toExponential(1)} of the largest`)
      .join(', ');
    expect(ok, `dense layer ${act}${transW ? ' (W outputs×inputs)' : ''}: loss ${gloss} vs CPU ${loss}; ${detail}`);
    for (const buf of [...Object.values(g), gz, gy, ggrad, gdz, gdb, gdx, gdw]) buf.free();
  }
}

// bf16 inputs: the CPU product of the same rounded values (bf16 → fp32 is exact).
const toBf16 = (f) => {
  const u = new Uint32Array(Float32Array.from(f).buffer);
  return Uint16Array.from(u, (v) => (v + 0x7fff + ((v >> 16) & 1)) >>> 16);
};
const fromBf16 = (h) => new Float32Array(Uint32Array.from(h, (v) => v << 16).buffer);
const [m, n, k] = [65, 47, 130];
const a16 = toBf16(random(m * k)),
  b16 = toBf16(random(k * n));
const c = new Float32Array(m * n);
L.gemm({ a: fromBf16(a16), b: fromBf16(b16), c, m, n, k });
const ga = DeviceBuffer.from(a16, { dtype: 'bfloat16' }),
  gb = DeviceBuffer.from(b16, { dtype: 'bfloat16' });
const gc = DeviceBuffer.alloc('float32', m * n);
L.gemm({ a: ga, b: gb, c: gc, m, n, k });
const bfErr = worst(back(gc), c);
expect(bfErr < 1e-5, `gemm bf16 inputs on the GPU vs the CPU product of the rounded inputs: ${bfErr.toExponential(1)}`);

let mixed = '';
try {
  L.gemm({ a: ga, b: fromBf16(b16), c: gc, m, n, k });
} catch (e) {
  mixed = e.message;
}
expect(/b is a Float32Array/.test(mixed), `a mixed host/device call fails: ${mixed}`);
for (const buf of [ga, gb, gc]) buf.free();

// CUDA IPC through the Node API: a child process maps the buffer and sums it.
const shared = DeviceBuffer.from(Float32Array.from({ length: 1000 }, (_, i) => i));
const handle = Buffer.from(shared.exportIpc()).toString('hex');
const reader = `const { DeviceBuffer } = await import(${JSON.stringify(join(root, 'dist/runtime/index.js'))});
const b = DeviceBuffer.importIpc(Uint8Array.from(Buffer.from('${handle}', 'hex')), 'float32', 1000);
console.log(b.copyTo(new Float32Array(1000)).reduce((s, v) => s + v, 0), b.describe().memory); b.free();`;
const child = spawnSync(process.execPath, ['--input-type=module', '-e', reader], { encoding: 'utf8' });
const read = (child.stdout || child.stderr).trim();
expect(read === '499500 ipc', `exportIpc / importIpc across processes: ${read} (want 499500 ipc)`);
shared.free();

console.log(`cuBLAS from ${L.loadCublas()}`);
console.log(failures.length ? `${failures.length} failed` : 'all Node layer checks passed');
process.exit(failures.length ? 1 : 0);
