/** Facts about the controller's own machine, read without starting anything or connecting anywhere. */
import { readdirSync } from 'node:fs';
import { hostname, networkInterfaces } from 'node:os';

/** Is `host` the machine dtrain runs on (so the node starts without SSH)? */
export function isLocalHost(host: string): boolean {
  const h = host.toLowerCase();
  if (h === 'localhost' || h === '::1' || h.startsWith('127.')) return true;
  const me = hostname().toLowerCase();
  if (h === me || h === me.split('.')[0]) return true;
  return Object.values(networkInterfaces()).some((list) => list?.some((a) => a.address.toLowerCase() === h));
}

/** NVIDIA GPUs the driver lists (0 without a driver): the local meaning of nproc_per_node auto. */
export function localGpuCount(): number {
  try {
    return readdirSync('/proc/driver/nvidia/gpus').length;
  } catch {
    return 0;
  }
}
