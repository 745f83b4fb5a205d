// The layer kernels (addon/src/layers) through every SIMD path this CPU has, forced per call, against
// double-precision references written out here: GEMM in all transposes with and without accumulation at odd
// shapes (crossing the micro-tile, cache-block and depth-block edges), the linear helpers, bias + activation
// forward and backward, softmax cross-entropy; and the argument checks. Through the exported wrappers, as users
// call them.
import t from 'tap';
import type { Activation, LayerSimd } from '../../../src/runtime/layers/native.js';
import {
  biasAct,
  biasActBackward,
  gemm,
  linearBackwardInput,
  linearBackwardWeight,
  linearForward,
  layersSimd,
  softmaxCrossEntropy,
} from '../../../src/runtime/layers/kernels.js';
import { randomArray } from '../../helpers/optim-data.js';

const EPS = 2 ** -24;

function available(path: LayerSimd): string | undefined {
  try {
    layersSimd(path);
    return undefined;
  } catch (e) {
    return (e as Error).message;
  }
}

function gemmRef(a: Float32Array, b: Float32Array, m: number, n: number, k: number, ta: boolean, tb: boolean) {
  const c = new Float64Array(m * n);
  const bound = new Float64Array(m * n); // Σ|a·b|, the scale of the rounding error
  for (let i = 0; i < m; i++) {
    for (let j = 0; j < n; j++) {
      let s = 0;
      let s1 = 0;
      for (let p = 0; p < k; p++) {
        const v = (ta ? a[p * m + i] : a[i * k + p]) * (tb ? b[j * k + p] : b[p * n + j]);
        s += v;
        s1 += Math.abs(v);
      }
      c[i * n + j] = s;
      bound[i * n + j] = s1;
    }
  }
  return { c, bound };
}

/** The worst |got − want| in units of the float32 error bound of a k-term sum (2k·ε·Σ|terms|, plus the c0). */
function worstGemm(got: Float32Array, want: Float64Array, bound: Float64Array, k: number, c0?: Float32Array) {
  let worst = 0;
  for (let i = 0; i < got.length; i++) {
    const base = c0 ? c0[i] : 0;
    const tol = 2 * (k + 2) * EPS * (bound[i] + Math.abs(base)) + 1e-30;
    worst = Math.max(worst, Math.abs(got[i] - (want[i] + base)) / tol);
  }
  return worst;
}

// m, n, k: 1s; primes around the 4/6/12-row and 8/16/32-column tiles; m past the 144-row block, k past the
// 256 depth block (accumulation across depth blocks), n past nothing but tiles.
const SHAPES: Array<[number, number, number]> = [
  [1, 1, 1],
  [1, 7, 33],
  [7, 33, 129],
  [33, 129, 7],
  [129, 7, 33],
  [13, 17, 1],
  [150, 37, 19],
  [21, 45, 300],
  [2, 3, 600],
];

const PATHS: LayerSimd[] = ['scalar', 'avx2', 'avx512'];

for (const simd of PATHS) {
  const missing = available(simd);
  t.test(`simd ${simd}`, { skip: missing && `this CPU cannot run it: ${missing}` }, async (t) => {
    t.equal(layersSimd(simd), simd, `the ${simd} path is the one taken`);

    t.test('gemm: every transpose, overwrite and accumulate, odd shapes', async (t) => {
      let worst = 0;
      let seed = 1;
      for (const [m, n, k] of SHAPES) {
        for (const ta of [false, true]) {
          for (const tb of [false, true]) {
            const a = randomArray(m * k, seed++);
            const b = randomArray(k * n, seed++);
            const { c: want, bound } = gemmRef(a, b, m, n, k, ta, tb);
            const c = new Float32Array(m * n).fill(Number.NaN); // overwritten, never read
            gemm({ a, b, c, m, n, k, transA: ta, transB: tb, simd });
            const w1 = worstGemm(c, want, bound, k);
            const c0 = randomArray(m * n, seed++);
            const acc = c0.slice();
            gemm({ a, b, c: acc, m, n, k, transA: ta, transB: tb, accumulate: true, simd });
            const w2 = worstGemm(acc, want, bound, k, c0);
            if (w1 > 1 || w2 > 1) t.fail(`${m}×${n}×${k} transA=${ta} transB=${tb}: ${w1} / ${w2} of the bound`);
            worst = Math.max(worst, w1, w2);
          }
        }
      }
      t.ok(worst <= 1, `worst error ${worst.toFixed(3)} of the float32 bound`);
    });

    t.test('gemm: k = 0 gives zeros, or leaves c alone with accumulate', async (t) => {
      const c = new Float32Array([1, 2, 3, 4, 5, 6]);
      gemm({ a: new Float32Array(0), b: new Float32Array(0), c, m: 2, n: 3, k: 0, accumulate: true, simd });
      t.same(Array.from(c), [1, 2, 3, 4, 5, 6]);
      gemm({ a: new Float32Array(0), b: new Float32Array(0), c, m: 2, n: 3, k: 0, simd });
      t.same(Array.from(c), [0, 0, 0, 0, 0, 0]);
    });

    t.test('a dense layer: forward and both backward products in either weight layout', async (t) => {
      const rows = 33;
      const inputs = 7;
      const outputs = 129;
      const x = randomArray(rows * inputs, 40);
      const dy = randomArray(rows * outputs, 41);
      for (const transW of [false, true]) {
        const w = randomArray(inputs * outputs, 42);
        // W as inputs×outputs for the reference, whichever layout is stored
        const wio = (i: number, o: number) => (transW ? w[o * inputs + i] : w[i * outputs + o]);
        const shape = { rows, inputs, outputs, transW, simd };
        const y = new Float32Array(rows * outputs);
        linearForward({ ...shape, x, w, y });
        const dx = new Float32Array(rows * inputs);
        linearBackwardInput({ ...shape, dy, w, dx });
        const dw = new Float32Array(inputs * outputs).fill(0.5);
        linearBackwardWeight({ ...shape, x, dy, dw, accumulate: true });
        let worst = 0;
        const check = (got: number, want: number, scale: number) =>
          (worst = Math.max(worst, Math.abs(got - want) / (1e-6 * scale + 1e-7)));
        for (let r = 0; r < rows; r++) {
          for (let o = 0; o < outputs; o++) {
            let s = 0;
            for (let i = 0; i < inputs; i++) s += x[r * inputs + i] * wio(i, o);
            check(y[r * outputs + o], s, inputs);
          }
          for (let i = 0; i < inputs; i++) {
            let s = 0;
            for (let o = 0; o < outputs; o++) s += dy[r * outputs + o] * wio(i, o);
            check(dx[r * inputs + i], s, outputs);
          }
        }
        for (let i = 0; i < inputs; i++) {
          for (let o = 0; o < outputs; o++) {
            let s = 0.5;
            for (let r = 0; r < rows; r++) s += x[r * inputs + i] * dy[r * outputs + o];
            check(dw[transW ? o * inputs + i : i * outputs + o], s, rows);
          }
        }
        t.ok(worst <= 1, `transW=${transW}: worst ${worst.toFixed(3)} of 1e-6 per term`);
      }
    });

    t.test('bias + activation, forward and backward (dbias summed, accumulated)', async (t) => {
      const S = Math.sqrt(2 / Math.PI);
      const gelu = (z: number) => 0.5 * z * (1 + Math.tanh(S * (z + 0.044715 * z ** 3)));
      const dgelu = (z: number) => {
        const th = Math.tanh(S * (z + 0.044715 * z ** 3));
        return 0.5 * (1 + th) + 0.5 * z * (1 - th * th) * S * (1 + 3 * 0.044715 * z * z);
      };
      const ref: Record<Activation, [(z: number) => number, (z: number) => number]> = {
        none: [(z) => z, () => 1],
        relu: [(z) => Math.max(z, 0), (z) => (z > 0 ? 1 : 0)],
        gelu: [gelu, dgelu],
      };
      for (const [rows, cols] of [
        [1, 1],
        [7, 33],
        [129, 7],
        [3, 1000],
      ]) {
        for (const act of ['none', 'relu', 'gelu'] as Activation[]) {
          const [f, df] = ref[act];
          const z0 = randomArray(rows * cols, rows + cols, 6); // [-6, 6]: both tails of GELU
          const bias = randomArray(cols, 7);
          const z = z0.slice();
          const y = new Float32Array(rows * cols);
          biasAct({ z, bias, y, act, rows, cols, simd });
          const dy = randomArray(rows * cols, 8);
          const dz = new Float32Array(rows * cols);
          const dbias = new Float32Array(cols).fill(1);
          biasActBackward({ dy, z, dz, dbias, act, rows, cols, accumulate: true, simd });
          let worst = 0;
          const sums = new Float64Array(cols).fill(1);
          for (let i = 0; i < rows * cols; i++) {
            const pre = Math.fround(z0[i] + bias[i % cols]);
            const dzWant = dy[i] * df(pre);
            sums[i % cols] += dzWant;
            worst = Math.max(
              worst,
              Math.abs(z[i] - pre),
              Math.abs(y[i] - f(pre)) / (1 + Math.abs(pre)),
              Math.abs(dz[i] - dzWant),
            );
          }
          for (let c = 0; c < cols; c++) worst = Math.max(worst, Math.abs(dbias[c] - sums[c]) / rows);
          // GELU's derivative takes 1 − tanh² in float (as PyTorch's float GELU backward does), which cancels
          // where tanh nears ±1: a few more ulps there
          const tolerance = act === 'gelu' ? 5e-6 : 2e-6;
          t.ok(worst < tolerance, `${act} ${rows}×${cols}: worst ${worst.toExponential(2)}`);
          const inPlace = z0.slice();
          biasAct({ z: inPlace, act, rows, cols, simd }); // no bias, y = z
          t.ok(
            inPlace.every((v, i) => Math.abs(v - f(z0[i])) <= 2e-6 * (1 + Math.abs(z0[i]))),
            `${act} ${rows}×${cols}: in place without a bias`,
          );
        }
      }
    });

    t.test('softmax cross-entropy: mean loss and scaled gradient, large logits stay finite', async (t) => {
      for (const [rows, classes] of [
        [1, 1],
        [7, 8],
        [33, 129],
        [129, 3],
      ]) {
        const logits = randomArray(rows * classes, rows * 31 + classes, 40); // up to ±40: exp overflows unshifted
        const labels = Int32Array.from({ length: rows }, (_, r) => (r * 7 + 3) % classes);
        const scale = 1 / rows;
        const grad = new Float32Array(rows * classes);
        const loss = softmaxCrossEntropy({ logits, labels, rows, classes, scale, grad, simd });
        let total = 0;
        let worstGrad = 0;
        for (let r = 0; r < rows; r++) {
          const row = Array.from(logits.subarray(r * classes, (r + 1) * classes));
          const max = Math.max(...row);
          const sum = row.reduce((s, v) => s + Math.exp(v - max), 0);
          total += Math.log(sum) + max - row[labels[r]];
          row.forEach((v, c) => {
            const want = (Math.exp(v - max) / sum - (c === labels[r] ? 1 : 0)) * scale;
            worstGrad = Math.max(worstGrad, Math.abs(grad[r * classes + c] - want) / scale);
          });
        }
        const want = total / rows;
        t.ok(Math.abs(loss - want) <= 1e-6 * (1 + want), `${rows}×${classes}: loss ${loss}, reference ${want}`);
        t.ok(worstGrad < 1e-6, `${rows}×${classes}: worst gradient error ${worstGrad.toExponential(2)} × scale`);
        const meanOnly = softmaxCrossEntropy({ logits, labels, rows, classes, simd });
        t.equal(meanOnly, loss, 'the loss does not depend on asking for the gradient');
      }
    });
  });
}

t.test('DTRAIN_SIMD forces the path of every call that leaves simd out', async (t) => {
  const before = process.env.DTRAIN_SIMD;
  t.teardown(() => {
    if (before === undefined) delete process.env.DTRAIN_SIMD;
    else process.env.DTRAIN_SIMD = before;
  });
  for (const simd of PATHS) {
    process.env.DTRAIN_SIMD = simd;
    if (available(simd)) {
      t.throws(() => layersSimd(), new RegExp(`DTRAIN_SIMD=${simd} but this CPU lacks`), `${simd}: refused`);
    } else {
      t.equal(layersSimd(), simd, `DTRAIN_SIMD=${simd}`);
    }
  }
  process.env.DTRAIN_SIMD = 'sse9';
  t.throws(() => layersSimd(), /unknown SIMD path 'sse9': use auto, scalar, avx2 or avx512/);
  delete process.env.DTRAIN_SIMD;
  t.not(layersSimd(), undefined);
  t.equal(layersSimd('scalar'), 'scalar', 'an explicit request beats the environment');
});

t.test(
  'GELU under DTRAIN_SIMD=avx2 rounds as the scalar path does, bit for bit',
  { skip: available('avx2') },
  async (t) => {
    // The AVX2 rows are intrinsics, not the compiler's loop: the same operations in the same order, without FMA
    // (fused, the saturated tanh ends a few ulps below 1 and the derivative's 1 − t² grows that to 1e-5).
    const before = process.env.DTRAIN_SIMD;
    t.teardown(() => {
      if (before === undefined) delete process.env.DTRAIN_SIMD;
      else process.env.DTRAIN_SIMD = before;
    });
    process.env.DTRAIN_SIMD = 'avx2';
    t.equal(layersSimd(), 'avx2');
    for (const [rows, cols] of [
      [3, 8],
      [5, 37], // 4 vectors and a 5-element tail per row
      [2, 1000],
    ]) {
      const z0 = randomArray(rows * cols, rows * cols, 9); // past ±7.9 inside tanh: the saturated ends
      z0[0] = Number.NaN;
      z0[1] = 40;
      z0[2] = -40;
      const bias = randomArray(cols, 3);
      const dy = randomArray(rows * cols, 4);
      const run = (simd: LayerSimd | undefined) => {
        const z = z0.slice();
        const y = new Float32Array(rows * cols);
        biasAct({ z, bias, y, act: 'gelu', rows, cols, simd });
        const dz = new Float32Array(rows * cols);
        const dbias = new Float32Array(cols);
        biasActBackward({ dy, z, dz, dbias, act: 'gelu', rows, cols, simd });
        return [y, dz, dbias].map((a) => Buffer.from(a.buffer).toString('hex'));
      };
      t.same(run(undefined), run('scalar'), `${rows}×${cols}: y, dz and dbias`);
    }
  },
);

t.test('bad arguments fail with one clear message', async (t) => {
  const f = (n: number) => new Float32Array(n);
  t.doesNotThrow(() => gemm({ a: f(6), b: f(12), c: f(8), m: 2, n: 4, k: 3 }), 'matching shapes pass');
  t.throws(() => gemm({ a: f(5), b: f(12), c: f(8), m: 2, n: 4, k: 3 }), /a has 5 elements, expected 6/);
  t.throws(
    () => gemm({ a: new Float64Array(6) as unknown as Float32Array, b: f(12), c: f(8), m: 2, n: 4, k: 3 }),
    /a must be a Float32Array/,
  );
  t.throws(() => gemm({ a: f(6), b: f(12), c: f(8), m: 2, n: 4, k: 1.5 }), /k must be a non-negative integer/);
  t.throws(() => biasAct({ z: f(6), act: 'tanh' as Activation, rows: 2, cols: 3 }), /act must be none, relu/);
  t.throws(() => biasAct({ z: f(6), bias: f(2), rows: 2, cols: 3 }), /bias has 2 elements, expected 3/);
  t.throws(
    () => softmaxCrossEntropy({ logits: f(6), labels: Int32Array.from([0, 3]), rows: 2, classes: 3 }),
    /labels\[1\] = 3 is not a class in \[0, 3\)/,
  );
  t.throws(() => gemm({ a: f(6), b: f(12), c: f(8), m: 2, n: 4, k: 3, simd: 'neon' as LayerSimd }), /unknown SIMD/);
});
