/**
 * A seeded PRNG whose whole state is four 32-bit words (xoshiro128**, Blackman & Vigna), so a checkpoint can
 * store it and a resumed run draws exactly the numbers the uninterrupted run would have drawn.
 */
export type RngState = [number, number, number, number];

/** splitmix32: spreads a small seed over 32 bits, so seeds 1 and 2 give unrelated streams. */
function splitmix32(x: number): number {
  x = (x + 0x9e3779b9) | 0;
  let z = x;
  z = Math.imul(z ^ (z >>> 16), 0x85ebca6b);
  z = Math.imul(z ^ (z >>> 13), 0xc2b2ae35);
  return (z ^ (z >>> 16)) >>> 0;
}

export class Rng {
  private s: Uint32Array;

  private constructor(state: RngState) {
    this.s = Uint32Array.from(state);
    if (this.s.every((w) => w === 0)) throw new RangeError('xoshiro128** state must not be all zero');
  }

  /** A stream named by several integers (seed, purpose, layer…): each list gives an independent stream. */
  static fromSeed(...words: number[]): Rng {
    let h = 0x6a09e667;
    for (const w of words) h = splitmix32(h ^ splitmix32(w >>> 0));
    const st: number[] = [];
    for (let i = 0; i < 4; i++) {
      h = splitmix32(h + i);
      st.push(h);
    }
    return new Rng(st as RngState);
  }

  static fromState(state: readonly number[]): Rng {
    if (state.length !== 4 || state.some((w) => !Number.isInteger(w) || w < 0 || w > 0xffffffff))
      throw new RangeError(`an Rng state is four 32-bit words, got ${JSON.stringify(state)}`);
    return new Rng([...state] as RngState);
  }

  state(): RngState {
    return [this.s[0], this.s[1], this.s[2], this.s[3]];
  }

  nextU32(): number {
    const s = this.s;
    const result = Math.imul(rotl(Math.imul(s[1], 5), 7), 9) >>> 0;
    const t = s[1] << 9;
    s[2] ^= s[0];
    s[3] ^= s[1];
    s[1] ^= s[2];
    s[0] ^= s[3];
    s[2] ^= t;
    s[3] = rotl(s[3], 11);
    return result;
  }

  /** uniform in [0, 1) with 32 random bits */
  uniform(): number {
    return this.nextU32() / 4294967296;
  }

  /** standard normal (Box–Muller; both uniforms drawn every call so the state advances by a fixed amount) */
  normal(): number {
    const u = 1 - this.uniform();
    const v = this.uniform();
    return Math.sqrt(-2 * Math.log(u)) * Math.cos(2 * Math.PI * v);
  }

  /** uniform integer in [0, n) (n < 2^32; the modulo bias is below 2^-20 for the sizes used here) */
  below(n: number): number {
    return Math.floor(this.uniform() * n);
  }
}

function rotl(x: number, k: number): number {
  return ((x << k) | (x >>> (32 - k))) >>> 0;
}
