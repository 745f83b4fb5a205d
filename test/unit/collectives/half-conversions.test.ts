/**
 * The fp32 <-> bf16 / fp16 conversions (addon/src/half.h) through every user: the reduction kernels (one
 * build per DTRAIN_SIMD path, forced in child processes), the optimizer's convertElements and its AdamW
 * store on the scalar and AVX2 paths. All must give the same bits, and the bits torch's CPU conversions give
 * (NaN included: fp16 NaN -> fp32 is quieted with its payload, fp32 NaN -> fp16 is sign|0x7e00). For bf16 NaN
 * torch has no single answer, so the rule there is half.h's: the fp32 NaN's top half, quieted.
 */
import t from 'tap';
import { spawnSync } from 'node:child_process';
import { fixture } from '../../helpers/collectives-harness.js';
import { adamwStore } from '../../helpers/optim-data.js';
import { PYTHON, torchSkip } from '../../helpers/optim-python.js';
import { optimNative, type SimdPath } from '../../../src/runtime/optim/native.js';

const native = optimNative();
const avx2 = (() => {
  try {
    return native.adamwSimd('avx2') === 'avx2';
  } catch {
    return false;
  }
})();
const optimPaths: SimdPath[] = avx2 ? ['scalar', 'avx2'] : ['scalar'];
type Half = 'float16' | 'bfloat16';

/** xorshift32 bit patterns: the same on every run. */
function randomBits(n: number, seed: number): Uint32Array {
  const out = new Uint32Array(n);
  let x = seed >>> 0 || 1;
  for (let i = 0; i < n; i++) {
    x ^= x << 13;
    x >>>= 0;
    x ^= x >>> 17;
    x ^= x << 5;
    out[i] = x >>>= 0;
  }
  return out;
}

// fp32 inputs: NaNs with payloads (both signs, signalling and quiet) first, so the AVX2 path's 8-wide body
// stores them; then every exponent from fp16's subnormals to past its overflow with ties either side of
// both formats' rounding points, and random bit patterns.
const NAN_CASES: [number, number, number][] = [
  // [fp32 bits, fp16 bits (torch 1.13 CPU .half()), bf16 bits (half.h's rule)]
  [0x7fc00000, 0x7e00, 0x7fc0],
  [0xffc00000, 0xfe00, 0xffc0],
  [0x7fa00000, 0x7e00, 0x7fe0],
  [0x7f800001, 0x7e00, 0x7fc0],
  [0x7fffffff, 0x7e00, 0x7fff],
  [0xfff12345, 0xfe00, 0xfff1],
  [0x7fc12345, 0x7e00, 0x7fc1],
  [0x7f812000, 0x7e00, 0x7fc1],
];
function f32Inputs(): Uint32Array {
  const bits: number[] = NAN_CASES.map((c) => c[0]);
  bits.push(0x7f800000, 0xff800000, 0, 0x80000000, 0x477fe000, 0x477fefff, 0x477ff000, 0x33000000, 0x33000001);
  const r = randomBits(4096, 77);
  let k = 0;
  for (let e = 90; e <= 150; e++) {
    for (const low of [0x0fff, 0x1000, 0x1001, 0x3000, 0x7fff, 0x8000, 0x8001, 0x18000, -1]) {
      for (const sign of [0, 0x80000000]) {
        const man = low < 0 ? r[k++ % r.length] & 0x7fffff : ((r[k++ % r.length] & 0x7f0000) | low) & 0x7fffff;
        bits.push((sign | (e << 23) | man) >>> 0);
      }
    }
  }
  bits.push(...randomBits(20000, 99));
  return Uint32Array.from(bits);
}

const f32Bits = f32Inputs();
const f32 = new Float32Array(f32Bits.buffer);
const all16 = Uint16Array.from({ length: 65536 }, (_, i) => i);
// NaN + NaN may keep either operand's sign and payload (the compiler may swap them): one side finite
const isNaN16 = (h: number) =>
  ((h & 0x7c00) === 0x7c00 && (h & 0x3ff) !== 0) || ((h & 0x7f80) === 0x7f80 && (h & 0x7f) !== 0);
const other16 = Uint16Array.from(randomBits(65536, 5), (x, i) =>
  isNaN16(i) && isNaN16(x & 0xffff) ? x & 0x3ff : x & 0xffff,
);

function convert(src: Float32Array | Uint16Array, srcType: Half | 'float32', dstType: Half | 'float32') {
  const dst = dstType === 'float32' ? new Float32Array(src.length) : new Uint16Array(src.length);
  native.convertElements({ src, srcType, dst, dstType });
  return dst;
}
const bitsOf = (x: Float32Array) => new Uint32Array(x.buffer, x.byteOffset, x.length);

interface KernelReport {
  simd: string;
  float16: { roundTrip: number[]; sum: number[] };
  bfloat16: { roundTrip: number[]; sum: number[] };
}
const kernels = new Map<string, KernelReport>();
for (const simd of ['scalar', 'avx2']) {
  const r = spawnSync(process.execPath, [fixture('half-bits.mjs')], {
    env: { ...process.env, DTRAIN_SIMD: simd },
    input: JSON.stringify({ a: [...all16], b: [...other16] }),
    encoding: 'utf8',
    maxBuffer: 64 << 20,
  });
  if (r.status !== 0) throw new Error(`half-bits.mjs (DTRAIN_SIMD=${simd}) failed: ${r.stderr}`);
  kernels.set(simd, JSON.parse(r.stdout.trim().split('\n').pop()!));
}

/** The first few indices where got and want differ, as hex, so a failure names the inputs. */
function mismatches(got: ArrayLike<number>, want: ArrayLike<number>, input: ArrayLike<number>): string[] {
  const out: string[] = [];
  for (let i = 0; i < want.length && out.length < 5; i++) {
    if (got[i] !== want[i])
      out.push(`in ${input[i].toString(16)}: got ${got[i].toString(16)}, want ${want[i].toString(16)}`);
  }
  return out;
}

t.test('NaN, infinity and zero bits on every path', async (t) => {
  // built from bits: a NaN read into a JS number may lose its payload
  const padded = new Float32Array(
    Uint32Array.from({ length: 16 }, (_, i) => NAN_CASES[i % NAN_CASES.length][0]).buffer,
  );
  for (const [dtype, col] of [
    ['float16', 1],
    ['bfloat16', 2],
  ] as const) {
    const want = Uint16Array.from({ length: 16 }, (_, i) => NAN_CASES[i % NAN_CASES.length][col]);
    t.same([...convert(padded, 'float32', dtype)], [...want], `convertElements float32 -> ${dtype}`);
    for (const simd of optimPaths) t.same([...adamwStore(padded, dtype, simd)], [...want], `AdamW ${simd} ${dtype}`);
  }
  // fp16 NaNs widen quietly, keeping sign and payload (torch and F16C do the same)
  const h = Uint16Array.from([0x7d23, 0xfd01, 0x7c01, 0x7e00, 0x7fff, 0x7c00, 0xfc00, 0x8000, 0x0001, 0x03ff]);
  const want = [0x7fe46000, 0xffe02000, 0x7fc02000, 0x7fc00000, 0x7fffe000, 0x7f800000, 0xff800000, 0x80000000];
  t.same([...bitsOf(convert(h, 'float16', 'float32') as Float32Array)], [...want, 0x33800000, 0x387fc000]);
});

t.test('the reduction kernels and the optimizer round the same bits', async (t) => {
  for (const dtype of ['float16', 'bfloat16'] as const) {
    const viaOptim = convert(convert(all16, dtype, 'float32'), 'float32', dtype);
    for (const [simd, report] of kernels) {
      t.equal(report.simd, simd, `the ${simd} kernels ran`);
      t.same(mismatches(report[dtype].roundTrip, viaOptim, all16), [], `${simd} ${dtype}: all 65536 round trips`);
    }
    const direct = convert(f32, 'float32', dtype);
    for (const simd of optimPaths)
      t.same(mismatches(adamwStore(f32, dtype, simd), direct, f32Bits), [], `AdamW ${simd} ${dtype} store`);
  }
});

const skip = torchSkip();
t.test('bit-exact against torch', { skip }, async (t) => {
  const script = `
import json, sys, numpy as np, torch
d = json.load(sys.stdin)
x = torch.from_numpy(np.array(d['f32'], dtype=np.uint32).view(np.float32))
a = torch.from_numpy(np.array(d['a'], dtype=np.uint16).view(np.int16))
b = torch.from_numpy(np.array(d['b'], dtype=np.uint16).view(np.int16))
u16 = lambda v: (v.view(torch.int16).numpy().view(np.uint16)).tolist()
u32 = lambda v: (v.view(torch.int32).numpy().view(np.uint32)).tolist()
out = {'f16': u16(x.half()), 'bf16': u16(x.bfloat16())}
for name, dt in (('float16', torch.float16), ('bfloat16', torch.bfloat16)):
    wa, wb = a.view(dt).float(), b.view(dt).float()
    out[name] = {'widen': u32(wa), 'roundTrip': u16(wa.to(dt)), 'sum32': u32(wa + wb), 'sum': u16((wa + wb).to(dt))}
print(json.dumps(out))
`;
  const r = spawnSync(PYTHON, ['-c', script], {
    input: JSON.stringify({ f32: [...f32Bits], a: [...all16], b: [...other16] }),
    encoding: 'utf8',
    maxBuffer: 64 << 20,
  });
  t.equal(r.status, 0, r.stderr);
  const torch = JSON.parse(r.stdout);
  // torch's bf16 NaN (0xffff on its AVX2 path) is not followed: NaNs get half.h's rule instead
  const bf16Rule = (f32: ArrayLike<number>, bf16: number[]) =>
    bf16.map((h, i) => ((f32[i] & 0x7fffffff) > 0x7f800000 ? ((f32[i] >>> 16) | 0x40) & 0xffff : h));
  const want = { float16: torch.f16, bfloat16: bf16Rule(f32Bits, torch.bf16) };
  for (const dtype of ['float16', 'bfloat16'] as const) {
    const n = f32.length;
    t.same(mismatches(convert(f32, 'float32', dtype), want[dtype], f32Bits), [], `convertElements: ${n} fp32 values`);
    for (const simd of optimPaths)
      t.same(mismatches(adamwStore(f32, dtype, simd), want[dtype], f32Bits), [], `AdamW ${simd}: ${n} fp32 values`);
    const ref = torch[dtype];
    const widened = bitsOf(convert(all16, dtype, 'float32') as Float32Array);
    t.same(mismatches(widened, ref.widen, all16), [], `${dtype} -> float32: all 65536 bit patterns`);
    const sumWant = dtype === 'bfloat16' ? bf16Rule(ref.sum32, ref.sum) : ref.sum;
    const rtWant = dtype === 'bfloat16' ? bf16Rule(ref.widen, ref.roundTrip) : ref.roundTrip;
    for (const [simd, report] of kernels) {
      t.same(mismatches(report[dtype].roundTrip, rtWant, all16), [], `${simd} kernels: ${dtype} round trips`);
      t.same(mismatches(report[dtype].sum, sumWant, all16), [], `${simd} kernels: ${dtype} sums rounded once`);
    }
  }
});
