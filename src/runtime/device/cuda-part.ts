/**
 * The optional CUDA part: where it was built, whether it loads, and what it finds. Everything here is
 * safe on a machine without CUDA: the part is opened with dlopen only when asked for, and `probeCuda`
 * runs that first load in a child process, so a broken driver can crash the probe but never the caller.
 */
import { existsSync, readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';
import { loadAddon } from '../addon.js';

const buildDir = fileURLToPath(new URL('../../../build-cuda/', import.meta.url));
export const cudaPartPath = buildDir + 'libdtrain_cuda.so';

export interface CudaBuildInfo {
  built: boolean;
  archs?: string[];
  cuda_version?: string;
  reason?: string;
}

export interface CudaProbe {
  built: CudaBuildInfo;
  loaded: boolean;
  error?: string;
  runtime_version?: number;
  driver_version?: number;
  /** false when a driver exists but is older than the runtime the part was built with */
  driver_new_enough?: boolean;
  devices: string[];
  device_error?: string;
  nccl: { found: boolean; path?: string; version?: string; reason?: string };
}

export function cudaBuildInfo(): CudaBuildInfo {
  const manifest = buildDir + 'cuda-build.json';
  if (!existsSync(manifest)) return { built: false, reason: 'the addon was not built with the CUDA step' };
  const info = JSON.parse(readFileSync(manifest, 'utf8')) as CudaBuildInfo;
  if (info.built && !existsSync(cudaPartPath)) return { built: false, reason: `${cudaPartPath} is missing` };
  return info;
}

interface NativeCuda {
  load(path: string): boolean;
  probe(ncclPath?: string): {
    archs: string;
    runtimeVersion: number;
    driverVersion: number;
    deviceCount: number;
    deviceError: string;
    devices: string[];
    nccl: { found: boolean; version?: number; path?: string; reason?: string };
  };
  malloc(bytes: number): number;
  free(ptr: number): void;
  copy(direction: 'h2d' | 'd2h', ptr: number, host: ArrayBufferView): void;
  fill(ptr: number, dtype: number, count: number, value: number): void;
  setDevice(device: number): void;
  synchronize(): void;
  ipcExport(ptr: number): Uint8Array;
  ipcImport(handle: Uint8Array): number;
  ipcClose(ptr: number): void;
  /** the path cuBLAS was loaded from; throws with the search's reason */
  cublasLoad(path?: string): string;
  /** flags: 1 transA, 2 transB, 4 accumulate; inDtype: dtypeCode of a and b (float32 or bfloat16) */
  gemm(a: number, b: number, c: number, m: number, n: number, k: number, flags: number, inDtype: number): void;
  biasAct(z: number, bias: number, y: number, act: number, rows: number, cols: number): void;
  biasActBackward(
    dy: number,
    z: number,
    dz: number,
    dbias: number,
    act: number,
    rows: number,
    cols: number,
    accumulate: boolean,
  ): void;
  /** the mean loss; waits for the kernels */
  softmaxCrossEntropy(
    logits: number,
    labels: number,
    rows: number,
    classes: number,
    scale: number,
    grad: number,
  ): number;
}

let native: NativeCuda | undefined;
/** Opens the CUDA part in this process (throws with the loader's reason when it cannot). */
export function loadCudaPart(): NativeCuda {
  if (native) return native;
  const addon = loadAddon() as { cuda: NativeCuda };
  const info = cudaBuildInfo();
  if (!info.built) throw new Error(`the CUDA part is not built: ${info.reason}`);
  addon.cuda.load(cudaPartPath);
  native = addon.cuda;
  return native;
}

/** NCCL encodes versions as major*10000 + minor*100 + patch since 2.9. */
export function ncclVersionString(code: number): string {
  return `${Math.floor(code / 10000)}.${Math.floor(code / 100) % 100}.${code % 100}`;
}

/** Probes in this process; prefer probeCuda(), which isolates a crashing driver in a child. */
export function probeCudaInProcess(): CudaProbe {
  const built = cudaBuildInfo();
  if (!built.built)
    return { built, loaded: false, devices: [], nccl: { found: false, reason: 'the CUDA part is not built' } };
  try {
    const p = loadCudaPart().probe(process.env.DTRAIN_NCCL_PATH);
    return {
      built,
      loaded: true,
      runtime_version: p.runtimeVersion,
      driver_version: p.driverVersion,
      driver_new_enough: p.driverVersion > 0 ? p.driverVersion >= p.runtimeVersion : undefined,
      devices: p.devices,
      device_error:
        p.deviceCount > 0
          ? undefined
          : p.driverVersion === 0
            ? 'no NVIDIA driver (libcuda.so.1 not found)'
            : p.deviceError || 'no CUDA device visible',
      nccl: p.nccl.found
        ? { found: true, path: p.nccl.path, version: ncclVersionString(p.nccl.version ?? 0) }
        : { found: false, reason: p.nccl.reason },
    };
  } catch (err) {
    // Node's module errors append a require stack; the first line is the reason.
    const error = (err as Error).message.split('\n')[0];
    return { built, loaded: false, error, devices: [], nccl: { found: false, reason: 'the CUDA part did not load' } };
  }
}

/** Runs the probe in a child process so that a faulting driver cannot take the caller down. */
export function probeCuda(timeoutMs = 20_000): CudaProbe {
  // Resolved through the package root so that it names the compiled script from src/ (tests) and dist/ alike.
  const script = fileURLToPath(new URL('../../../dist/runtime/device/probe-main.js', import.meta.url));
  // Loaded here, not at the top: node:child_process (and net, dgram behind it) would be loaded by every
  // worker's import 'dtrain', which reaches this module and never probes.
  const { execFileSync } = createRequire(import.meta.url)('node:child_process') as typeof import('node:child_process');
  try {
    const out = execFileSync(process.execPath, [script], {
      encoding: 'utf8',
      timeout: timeoutMs,
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    return JSON.parse(out) as CudaProbe;
  } catch (err) {
    const e = err as { signal?: string; status?: number; stderr?: string };
    const why = e.signal
      ? `the CUDA probe was killed by ${e.signal}`
      : `the CUDA probe failed (exit ${e.status}): ${(e.stderr ?? '').trim().split('\n').pop()}`;
    return { built: cudaBuildInfo(), loaded: false, error: why, devices: [], nccl: { found: false, reason: why } };
  }
}

/** What `backend: auto` picks on this node, and why (NCCL when GPUs are visible and NCCL loads). */
export function autoBackend(probe: CudaProbe): { backend: 'cpu' | 'nccl'; reason: string } {
  if (!probe.built.built) return { backend: 'cpu', reason: `CUDA part not built (${probe.built.reason})` };
  if (!probe.loaded) return { backend: 'cpu', reason: probe.error ?? 'CUDA part did not load' };
  if (probe.devices.length === 0) return { backend: 'cpu', reason: probe.device_error ?? 'no GPU visible' };
  if (!probe.nccl.found) return { backend: 'cpu', reason: `NCCL not usable: ${probe.nccl.reason}` };
  return { backend: 'nccl', reason: `${probe.devices.length} GPU(s) and NCCL ${probe.nccl.version}` };
}

/** probeCuda() without blocking the caller's event loop (agents keep heartbeating while it runs). */
export async function probeCudaAsync(opts: { timeoutMs?: number; env?: NodeJS.ProcessEnv } = {}): Promise<CudaProbe> {
  const { execFile } = await import('node:child_process');
  const script = fileURLToPath(new URL('../../../dist/runtime/device/probe-main.js', import.meta.url));
  return new Promise((resolve) => {
    execFile(
      process.execPath,
      [script],
      { encoding: 'utf8', timeout: opts.timeoutMs ?? 20_000, env: opts.env ?? process.env },
      (err, stdout, stderr) => {
        if (!err) {
          try {
            return resolve(JSON.parse(stdout) as CudaProbe);
          } catch {
            // fall through: a probe that prints garbage is a failed probe
          }
        }
        const e = (err ?? {}) as { signal?: string; code?: number | string };
        const why = e.signal
          ? `the CUDA probe was killed by ${e.signal}`
          : `the CUDA probe failed (exit ${e.code ?? '?'}): ${(stderr ?? '').trim().split('\n').pop()}`;
        resolve({
          built: cudaBuildInfo(),
          loaded: false,
          error: why,
          devices: [],
          nccl: { found: false, reason: why },
        });
      },
    );
  });
}
