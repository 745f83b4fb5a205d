/**
 * `dtrain doctor`: what this machine can run, in the spirit of DeepSpeed's ds_report. Every probe that
 * could crash (the CUDA driver) runs in a child process.
 */
import { spawnSync } from 'node:child_process';
import { addonPath, loadAddon } from '../runtime/addon.js';
import { autoBackend, probeCuda, type CudaProbe } from '../runtime/device/cuda-part.js';
import { packageVersion } from '../util/version.js';

export interface DoctorReport {
  version: string;
  node: string;
  addon: { loaded: boolean; path: string; error?: string };
  cuda: {
    built: boolean;
    archs: string[];
    cuda_version?: string;
    reason?: string;
    loaded: boolean;
    driver: { found: boolean; version?: string; new_enough?: boolean };
    devices: string[];
    error?: string;
  };
  nccl: CudaProbe['nccl'];
  tools: Record<'ssh' | 'srun' | 'sbatch' | 'qsub' | 'scontrol' | 'mpirun', string | null>;
  backend: { auto: 'cpu' | 'nccl'; reason: string };
}

function which(tool: string): string | null {
  const r = spawnSync('sh', ['-c', `command -v -- "$1"`, 'sh', tool], { encoding: 'utf8' });
  return r.status === 0 ? r.stdout.trim() : null;
}

/** CUDA encodes versions as major*1000 + minor*10. */
function cudaVersionString(code: number): string {
  return `${Math.floor(code / 1000)}.${Math.floor((code % 1000) / 10)}`;
}

export function runDoctor(): DoctorReport {
  let addon: DoctorReport['addon'] = { loaded: true, path: addonPath() };
  try {
    loadAddon();
  } catch (err) {
    addon = { loaded: false, path: addonPath(), error: (err as Error).message.split('\n')[0] };
  }
  const probe = probeCuda();
  const auto = autoBackend(probe);
  return {
    version: packageVersion(),
    node: process.version,
    addon,
    cuda: {
      built: probe.built.built,
      archs: probe.built.archs ?? [],
      cuda_version: probe.built.cuda_version,
      reason: probe.built.reason,
      loaded: probe.loaded,
      driver: probe.driver_version
        ? { found: true, version: cudaVersionString(probe.driver_version), new_enough: probe.driver_new_enough }
        : { found: false },
      devices: probe.devices,
      error: probe.error ?? probe.device_error,
    },
    nccl: probe.nccl,
    tools: {
      ssh: which('ssh'),
      srun: which('srun'),
      sbatch: which('sbatch'),
      qsub: which('qsub'),
      scontrol: which('scontrol'),
      mpirun: which('mpirun'),
    },
    backend: { auto: auto.backend, reason: auto.reason },
  };
}

export function renderDoctor(r: DoctorReport): string {
  const yes = (b: boolean) => (b ? 'yes' : 'no');
  const cudaBuilt = r.cuda.built ? ` (CUDA ${r.cuda.cuda_version}, ${r.cuda.archs.join(' ')})` : ` (${r.cuda.reason})`;
  const driverAge = r.cuda.driver.new_enough === false ? ' — older than the CUDA the part was built with' : '';
  const lines = [
    `dtrain ${r.version} on Node ${r.node}`,
    `addon          ${r.addon.loaded ? 'loaded' : `NOT loaded: ${r.addon.error}`} (${r.addon.path})`,
    `cuda part      built: ${yes(r.cuda.built)}${cudaBuilt}`,
    `driver         ${r.cuda.driver.found ? `CUDA ${r.cuda.driver.version}${driverAge}` : 'none'}`,
    `gpus           ${r.cuda.devices.length ? r.cuda.devices.join(', ') : `none (${r.cuda.error ?? 'not probed'})`}`,
    `nccl           ${r.nccl.found ? `${r.nccl.version} (${r.nccl.path})` : `not found: ${r.nccl.reason}`}`,
    ...Object.entries(r.tools).map(([k, v]) => `${k.padEnd(15)}${v ?? 'not found'}`),
    `backend auto   ${r.backend.auto} (${r.backend.reason})`,
  ];
  return lines.join('\n') + '\n';
}
