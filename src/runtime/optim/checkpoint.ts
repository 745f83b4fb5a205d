/**
 * Sharded optimizer checkpoints: `dir/step_N/gen_K/` holds one file per rank and a manifest; `dir/latest`
 * names the newest committed generation (`step_N/gen_K`).
 *
 * Commit protocol: every save writes a new generation beside whatever is there, so a save never touches
 * the committed files it replaces (re-saving the step `latest` names included). Every rank writes and
 * fsyncs its file, then the ranks all-gather (ok, size, sha256); only when all succeeded does rank 0 write
 * manifest.json (tmp + fsync + rename + directory fsync: ../durable-file.ts) and then replace `latest` the same
 * way; only then are the step's other generations removed. A generation without a manifest was never committed
 * and is never loaded, so a rank dying (or SIGKILL) mid-save leaves the previous `latest` in force.
 *
 * Older checkpoints kept the files directly in `step_N/` and `latest` named `step_N`: they still load, and
 * re-saving such a step removes the old files only after the new generation is committed.
 *
 * Rank file `rank-RRRRR-of-WWWWW.bin`: the 8 bytes "DTRNADAM", a little-endian uint32 header length, the
 * JSON header {version, rank, world, start, end, step, arrays, dataOffset}, zero padding to a 64-byte
 * boundary, then the arrays (master, m, v), each (end - start) little-endian fp32 values of the flat
 * elements [start, end). Loading on another group size reads the overlapping ranges of whichever files
 * cover the new shard.
 */
import { createReadStream } from 'node:fs';
import { mkdir, open, readdir, readFile, rm, stat, unlink, type FileHandle } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import { fsyncDirectory, writeFileDurably } from '../durable-file.js';
import { makeDirs } from '../../util/make-dirs.js';
import type { Group } from '../types.js';
import { CheckpointError } from './errors.js';
import type { KernelDType } from './native.js';
import type { Partition, Range } from './partition.js';

export const MANIFEST = 'manifest.json';
export const LATEST = 'latest';
const MAGIC = Buffer.from('DTRNADAM', 'latin1');
const FORMAT = 'dtrain-sharded-adam';
const VERSION = 1;
const ARRAYS = ['master', 'm', 'v'] as const;
type ArrayName = (typeof ARRAYS)[number];

export interface Hyperparameters {
  lr: number;
  beta1: number;
  beta2: number;
  eps: number;
  weightDecay: number;
}

/** Each array of this rank's shard as views that, concatenated, cover the shard's flat range. */
export type ShardViews = Record<ArrayName, Float32Array[]>;

export interface ManifestFile {
  file: string;
  rank: number;
  start: number;
  end: number;
  bytes: number;
  sha256: string;
}

export interface Manifest {
  format: string;
  version: number;
  step: number;
  numel: number;
  paramDtype: KernelDType;
  stage: 0 | 1 | 2;
  hyper: Hyperparameters;
  partition: { world: number; shardSize: number; align: number };
  files: ManifestFile[];
}

interface FileHeader {
  version: number;
  rank: number;
  world: number;
  start: number;
  end: number;
  step: number;
  arrays: ArrayName[];
  dataOffset: number;
}

export function stepDirName(step: number): string {
  return `step_${step}`;
}

export function generationDirName(generation: number): string {
  return `gen_${generation}`;
}

const STEP_NAME = /^step_\d+$/;
const GENERATION_NAME = /^gen_(\d+)$/;
/** What `latest` may hold: a generation, or a step directory of the older layout. */
const LATEST_NAME = /^step_\d+(\/gen_\d+)?$/;

/** The generation numbers present in `stepDir` (committed or not), in no particular order. */
async function generationsIn(stepDir: string): Promise<number[]> {
  const names = await readdir(stepDir).catch((e: NodeJS.ErrnoException) => {
    if (e.code === 'ENOENT') return [] as string[];
    throw e;
  });
  return names.flatMap((n) => {
    const m = GENERATION_NAME.exec(n);
    return m ? [Number(m[1])] : [];
  });
}

export function rankFileName(rank: number, world: number): string {
  return `rank-${String(rank).padStart(5, '0')}-of-${String(world).padStart(5, '0')}.bin`;
}

function bytesOf(a: Float32Array): Buffer {
  return Buffer.from(a.buffer, a.byteOffset, a.byteLength);
}

function message(e: unknown): string {
  return e instanceof Error ? e.message : String(e);
}

async function writeRankFile(
  path: string,
  header: Omit<FileHeader, 'dataOffset'>,
  views: ShardViews,
): Promise<{ bytes: number; sha256: string }> {
  const probe = Buffer.from(JSON.stringify({ ...header, dataOffset: 0 }));
  // dataOffset's own digits change the header length: leave room for them, then pad to 64 bytes.
  const dataOffset = Math.ceil((12 + probe.length + 20) / 64) * 64;
  const json = Buffer.from(JSON.stringify({ ...header, dataOffset }));
  const head = Buffer.alloc(dataOffset);
  MAGIC.copy(head, 0);
  head.writeUInt32LE(json.length, 8);
  json.copy(head, 12);
  const hash = await sha256();
  const fh = await open(path, 'w', 0o644);
  let bytes = 0;
  try {
    const write = async (b: Buffer): Promise<void> => {
      hash.update(b);
      let done = 0;
      while (done < b.length) {
        const { bytesWritten } = await fh.write(b, done, b.length - done, bytes + done);
        done += bytesWritten;
      }
      bytes += b.length;
    };
    await write(head);
    for (const name of header.arrays) for (const v of views[name]) await write(bytesOf(v));
    await fh.sync();
  } finally {
    await fh.close();
  }
  return { bytes, sha256: hash.digest('hex') };
}

/** One status word per rank, all-gathered, so a failure on any rank fails the operation on every rank. */
async function agree(group: Group, ok: boolean, what: string): Promise<void> {
  const mine = new Float64Array([ok ? 1 : 0]);
  const all = new Float64Array(group.size);
  if (group.size === 1) all[0] = mine[0]!;
  else await group.allGather(mine, all);
  const failed = [...all.keys()].filter((r) => all[r] !== 1);
  if (failed.length > 0) throw new CheckpointError(`${what} failed on rank(s) ${failed.join(', ')} (see their errors)`);
}

export interface SaveRequest {
  group: Group;
  partition: Partition;
  shard: Range;
  step: number;
  paramDtype: KernelDType;
  stage: 0 | 1 | 2;
  hyper: Hyperparameters;
  views: ShardViews;
}

export async function saveShards(dir: string, req: SaveRequest): Promise<string> {
  const { group } = req;
  const stepDir = join(dir, stepDirName(req.step));
  // Rank 0 picks a generation no earlier save of this step used (committed or not) and tells the others.
  const prepared = new Float64Array([0]);
  let local: unknown;
  if (group.rank === 0) {
    try {
      await makeDirs(stepDir);
      const generation = Math.max(0, ...(await generationsIn(stepDir))) + 1;
      await mkdir(join(stepDir, generationDirName(generation)));
      prepared[0] = generation;
    } catch (e) {
      local = e;
    }
  }
  const everyone = new Float64Array(group.size);
  if (group.size === 1) everyone[0] = prepared[0]!;
  else await group.allGather(prepared, everyone);
  if (local) throw local;
  if (!(everyone[0] > 0)) throw new CheckpointError(`preparing ${stepDir} failed on rank 0 (see its error)`);
  const name = `${stepDirName(req.step)}/${generationDirName(everyone[0])}`;
  const genDir = join(dir, name);
  const world = group.size;

  // digest words: [ok, bytes, sha256 as 8 uint32]
  const record = new Float64Array(10);
  const file = rankFileName(group.rank, world);
  try {
    await makeDirs(genDir);
    const written = await writeRankFile(
      join(genDir, file),
      {
        version: VERSION,
        rank: group.rank,
        world,
        start: req.shard.start,
        end: req.shard.end,
        step: req.step,
        arrays: [...ARRAYS],
      },
      req.views,
    );
    await fsyncDirectory(genDir); // the file's directory entry too, from this rank's host (shared file systems)
    const digest = Buffer.from(written.sha256, 'hex');
    record[0] = 1;
    record[1] = written.bytes;
    for (let i = 0; i < 8; i++) record[2 + i] = digest.readUInt32BE(i * 4);
  } catch (e) {
    local = new CheckpointError(`cannot write shard: ${message(e)}`, join(genDir, file));
  }
  const all = new Float64Array(10 * world);
  if (world === 1) all.set(record);
  else await group.allGather(record, all);
  if (local) throw local;
  const failed = [...Array(world).keys()].filter((r) => all[r * 10] !== 1);
  if (failed.length > 0)
    throw new CheckpointError(`save of ${genDir} failed on rank(s) ${failed.join(', ')}; not committed`);

  let committed = true;
  if (group.rank === 0) {
    try {
      const files: ManifestFile[] = [];
      for (let r = 0; r < world; r++) {
        const digest = Buffer.alloc(32);
        for (let i = 0; i < 8; i++) digest.writeUInt32BE(all[r * 10 + 2 + i], i * 4);
        const start = Math.min(req.partition.numel, r * req.partition.shardSize);
        const end = Math.min(req.partition.numel, start + req.partition.shardSize);
        files.push({
          file: rankFileName(r, world),
          rank: r,
          start,
          end,
          bytes: all[r * 10 + 1],
          sha256: digest.toString('hex'),
        });
      }
      const manifest: Manifest = {
        format: FORMAT,
        version: VERSION,
        step: req.step,
        numel: req.partition.numel,
        paramDtype: req.paramDtype,
        stage: req.stage,
        hyper: req.hyper,
        partition: { world, shardSize: req.partition.shardSize, align: req.partition.align },
        files,
      };
      await writeFileDurably(join(genDir, MANIFEST), JSON.stringify(manifest, null, 2) + '\n');
      await writeFileDurably(join(dir, LATEST), name + '\n');
    } catch (e) {
      committed = false;
      local = new CheckpointError(`cannot commit: ${message(e)}`, genDir);
    }
    // Committed: the step's other generations (and older-layout files) are garbage now. A failure here
    // costs disk space only; the next save of this step tries again.
    if (committed) await removeOtherGenerations(stepDir, basename(genDir)).catch(() => undefined);
  }
  if (local) {
    // rank 0 still takes part in the agreement below, so the others fail instead of waiting.
    await agree(group, committed, `committing ${genDir}`).catch(() => undefined);
    throw local;
  }
  await agree(group, committed, `committing ${genDir}`);
  return genDir;
}

/** Removes from `stepDir` every generation but `keep`, and the files of the older single-generation layout. */
async function removeOtherGenerations(stepDir: string, keep: string): Promise<void> {
  const names = await readdir(stepDir);
  // the manifest first: files it vouches for must never be seen half-deleted under a manifest
  if (names.includes(MANIFEST)) await unlink(join(stepDir, MANIFEST));
  for (const n of names) {
    if (n === keep) continue;
    if (GENERATION_NAME.test(n)) await rm(join(stepDir, n), { recursive: true, force: true });
    else if (/^rank-\d{5}-of-\d{5}\.bin$/.test(n)) await unlink(join(stepDir, n));
  }
}

async function exists(path: string): Promise<boolean> {
  return stat(path).then(
    () => true,
    () => false,
  );
}

/** What `root/latest` names (validated), or undefined when there is no `latest`. */
async function readLatest(root: string): Promise<string | undefined> {
  let name: string;
  try {
    name = (await readFile(join(root, LATEST), 'utf8')).trim();
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw new CheckpointError(message(e), join(root, LATEST));
  }
  if (!LATEST_NAME.test(name))
    throw new CheckpointError(`names '${name}', not a step_N/gen_K directory`, join(root, LATEST));
  return name;
}

/**
 * The generation a `step_N/` directory means: the one `latest` names when it is of this step, else the
 * newest one with a manifest (complete, though maybe never named by `latest`), else the directory itself
 * (the older layout; loading it says when it has no manifest).
 */
async function resolveGeneration(stepDir: string): Promise<string> {
  const named = await readLatest(dirname(stepDir)).catch(() => undefined);
  const prefix = `${basename(stepDir)}/`;
  if (named === basename(stepDir)) return stepDir;
  if (named?.startsWith(prefix) && (await exists(join(dirname(stepDir), named, MANIFEST))))
    return join(dirname(stepDir), named);
  for (const g of (await generationsIn(stepDir)).sort((a, b) => b - a)) {
    const genDir = join(stepDir, generationDirName(g));
    if (await exists(join(genDir, MANIFEST))) return genDir;
  }
  return stepDir;
}

/**
 * The generation directory `dir` means: the one `dir/latest` names (a checkpoint root), the committed
 * generation of `dir` when it is a `step_N/`, or `dir` itself when it holds a manifest.
 */
export async function resolveStepDir(dir: string): Promise<string> {
  if (STEP_NAME.test(basename(dir))) return resolveGeneration(dir);
  if (await exists(join(dir, MANIFEST))) return dir;
  const name = await readLatest(dir);
  if (name === undefined)
    throw new CheckpointError('no checkpoint here (neither manifest.json nor latest)', join(dir, LATEST));
  return join(dir, name);
}

export async function readManifest(stepDir: string): Promise<Manifest> {
  const path = join(stepDir, MANIFEST);
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    throw new CheckpointError(code === 'ENOENT' ? 'missing: the step was never committed' : message(e), path);
  }
  let m: Manifest;
  try {
    m = JSON.parse(text) as Manifest;
  } catch {
    throw new CheckpointError('not valid JSON (corrupted manifest)', path);
  }
  if (m.format !== FORMAT || m.version !== VERSION || !Array.isArray(m.files)) {
    throw new CheckpointError(`not a ${FORMAT} v${VERSION} manifest`, path);
  }
  let at = 0;
  for (const f of [...m.files].sort((a, b) => a.start - b.start)) {
    if (f.start !== at || f.end < f.start || !/^rank-\d{5}-of-\d{5}\.bin$/.test(f.file)) {
      throw new CheckpointError(`file list does not cover the ${m.numel} elements in order (at ${f.file})`, path);
    }
    at = f.end;
  }
  if (at !== m.numel) throw new CheckpointError(`files cover ${at} of ${m.numel} elements`, path);
  return m;
}

/** node:crypto when a checkpoint is written or read, not on every worker's import 'dtrain'. */
async function sha256() {
  const { createHash } = await import('node:crypto');
  return createHash('sha256');
}

async function sha256File(path: string): Promise<string> {
  const hash = await sha256();
  for await (const chunk of createReadStream(path, { highWaterMark: 4 << 20 })) hash.update(chunk as Buffer);
  return hash.digest('hex');
}

/** Opens a rank file after checking it is present, complete and unchanged; returns its header. */
async function openVerified(path: string, f: ManifestFile): Promise<{ fh: FileHandle; header: FileHeader }> {
  let size: number;
  try {
    size = (await stat(path)).size;
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    throw new CheckpointError(code === 'ENOENT' ? 'missing shard file (listed in the manifest)' : message(e), path);
  }
  if (size < f.bytes) throw new CheckpointError(`truncated: ${size} bytes, the manifest says ${f.bytes}`, path);
  if (size > f.bytes) throw new CheckpointError(`${size} bytes, the manifest says ${f.bytes}`, path);
  if ((await sha256File(path)) !== f.sha256)
    throw new CheckpointError('checksum mismatch: the shard file is corrupted', path);
  const fh = await open(path, 'r');
  try {
    const fixed = Buffer.alloc(12);
    await fh.read(fixed, 0, 12, 0);
    if (!fixed.subarray(0, 8).equals(MAGIC)) throw new CheckpointError('not a dtrain optimizer shard', path);
    const json = Buffer.alloc(fixed.readUInt32LE(8));
    await fh.read(json, 0, json.length, 12);
    const header = JSON.parse(json.toString('utf8')) as FileHeader;
    if (header.start !== f.start || header.end !== f.end || header.rank !== f.rank) {
      throw new CheckpointError('header disagrees with the manifest', path);
    }
    return { fh, header };
  } catch (e) {
    await fh.close();
    throw e instanceof CheckpointError ? e : new CheckpointError(`unreadable header: ${message(e)}`, path);
  }
}

export interface LoadRequest {
  group: Group;
  shard: Range;
  numel: number;
  paramDtype: KernelDType;
  views: ShardViews;
}

export interface Loaded {
  stepDir: string;
  step: number;
  hyper: Hyperparameters;
  manifest: Manifest;
}

async function readOwnRange(stepDir: string, m: Manifest, req: LoadRequest): Promise<void> {
  for (const f of m.files) {
    const lo = Math.max(f.start, req.shard.start);
    const hi = Math.min(f.end, req.shard.end);
    if (lo >= hi) continue;
    const path = join(stepDir, f.file);
    const { fh, header } = await openVerified(path, f);
    try {
      const count = f.end - f.start;
      for (const name of ARRAYS) {
        const k = header.arrays.indexOf(name);
        if (k < 0) throw new CheckpointError(`has no '${name}' array`, path);
        // Walk this rank's views of `name` (flat order from the shard start) and fill the overlap.
        let viewStart = req.shard.start;
        for (const view of req.views[name]) {
          const a = Math.max(lo, viewStart);
          const b = Math.min(hi, viewStart + view.length);
          if (a < b) {
            const dst = bytesOf(view.subarray(a - viewStart, b - viewStart));
            const pos = header.dataOffset + (k * count + (a - f.start)) * 4;
            // one read(2) moves at most ~2 GiB: loop until the piece is complete
            for (let done = 0; done < dst.length;) {
              const { bytesRead } = await fh.read(dst, done, dst.length - done, pos + done);
              if (bytesRead === 0) throw new CheckpointError(`ends early at byte ${pos + done}`, path);
              done += bytesRead;
            }
          }
          viewStart += view.length;
        }
      }
    } finally {
      await fh.close();
    }
  }
}

export async function loadShards(dir: string, req: LoadRequest): Promise<Loaded> {
  let failure: unknown;
  let result: Loaded | undefined;
  try {
    const stepDir = await resolveStepDir(dir);
    const m = await readManifest(stepDir);
    const path = join(stepDir, MANIFEST);
    if (m.numel !== req.numel)
      throw new CheckpointError(`holds ${m.numel} parameters, this optimizer has ${req.numel}`, path);
    if (m.paramDtype !== req.paramDtype)
      throw new CheckpointError(`params are ${m.paramDtype}, this optimizer's are ${req.paramDtype}`, path);
    await readOwnRange(stepDir, m, req);
    result = { stepDir, step: m.step, hyper: m.hyper, manifest: m };
  } catch (e) {
    failure = e;
  }
  // Every rank learns whether all of them loaded, so none goes on to all-gather half-restored params.
  if (failure) {
    await agree(req.group, false, 'loading').catch(() => undefined);
    throw failure;
  }
  await agree(req.group, true, 'loading');
  return result!;
}
