import t from 'tap';
import { layersNative } from '../../../src/runtime/layers/native.js';
import { optimNative, type SimdPath } from '../../../src/runtime/optim/native.js';
import { adamwStore, HYPER, maxRelError, randomArray } from '../../helpers/optim-data.js';

const native = optimNative();
const avx2 = (() => {
  try {
    return native.adamwSimd('avx2') === 'avx2';
  } catch {
    return false;
  }
})();
const avx512 = (() => {
  try {
    return layersNative().layersSimd('avx512') === 'avx512';
  } catch {
    return false;
  }
})();
const paths: SimdPath[] = avx2 ? ['scalar', 'avx2'] : ['scalar'];

/** torch.optim.AdamW's per-element update in float64: the kernels must agree with it to fp32 accuracy. */
function reference64(p0: Float32Array, grads: Float32Array[]): Float64Array {
  const n = p0.length;
  const p = Float64Array.from(p0);
  const m = new Float64Array(n);
  const v = new Float64Array(n);
  const { lr, beta1, beta2, eps, weightDecay } = HYPER;
  grads.forEach((g, k) => {
    const step = k + 1;
    const bc1 = 1 - beta1 ** step;
    const bc2 = 1 - beta2 ** step;
    for (let i = 0; i < n; i++) {
      p[i] *= 1 - lr * weightDecay;
      m[i] = beta1 * m[i] + (1 - beta1) * g[i];
      v[i] = beta2 * v[i] + (1 - beta2) * g[i] * g[i];
      p[i] -= (lr / bc1) * (m[i] / (Math.sqrt(v[i]) / Math.sqrt(bc2) + eps));
    }
  });
  return p;
}

function runKernel(p0: Float32Array, grads: Float32Array[], simd: SimdPath, threads = 1) {
  const n = p0.length;
  const p = p0.slice();
  const m = new Float32Array(n);
  const v = new Float32Array(n);
  grads.forEach((g, k) =>
    native.adamwStep({
      param: p,
      paramType: 'float32',
      grad: g,
      gradType: 'float32',
      m,
      v,
      ...HYPER,
      step: k + 1,
      simd,
      threads,
    }),
  );
  return { p, m, v };
}

// 1037: not a multiple of 8, so the AVX2 path also runs its scalar tail.
const N = 1037;
const p0 = randomArray(N, 1);
const grads = Array.from({ length: 10 }, (_, k) => randomArray(N, 100 + k, 0.1));

t.test('both SIMD paths match torch AdamW semantics computed in float64', async (t) => {
  t.ok(paths.includes('scalar'));
  if (!avx2) t.comment('this CPU has no AVX2/FMA: only the scalar path is tested');
  const want = reference64(p0, grads);
  for (const simd of paths) {
    const { p } = runKernel(p0, grads, simd);
    // floor at lr: near-zero params carry absolute fp32 rounding of the lr-sized updates
    const err = maxRelError(p, want, HYPER.lr);
    t.ok(err < 1e-6, `${simd}: max relative error ${err.toExponential(2)} < 1e-6`);
    t.not(p[0], p0[0], `${simd} changed the params`);
  }
});

t.test('scalar and AVX2 agree to rounding; threads change nothing', async (t) => {
  const big = 200_000;
  const pb = randomArray(big, 3);
  const gb = [randomArray(big, 4, 0.2), randomArray(big, 5, 0.2)];
  const one = runKernel(pb, gb, paths.at(-1)!, 1);
  const four = runKernel(pb, gb, paths.at(-1)!, 4);
  t.ok(Buffer.from(four.p.buffer).equals(Buffer.from(one.p.buffer)), 'params are independent of the thread split');
  t.ok(Buffer.from(four.v.buffer).equals(Buffer.from(one.v.buffer)), 'so is v');
  if (avx2) {
    const s = runKernel(pb, gb, 'scalar', 1);
    t.ok(maxRelError(s.p, one.p, HYPER.lr) < 1e-6, 'params within 1e-6');
    t.ok(maxRelError(s.m, one.m, 1e-3) < 1e-5, 'm within rounding');
  }
});

t.test('DTRAIN_SIMD forces the dispatch; bad requests fail with a clear message', async (t) => {
  const before = process.env.DTRAIN_SIMD;
  try {
    process.env.DTRAIN_SIMD = 'scalar';
    t.equal(native.adamwSimd('auto'), 'scalar');
    if (avx2) {
      process.env.DTRAIN_SIMD = 'avx2';
      t.equal(native.adamwSimd('auto'), 'avx2');
    }
    process.env.DTRAIN_SIMD = 'neon';
    t.throws(() => native.adamwSimd('auto'), /unknown SIMD path 'neon': use auto, scalar, avx2 or avx512/);
    if (avx512) {
      // one grammar for every kernel family: the optimizer, built up to AVX2, runs its widest path
      process.env.DTRAIN_SIMD = 'avx512';
      t.equal(native.adamwSimd('auto'), 'avx2', 'avx512 is capped at the widest optimizer path');
    }
  } finally {
    if (before === undefined) delete process.env.DTRAIN_SIMD;
    else process.env.DTRAIN_SIMD = before;
  }
  t.equal(native.adamwSimd('scalar'), 'scalar', 'an explicit request beats the environment');
});

t.test('threads follow OMP_NUM_THREADS unless given', async (t) => {
  const before = process.env.OMP_NUM_THREADS;
  try {
    delete process.env.OMP_NUM_THREADS;
    t.equal(native.adamwThreads(), 1, 'unset: one thread');
    process.env.OMP_NUM_THREADS = '3';
    t.equal(native.adamwThreads(), 3);
    t.equal(native.adamwThreads(2), 2, 'an explicit count wins');
    process.env.OMP_NUM_THREADS = 'lots';
    t.equal(native.adamwThreads(), 1, 'unparsable: one thread');
  } finally {
    if (before === undefined) delete process.env.OMP_NUM_THREADS;
    else process.env.OMP_NUM_THREADS = before;
  }
});

t.test('argument errors are exceptions, not crashes', async (t) => {
  const f = new Float32Array(8);
  const base = {
    param: f,
    paramType: 'float32' as const,
    grad: f,
    gradType: 'float32' as const,
    m: f,
    v: f,
    ...HYPER,
    step: 1,
  };
  t.throws(() => native.adamwStep({ ...base, m: new Float32Array(7) }), /same length/);
  t.throws(() => native.adamwStep({ ...base, step: 0 }), /step must be >= 1/);
  t.throws(() => native.adamwStep({ ...base, paramType: 'bfloat16' as const }), /Uint16Array/);
  t.throws(() => native.adamwStep({ ...base, param: new Uint16Array(8), paramType: 'bfloat16' as const }), /master/);
});

// bf16 and fp16 store paths: with lr = 0 the update leaves the master as is, so the 16-bit params are
// exactly its rounding; compare against conversions written here from the formats' definitions.
function bf16Round(x: number): number {
  const f = new Float32Array([x]);
  const u = new Uint32Array(f.buffer);
  if (Number.isNaN(x)) return (u[0] >>> 16) | 0x40;
  return ((u[0] + 0x7fff + ((u[0] >>> 16) & 1)) >>> 16) & 0xffff;
}

function halfValue(h: number): number {
  const s = h & 0x8000 ? -1 : 1;
  const e = (h >> 10) & 0x1f;
  const m = h & 0x3ff;
  if (e === 0x1f) return m ? NaN : s * Infinity;
  return e === 0 ? s * m * 2 ** -24 : s * (1 + m / 1024) * 2 ** (e - 15);
}

const specials = [
  0,
  -0,
  1,
  -1,
  1e-8,
  5.96e-8,
  2.98e-8,
  2.99e-8,
  6.1e-5,
  65504,
  65519,
  65520,
  1e6,
  -1e6,
  Infinity,
  -Infinity,
  NaN,
  1.00048828125,
  1.0009765625,
  1.00146484375,
  3.4e38,
  1.17549435e-38,
  1e-40,
  0.1,
  0.2,
  0.3,
];

for (const dtype of ['bfloat16', 'float16'] as const) {
  t.test(`${dtype} params: rounding to nearest even on every path`, async (t) => {
    const values = Float32Array.from([...specials, ...randomArray(4000, 9, 3), ...randomArray(2000, 10, 1e-5)]);
    for (const simd of paths) {
      const param = adamwStore(values, dtype, simd);
      let bad = 0;
      for (let i = 0; i < values.length; i++) {
        const x = values[i];
        if (dtype === 'bfloat16') {
          if (param[i] !== bf16Round(x)) bad++;
        } else {
          const got = halfValue(param[i]);
          if (Number.isNaN(x)) {
            if (param[i] !== 0x7e00) bad++; // torch's fp16 NaN, payload dropped (addon/src/half.h)
            continue;
          }
          // nearest half: no other half value is strictly closer
          const up = halfValue(param[i] + 1),
            down = halfValue(param[i] - 1);
          const d = Math.abs(got - x);
          if (Math.abs(x) >= 65520 ? Math.abs(got) !== Infinity : Math.abs(up - x) < d || Math.abs(down - x) < d) bad++;
        }
      }
      t.equal(bad, 0, `${simd}: all ${values.length} values rounded correctly`);
    }
    if (avx2) {
      const a = adamwStore(values, dtype, 'scalar');
      const b = adamwStore(values, dtype, 'avx2');
      t.same(b, a, 'scalar and AVX2 produce the same bits');
    }
  });

  t.test(`${dtype} params with 16-bit grads: the fp32 master carries the precision`, async (t) => {
    for (const simd of paths) {
      const n = 515;
      const master = randomArray(n, 11);
      const param = new Uint16Array(n);
      native.convertElements({ src: master, srcType: 'float32', dst: param, dstType: dtype });
      const g32 = randomArray(n, 12, 0.1);
      const g16 = new Uint16Array(n);
      native.convertElements({ src: g32, srcType: 'float32', dst: g16, dstType: dtype });
      const gBack = new Float32Array(n);
      native.convertElements({ src: g16, srcType: dtype, dst: gBack, dstType: 'float32' });
      const want = reference64(master, [gBack, gBack, gBack]);
      const m = new Float32Array(n),
        v = new Float32Array(n);
      for (let s = 1; s <= 3; s++) {
        native.adamwStep({
          param,
          paramType: dtype,
          master,
          grad: g16,
          gradType: dtype,
          m,
          v,
          ...HYPER,
          step: s,
          simd,
        });
      }
      t.ok(maxRelError(master, want, HYPER.lr) < 1e-6, `${simd}: master follows the fp32 update`);
      const p32 = new Float32Array(n);
      native.convertElements({ src: param, srcType: dtype, dst: p32, dstType: 'float32' });
      t.ok(maxRelError(p32, master) < (dtype === 'bfloat16' ? 2 ** -8 : 2 ** -11), 'params are the master rounded');
    }
  });
}

t.test('sum of squares (the local part of the global norm) on every path and type', async (t) => {
  const x = randomArray(100_003, 13);
  let want = 0;
  for (const e of x) want += e * e;
  for (const simd of paths) {
    t.ok(Math.abs(native.sumSquares({ data: x, dtype: 'float32', simd, threads: 3 }) - want) / want < 1e-12, simd);
  }
  const h = new Uint16Array(x.length);
  native.convertElements({ src: x, srcType: 'float32', dst: h, dstType: 'bfloat16' });
  const back = new Float32Array(x.length);
  native.convertElements({ src: h, srcType: 'bfloat16', dst: back, dstType: 'float32' });
  let want16 = 0;
  for (const e of back) want16 += e * e;
  for (const simd of paths)
    t.ok(Math.abs(native.sumSquares({ data: h, dtype: 'bfloat16', simd }) - want16) / want16 < 1e-12);
});
