/**
 * How a flat parameter space of `numel` elements is split over a data group: padded so every shard has
 * the same size, a multiple of `align` elements (64 bytes of fp32), so shards start cache-line and SIMD
 * aligned and equal-sized buffers suit reduce-scatter and all-gather. The tail padding belongs to the last
 * shard(s) and holds no parameters.
 */
export interface Partition {
  numel: number;
  world: number;
  align: number;
  shardSize: number;
  paddedNumel: number;
}

export interface Range {
  start: number;
  end: number;
}

export const SHARD_ALIGN = 16;

export function partition(numel: number, world: number, align = SHARD_ALIGN): Partition {
  if (!Number.isSafeInteger(numel) || numel < 1) throw new RangeError(`numel must be a positive integer, got ${numel}`);
  if (!Number.isInteger(world) || world < 1)
    throw new RangeError(`world size must be a positive integer, got ${world}`);
  const per = Math.ceil(numel / world);
  const shardSize = Math.ceil(per / align) * align;
  return { numel, world, align, shardSize, paddedNumel: shardSize * world };
}

/** The elements rank `rank` owns, clipped to the real parameters (possibly empty for trailing ranks). */
export function shardRange(p: Partition, rank: number): Range {
  const start = Math.min(p.numel, rank * p.shardSize);
  return { start, end: Math.min(p.numel, start + p.shardSize) };
}

export function intersect(a: Range, b: Range): Range | undefined {
  const start = Math.max(a.start, b.start);
  const end = Math.min(a.end, b.end);
  return start < end ? { start, end } : undefined;
}

/**
 * Buckets over one shard: per-rank chunk lengths such that one collective moves at most `bucketBytes`
 * (world × chunk × elementBytes), each chunk a multiple of `align` except possibly the last.
 */
export function shardBuckets(p: Partition, elementBytes: number, bucketBytes: number): Range[] {
  const fit = Math.floor(bucketBytes / (elementBytes * p.world) / p.align) * p.align;
  const chunk = Math.min(p.shardSize, Math.max(p.align, fit));
  const out: Range[] = [];
  for (let s = 0; s < p.shardSize; s += chunk) out.push({ start: s, end: Math.min(p.shardSize, s + chunk) });
  return out;
}

/** Buckets over the whole flat space [0, numel), for stage 1's in-place all-reduce. */
export function flatBuckets(numel: number, elementBytes: number, bucketBytes: number, align = SHARD_ALIGN): Range[] {
  const chunk = Math.max(align, Math.floor(bucketBytes / elementBytes / align) * align);
  const out: Range[] = [];
  for (let s = 0; s < numel; s += chunk) out.push({ start: s, end: Math.min(numel, s + chunk) });
  return out;
}
